"""Atomic file writes: a temporary file in the target's folder, renamed into place when complete.

A reader never sees a half-written file: it sees the old one or the new one. Replacing a file
keeps what its owner set up for it (permission bits, owner and group), since a rename would
otherwise give the file the writer's umask and identity. When anything fails, the temporary is
removed and the original is left exactly as it was; an OSError then names the destination, not
the hidden temporary.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

_TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)


def atomic_write(
    path: Path,
    write: Callable[[IO[Any]], None],
    mode: str = "wb",
    encoding: str | None = None,
    *,
    make_parents: bool = True,
    durable: bool = False,
) -> None:
    """Call write(handle) on a hidden temporary beside path, then rename it over path.

    The temporary gets the usual permissions (0666 less the umask, not mkstemp's 0600) or, when
    path already exists, that file's mode, owner and group (owner and group where permitted).
    make_parents: create missing folders (off: a missing folder is an error, as for the registry).
    durable: fsync the file before the rename and the folder after it (worth it for small files
    that must survive a power cut, like the registry; too slow for thousands of label PNGs).
    """
    path = Path(path)
    if make_parents:
        make_folder(path.parent)
    tmp = temporary_for(path)
    try:
        existing = _stat_or_none(path)
        with os.fdopen(_create_temporary(tmp), mode, encoding=encoding) as handle:
            if existing is not None:
                _copy_ownership_and_mode(handle.fileno(), existing)
            write(handle)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        _remove_quietly(tmp)
        if isinstance(exc, OSError):
            _name_destination(exc, tmp, path)
        raise
    if durable:
        _fsync_folder(path.parent)


def temporary_for(target: Path, pid: int | None = None) -> Path:
    """The hidden temporary beside `target` that this process (or `pid`) writes before renaming.

    The pid in the name lets a later run tell a dead writer's temporary from a live one's.
    """
    return target.with_name(f".{target.name}.segprep-{os.getpid() if pid is None else pid}.tmp")


def make_folder(folder: Path) -> None:
    """mkdir -p, where a file in the way is reported as ENOTDIR on that file (mkdir says 'exists')."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder)) from exc


def _stat_or_none(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


def _create_temporary(tmp: Path) -> int:
    """A new temporary; one left by a dead process that had our pid is removed first."""
    try:
        return os.open(tmp, _TMP_FLAGS, 0o666)
    except FileExistsError:
        os.unlink(tmp)
        return os.open(tmp, _TMP_FLAGS, 0o666)


def _copy_ownership_and_mode(fd: int, existing: os.stat_result) -> None:
    """Give the temporary the replaced file's owner, group and permission bits (chown first: it may clear set-id bits)."""
    current = os.fstat(fd)
    if (current.st_uid, current.st_gid) != (existing.st_uid, existing.st_gid):
        try:
            os.fchown(fd, existing.st_uid, existing.st_gid)
        except PermissionError:
            pass  # only root may give a file away; the file then belongs to whoever rewrote it
    os.fchmod(fd, stat.S_IMODE(existing.st_mode))


def _remove_quietly(tmp: Path) -> None:
    """Remove the temporary; a failure to do so must not hide the error that got us here."""
    try:
        os.unlink(tmp)
    except OSError:
        pass


def _name_destination(exc: OSError, tmp: Path, path: Path) -> None:
    """Make the error name the file the user asked for rather than our hidden temporary."""
    if exc.filename is None or os.fsdecode(exc.filename) == str(tmp):
        exc.filename = str(path)
        if exc.filename2 is not None and os.fsdecode(exc.filename2) == str(path):
            exc.filename2 = None


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable; file systems that cannot fsync a folder are let be."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_regular_file(path: Path) -> None:
    """OSError naming path unless it is a regular file (links followed): a folder is EISDIR, a
    FIFO, socket or device is EINVAL "not a regular file". Checked before a file is opened,
    because opening a FIFO blocks until somebody writes to it."""
    mode = os.stat(path).st_mode
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if not stat.S_ISREG(mode):
        raise OSError(errno.EINVAL, f"not a regular file ({_file_kind(mode)})", str(path))


def _file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a file"


def read_regular_file(path: Path) -> bytes:
    """The bytes of a regular file; OSError naming it for anything else (see check_regular_file).

    Opened without blocking and checked on the open descriptor, so that a FIFO or device named
    like an image, a list or a manifest is refused instead of hanging the reader forever, even
    when it replaces a regular file between a check and the open.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        raise OSError(errno.EINVAL, f"not a regular file ({_file_kind(mode)})", str(path))
    with os.fdopen(fd, "rb") as handle:
        try:
            return handle.read()
        except OSError as exc:  # EIO and the like name no file: name it
            if exc.filename is None and exc.errno is not None:
                raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path)) from None
            raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda handle: handle.write(text), mode="w", encoding="utf-8")


def append_file(destination: IO[bytes], source: Path) -> None:
    """Append source's bytes to an open binary file, in the kernel where it can (copy_file_range)."""
    destination.flush()
    with open(source, "rb") as handle:
        remaining = os.fstat(handle.fileno()).st_size
        try:
            while remaining > 0:
                copied = os.copy_file_range(handle.fileno(), destination.fileno(), remaining)
                if copied == 0:
                    break
                remaining -= copied
        except (AttributeError, OSError):  # not Linux, or a filesystem that refuses it
            handle.seek(os.fstat(handle.fileno()).st_size - remaining)
            remaining = 0
            while block := handle.read(1 << 20):
                destination.write(block)
        if remaining:
            raise OSError(f"{source}: short copy ({remaining} bytes left)")
