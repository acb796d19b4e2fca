"""Mapillary Vistas v1.2: {training,validation}/images/*.jpg with v1.2/labels/*.png (labels/ before release 2.0).

The labels are palette PNGs whose indices are the 66 v1.2 ids, so each is stored as the index
image of those ids (values unchanged). Id 65, "Unlabeled", is not scored by the benchmark: the
registry makes it the ignore label of a 65-class dataset. The testing split has no labels.
"""

from __future__ import annotations

from pathlib import Path

from segprep.datasets.adapter import ConvertContext, ConvertPlan
from segprep.datasets.base import DatasetLayout, LabelRules, LayoutError, union_split
from segprep.datasets.folder import pair_by_stem

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
    wanted = list(splits or VISTAS_FOLDERS)
    unknown = [s for s in wanted if s not in VISTAS_FOLDERS and s != "trainval"]
    if unknown:
        raise LayoutError(f"{root}: Mapillary Vistas has splits train, val (and trainval), not {', '.join(unknown)}")
    layout = DatasetLayout({}, VISTAS_RULES)
    for split, folder in VISTAS_FOLDERS.items():
        if split not in wanted and "trainval" not in wanted:
            continue
        images, labels = root / folder / "images", find_label_dir(root / folder)
        if not images.is_dir() or labels is None:
            raise LayoutError(f"{root}: no {folder}/images/ with {folder}/v1.2/labels/ or {folder}/labels/ (expected a Mapillary Vistas folder)")
        samples, unpaired = pair_by_stem(images, labels)
        layout.splits[split] = samples
        layout.problems.extend(p.for_split(split) for p in unpaired)
    if "trainval" in wanted:
        union_split(layout, "trainval", ["train", "val"])
    layout.splits = {s: layout.splits[s] for s in wanted}
    return layout


def plan(context: ConvertContext) -> ConvertPlan:
    return ConvertPlan(load_mapillary_vistas(context.root, context.splits), context.registry.get("mapillary_vistas"))
