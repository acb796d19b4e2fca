"""Refusing output locations that would destroy a command's own inputs.

A user's inputs are never overwritten or deleted: any output that is equal to, inside, or
contains an input of the same command is refused before any work starts. Paths are compared
after resolving symlinks and `..`, so `out/../data` and a link to `data` are caught too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from segprep.errors import OutputLocationError


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(os.path.abspath(path)))


def _relation(output: Path, source: Path) -> str | None:
    if output == source:
        return "is"
    if source in output.parents:
        return "is inside"
    if output in source.parents:
        return "contains"
    return None


def check_output_location(output: Path, inputs: Iterable[Path], what: str = "output") -> None:
    """Raise OutputLocationError when `output` is, is inside, or contains any of `inputs`.

    `what` names the option in the message (e.g. "--out"); inputs may be files or folders, and
    need not exist (a missing input cannot be harmed, but comparing is still cheap and safe).
    """
    target = _resolved(output)
    for source in inputs:
        resolved = _resolved(source)
        relation = _relation(target, resolved)
        if relation is not None:
            raise OutputLocationError(
                f"{output}: {what} {relation} the input {source}; choose a location outside the inputs"
            )


def check_not_overwriting(outputs: Iterable[Path], inputs: Iterable[Path], what: str = "output") -> None:
    """Raise OutputLocationError when any output file would replace one of the input files."""
    sources = {_resolved(p): p for p in inputs}
    for output in outputs:
        source = sources.get(_resolved(output))
        if source is not None:
            raise OutputLocationError(f"{output}: {what} would overwrite the input {source}")
