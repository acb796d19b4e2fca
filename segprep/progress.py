"""The one progress protocol: long work reports through a sink, whoever shows it.

The CLI's sink is a rich progress bar (segprep.cli.common.progress_bar); library callers and
tests pass NoProgress. A task's callback is called with the number of items just finished.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class ProgressSink(Protocol):
    def task(self, description: str, total: int) -> Callable[[int], None]: ...


class NoProgress:
    """A sink that shows nothing."""

    def task(self, description: str, total: int) -> Callable[[int], None]:
        return lambda n: None
