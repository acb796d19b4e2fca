"""Mapillary Vistas v1.2: {training,validation}/images/*.jpg with v1.2/labels/*.png (labels/ before release 2.0).

The labels are palette PNGs whose indices are the 66 v1.2 ids, so each is stored as the index
image of those ids (values unchanged). Id 65, "Unlabeled", is not scored by the benchmark: the
registry makes it the ignore label of a 65-class dataset. The testing split has no labels.
"""

from __future__ import annotations

from pathlib import Path

from segprep.datasets.adapter import ConvertContext, ConvertPlan
from segprep.datasets.base import DatasetLayout, LabelRules
from segprep.datasets.folder import load_split_folders

VISTAS_FOLDERS = {"train": "training", "val": "validation"}
VISTAS_RULES = LabelRules(accept_palette=True)


def find_label_dir(split_dir: Path) -> Path | None:
    """v1.2/labels/ of the 2.0 release (which also holds v2.0/), else labels/ of the 1.x releases."""
    for candidate in (split_dir / "v1.2" / "labels", split_dir / "labels"):
        if candidate.is_dir():
            return candidate
    return None


def load_mapillary_vistas(root: Path, splits: list[str] | None = None) -> DatasetLayout:
    """train (training/) and val (validation/) paired by file stem; trainval when asked for."""
    expected = "{0}/images/ with {0}/v1.2/labels/ or {0}/labels/ (expected a Mapillary Vistas folder)"
    folders = {split: (root / folder / "images", find_label_dir(root / folder), expected.format(folder)) for split, folder in VISTAS_FOLDERS.items()}
    return load_split_folders(root, "Mapillary Vistas", folders, splits, VISTAS_RULES)


def plan(context: ConvertContext) -> ConvertPlan:
    return ConvertPlan(load_mapillary_vistas(context.root, context.splits), context.registry.get("mapillary_vistas"))
