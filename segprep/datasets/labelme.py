"""The VOC layout that `segprep labelme` writes, read back for `segprep convert labelme`.

STUB: to be written (issue 3).
"""

from __future__ import annotations

from pathlib import Path

from segprep.datasets.base import DatasetLayout


def load_labelme_voc(root: Path, splits: list[str] | None) -> tuple[DatasetLayout, list[str]]:
    raise NotImplementedError
