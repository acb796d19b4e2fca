"""Opening only regular files: a FIFO, socket or device named like an input must never block segtrain.

Opening a FIFO for reading waits for a writer, forever when there is none, and PIL, json and
TensorFlow all open what they are given. Every file segtrain reads (images, prediction and
ground-truth PNGs, segtrain.json, checkpoint files, shards) goes through `require_regular` (a
stat before TensorFlow opens it) or `read_regular` (opened without blocking, then checked with
fstat, so a file swapped for a FIFO after the stat is still refused). Both are segprep.fileio's
checks (one place for what counts as a file and how it is named), raised as a SegtrainError.

Pure Python, no TensorFlow: the checks run before any model is built.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from segprep.errors import describe_os_error
from segprep.fileio import check_regular_file, read_regular_file
from segtrain.errors import SegtrainError

T = TypeVar("T")


class NotRegularFileError(SegtrainError):
    """A path that exists but is a folder, FIFO, socket or device where a file is read."""


def _refusing(read: Callable[[Path], T], path: Path | str) -> T:
    try:
        return read(Path(path))
    except OSError as exc:
        if exc.errno in (errno.EISDIR, errno.EINVAL):
            raise NotRegularFileError(describe_os_error(exc)) from None
        raise


def require_regular(path: Path | str) -> None:
    """NotRegularFileError naming path unless it is (a link to) a regular file; OSError when it is missing."""
    _refusing(check_regular_file, path)


def require_all_regular(paths: Iterable[Path | str]) -> None:
    for path in paths:
        require_regular(path)


def regular_problem(path: Path | str) -> str | None:
    """Why path cannot be read as a regular file ('PATH: not a regular file (a FIFO)', a broken link,
    no permission), or None when it can be."""
    try:
        require_regular(path)
    except NotRegularFileError as exc:
        return str(exc)
    except OSError as exc:
        return describe_os_error(exc)
    return None


def read_regular(path: Path | str) -> bytes:
    """The bytes of a regular file, opened without blocking; NotRegularFileError for anything else."""
    return _refusing(read_regular_file, path)


__all__ = ["NotRegularFileError", "read_regular", "regular_problem", "require_all_regular", "require_regular"]
