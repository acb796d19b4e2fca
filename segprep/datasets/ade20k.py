"""ADE20K scene parsing (ADEChallengeData2016): images/{training,validation}/*.jpg, annotations/…/*.png.

Labels are already raw index PNGs: 1..150 are the classes and 0 is "other", which DeepLab
registers as the ignore label of a 151-class dataset; they are stored byte for byte.
"""

from __future__ import annotations

from pathlib import Path

from segprep.datasets.adapter import ConvertContext, ConvertPlan
from segprep.datasets.base import (
    DatasetLayout,
    LabelRules,
    LayoutError,
    union_split,
)
from segprep.datasets.folder import pair_by_stem

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
    wanted = list(splits or ADE20K_FOLDERS)
    layout = DatasetLayout({}, LabelRules())
    for split, folder in ADE20K_FOLDERS.items():
        if split not in wanted and not ("trainval" in wanted):
            continue
        images, labels = ade / "images" / folder, ade / "annotations" / folder
        if not images.is_dir() or not labels.is_dir():
            raise LayoutError(f"{ade}: no images/{folder}/ or annotations/{folder}/")
        samples, unpaired = pair_by_stem(images, labels)
        layout.splits[split] = samples
        layout.problems.extend(p.for_split(split) for p in unpaired)
    if "trainval" in wanted:
        union_split(layout, "trainval", ["train", "val"])
    unknown = [s for s in wanted if s not in layout.splits]
    if unknown:
        raise LayoutError(f"{ade}: ADE20K has splits train, val (and trainval), not {', '.join(unknown)}")
    layout.splits = {s: layout.splits[s] for s in wanted}
    return layout


def plan(context: ConvertContext) -> ConvertPlan:
    return ConvertPlan(load_ade20k(context.root, context.splits), context.registry.get("ade20k"))
