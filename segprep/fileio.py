"""Atomic file writes: a temporary file in the target's folder, renamed into place when complete."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def atomic_write(path: Path, write: Callable[[IO[Any]], None], mode: str = "wb", encoding: str | None = None) -> None:
    """Call write(handle) on a hidden temporary beside path, then rename it over path.

    The temporary is created with open() rather than mkstemp so the file gets the usual
    permissions (umask), not mkstemp's owner-only 0600.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, mode, encoding=encoding) as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
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
