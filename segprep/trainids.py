"""Cityscapes polygons (or official labelIds PNGs) -> *_labelTrainIds.png next to each annotation, in parallel.

STUB: to be written (issue 3).
"""

from __future__ import annotations

from pathlib import Path


def generate_missing_trainids(root: Path, workers: int, quiet: bool) -> list[str]:
    """Write the *_labelTrainIds.png that are missing under root; return one line per bad annotation."""
    raise NotImplementedError
