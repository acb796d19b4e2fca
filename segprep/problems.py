"""The one problem record: a bad input and why, reported as one `where: reason` line.

Every check that refuses an input (a list line, an unpaired file, a sample that cannot be
written, an annotation that cannot be rasterized) makes one of these, so that every command
prints and records them alike.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    """where: the file at fault (a list's `file:line`); name: its sample, when it has one; split: the
    split it was found for ("*": every split of the layout; "" where splits do not apply)."""

    where: str
    reason: str
    name: str = ""
    split: str = ""

    def line(self) -> str:
        return f"{self.where}: {self.reason}"

    def for_split(self, split: str) -> Problem:
        return dataclasses.replace(self, split=split)

    def manifest_entry(self) -> dict[str, str]:
        """How a manifest records a skipped input (docs/tfrecord.md: name, path, reason)."""
        return {"name": self.name, "path": self.where, "reason": self.reason}

    @classmethod
    def from_manifest(cls, entry: dict[str, Any]) -> Problem:
        return cls(entry["path"], entry["reason"], entry["name"])
