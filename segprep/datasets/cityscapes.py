"""Cityscapes: leftImg8bit/{split}/{city}/*_leftImg8bit.png with gtFine (and gtCoarse) *_labelTrainIds.png.

STUB: to be written (issue 3).
"""

from __future__ import annotations

from pathlib import Path

from segprep.datasets.base import DatasetLayout
from segprep.registry import DatasetEntry


def load_cityscapes(root: Path, splits: list[str] | None, classes: list[str] | None = None) -> DatasetLayout:
    raise NotImplementedError


def subset_entry(classes: list[str], name: str | None = None) -> DatasetEntry:
    raise NotImplementedError
