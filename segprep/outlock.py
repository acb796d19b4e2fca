"""One writer per output folder: an exclusive lock held for the whole run.

Two conversions into one --out would interleave their shards and journals and could leave a
shard that looks finished but holds another run's records. The lock is an flock on a hidden
file in the folder: the kernel releases it when the process dies (kill -9 included), so a stale
lock never blocks the next run, and while it is held every temporary in the folder is known to
belong to a dead run and may be removed.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from segprep.errors import SegprepError

LOCK_NAME = ".segprep.lock"


class OutputBusyError(SegprepError):
    """Another segprep process is writing into the same output folder."""


def _holder(path: Path) -> str:
    try:
        pid = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


def _acquire(lock_path: Path) -> int:
    """An fd holding the exclusive lock on lock_path; retries if the file was replaced meanwhile."""
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputBusyError(
                f"{lock_path.parent}: another segprep run{_holder(lock_path)} is writing here; "
                "wait for it to finish or choose another --out"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        # The previous holder removes the file when it is done: if it did so between our open
        # and our flock, we hold a lock on a file nobody else can see, so start again.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock_path))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


@contextmanager
def exclusive_output(out_dir: Path) -> Iterator[Path]:
    """Create out_dir if needed and hold its lock; a folder this run created and left empty is removed."""
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    lock_path = out_dir / LOCK_NAME
    fd = _acquire(lock_path)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield out_dir
    finally:
        # Unlink before unlocking, so a waiting run that opens the path afterwards gets a new file.
        try:
            lock_path.unlink(missing_ok=True)
        finally:
            os.close(fd)
        if created:
            try:
                out_dir.rmdir()  # only succeeds when nothing was written
            except OSError:
                pass
