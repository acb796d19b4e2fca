"""The one progress protocol: long work reports through a sink, whoever shows it.

The CLI's sink is a rich progress bar (segprep.cli.common.progress_bar); library callers and
tests pass NoProgress. A task's callback is called with the number of items just finished.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol


class ProgressSink(Protocol):
    def task(self, description: str, total: int) -> Callable[[int], None]: ...


class NoProgress:
    """A sink that shows nothing."""

    def task(self, description: str, total: int) -> Callable[[int], None]:
        return lambda n: None


# Opens a sink for a stretch of work and closes it after (the CLI's bar: segprep.cli.common.progress_bar).
# A factory rather than a sink, so that work which starts worker processes can do so before a bar's
# refresh thread exists (a thread must not be forked).
ProgressFactory = Callable[[], AbstractContextManager[ProgressSink]]


@contextmanager
def silent() -> Iterator[ProgressSink]:
    """The ProgressFactory that shows nothing."""
    yield NoProgress()
