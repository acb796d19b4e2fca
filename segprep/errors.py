"""The project's own error types, and how an OS error becomes one line that names the path.

Every problem with a user's data or environment is raised as a SegprepError (or an OSError),
and the command-line layer prints it as one `error:` line and exits 1; a Python traceback is
shown only when the user asks for it with --debug or SEGPREP_DEBUG=1.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager


class SegprepError(Exception):
    """A problem with the user's data or environment; the message is one line that names the file."""


class OutputLocationError(SegprepError):
    """An output location would overwrite, delete or land inside an input of the same command."""


# Reasons for the OS faults a user meets, in words rather than errno names.
_REASONS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOTDIR: "a component of the path is a file, not a folder",
    errno.EISDIR: "is a folder, not a file",
    errno.ENOENT: "no such file or folder",
    errno.EEXIST: "already exists",
    errno.ENAMETOOLONG: "file name too long",
    errno.EIO: "input/output error",
}


def describe_os_error(exc: OSError) -> str:
    """'PATH: reason' for an OSError, naming both paths of a failed rename or copy."""
    reason = _REASONS.get(exc.errno or -1) or exc.strerror or str(exc) or type(exc).__name__
    # A filename may be a file descriptor (open() of a folder by fd, say): say nothing about it then.
    paths = [os.fsdecode(p) for p in (exc.filename, exc.filename2) if isinstance(p, (str, bytes, os.PathLike))]
    if not paths:
        return reason
    return f"{' -> '.join(paths)}: {reason}"


def with_filename(exc: OSError, path: os.PathLike[str] | str) -> OSError:
    """The same OS error, naming `path` when the OS named no file (a write() that hit a full disk)."""
    if exc.filename is not None or exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror or os.strerror(exc.errno), os.fspath(path))


@contextmanager
def os_errors_name(path: os.PathLike[str] | str) -> Iterator[None]:
    """Give an OSError that names no file the path of the work at hand."""
    try:
        yield
    except OSError as exc:
        named = with_filename(exc, path)
        if named is exc:
            raise
        raise named from exc
