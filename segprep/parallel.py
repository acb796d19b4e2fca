"""An ordered parallel map over worker processes, or in-process when one worker is asked for."""

from __future__ import annotations

import functools
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any


def default_workers() -> int:
    """All cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _exit_with_parent(parent_pid: int) -> None:
    """Worker initializer: end this worker soon after its parent dies (e.g. kill -9).

    Without it, orphaned workers finish their current task and print broken-pipe tracebacks,
    and could still be writing temporary files while a re-run starts.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _call_while_parent_lives(fn: Callable[[Any], Any], parent_pid: int, item: Any) -> Any:
    """Run one task; if the parent died meanwhile, leave quietly instead of failing to send the result.

    Complements the watchdog thread, which only polls: a task that ends just after the parent's
    death would otherwise print a broken-pipe traceback from the pool's result pipe.
    """
    result = fn(item)
    if os.getppid() != parent_pid:
        os._exit(1)
    return result


class OrderedPool:
    """Context manager around multiprocessing.Pool whose imap keeps input order.

    Uses fork where available: segprep's parent process holds no threads or TensorFlow state
    when the pool starts, and fork spares each worker the ~0.2 s of re-importing numpy and PIL.
    Create the pool before starting a progress bar (whose refresh thread must not be forked).
    """

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self._pool: Any = None

    def __enter__(self) -> OrderedPool:
        if self.workers > 1:
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("fork" if "fork" in methods else None)
            self._pool = context.Pool(self.workers, initializer=_exit_with_parent, initargs=(os.getpid(),))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            if exc[0] is None:
                self._pool.close()
            else:
                self._pool.terminate()
            self._pool.join()
            self._pool = None

    def imap(self, fn: Callable[[Any], Any], items: Iterable[Any], total: int, chunksize: int | None = None) -> Iterator[Any]:
        """fn over items in order; by default chunks are small enough to keep every core busy to the end."""
        if self._pool is None:
            return map(fn, items)
        if chunksize is None:
            chunksize = max(1, min(8, total // (self.workers * 8)))
        guarded = functools.partial(_call_while_parent_lives, fn, os.getpid())
        return self._pool.imap(guarded, items, chunksize)
