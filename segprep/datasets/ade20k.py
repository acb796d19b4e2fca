"""ADE20K scene parsing (ADEChallengeData2016): images/{training,validation}/*.jpg, annotations/…/*.png.

Labels are already raw index PNGs: 1..150 are the classes and 0 is "other", which DeepLab
registers as the ignore label of a 151-class dataset; they are stored byte for byte.
"""

from __future__ import annotations

from pathlib import Path

from segprep.datasets.adapter import ConvertContext, ConvertPlan
from segprep.datasets.base import DatasetLayout, LabelRules, LayoutError
from segprep.datasets.folder import load_split_folders

ADE20K_FOLDERS = {"train": "training", "val": "validation"}


def find_ade_root(root: Path) -> Path:
    """Accept ADEChallengeData2016/ itself or the folder that holds it."""
    for candidate in (root, root / "ADEChallengeData2016"):
        if (candidate / "images").is_dir() and (candidate / "annotations").is_dir():
            return candidate
    raise LayoutError(f"{root}: not an ADEChallengeData2016 folder (expected images/ and annotations/)")


def load_ade20k(root: Path, splits: list[str] | None = None) -> DatasetLayout:
    """train (training/) and val (validation/) paired by file stem; trainval when asked for."""
    ade = find_ade_root(root)
    folders = {split: (ade / "images" / folder, ade / "annotations" / folder, f"images/{folder}/ or annotations/{folder}/") for split, folder in ADE20K_FOLDERS.items()}
    return load_split_folders(ade, "ADE20K", folders, splits, LabelRules())


def plan(context: ConvertContext) -> ConvertPlan:
    return ConvertPlan(load_ade20k(context.root, context.splits), context.registry.get("ade20k"))
