"""KITTI road benchmark: training/image_2/{um,umm,uu}_NNNNNN.png with gt_image_2/{cat}_road_NNNNNN.png.

The ground truth is colour-coded: magenta road -> 1, red background -> 0, black (outside the
evaluated area) -> the ignore label. Any other colour is refused, because it means the file is
not a road ground truth (e.g. a lane mask or a resized, interpolated copy). The benchmark has no
public validation split, so a seeded one is drawn with equal numbers from each road category,
as the category mix differs a lot (urban marked, multiple marked, unmarked).
"""

from __future__ import annotations

import re
from pathlib import Path

from segprep.colormaps import void_color
from segprep.datasets.adapter import ConvertContext, ConvertPlan
from segprep.datasets.base import (
    DatasetLayout,
    LabelRules,
    LayoutError,
    Sample,
    union_split,
)
from segprep.problems import Problem
from segprep.splits import seeded_pick

KITTI_CATEGORIES = ("um", "umm", "uu")
VAL_PER_CATEGORY = 16  # 3 x 16 = 48 of the 289 training images
_IMAGE = re.compile(r"(?P<category>um|umm|uu)_(?P<number>\d{6})")
_ROAD_GT = re.compile(r"(?P<category>um|umm|uu)_road_(?P<number>\d{6})")


def kitti_road_rules() -> LabelRules:
    """Colour-coded in the registry's colormap (red background, magenta road); black is not evaluated."""
    black = void_color("kitti_road")
    assert black is not None
    return LabelRules(colour_coded=True, void_colors=(black,))


def find_training_dir(root: Path) -> Path:
    """Accept data_road/, data_road/training/ or a folder holding data_road/."""
    for candidate in (root / "training", root, root / "data_road" / "training"):
        if (candidate / "image_2").is_dir() and (candidate / "gt_image_2").is_dir():
            return candidate
    raise LayoutError(f"{root}: not a KITTI road folder (expected training/image_2/ and training/gt_image_2/)")


def load_kitti_road(root: Path, splits: list[str] | None = None, seed: int = 0, val_per_category: int = VAL_PER_CATEGORY) -> DatasetLayout:
    """train/val drawn per category with seeded_pick (val: val_per_category of each), plus trainval.

    A category with fewer than 2 x val_per_category images gives half of them to val, so a small
    tree still has both splits. Lane ground truth (`*_lane_*.png`) is not a road label and is left alone.
    """
    training = find_training_dir(root)
    images = {p.stem: p for p in sorted((training / "image_2").glob("*.png")) if _IMAGE.fullmatch(p.stem)}
    labels: dict[str, Path] = {}
    for path in sorted((training / "gt_image_2").glob("*_road_*.png")):
        match = _ROAD_GT.fullmatch(path.stem)
        if match:
            labels[f"{match['category']}_{match['number']}"] = path
    if not images:
        raise LayoutError(f"{training / 'image_2'}: no um_/umm_/uu_ images found")
    unpaired = [Problem(str(images[n]), f"image has no road ground truth in {training / 'gt_image_2'}", split="*") for n in sorted(set(images) - set(labels))]
    unpaired += [Problem(str(labels[n]), f"ground truth has no image in {training / 'image_2'}", split="*") for n in sorted(set(labels) - set(images))]
    names = sorted(set(images) & set(labels))
    val: list[str] = []
    for index, category in enumerate(KITTI_CATEGORIES):
        members = [n for n in names if n.startswith(category + "_")]
        val += seeded_pick(members, min(val_per_category, len(members) // 2), seed + index)
    val_set = set(val)
    assignment = {"train": [n for n in names if n not in val_set], "val": sorted(val_set)}
    layout = DatasetLayout({s: [Sample(n, images[n], labels[n]) for n in ns] for s, ns in assignment.items()}, kitti_road_rules())
    union_split(layout, "trainval", ["train", "val"])
    for split in layout.splits:
        layout.problems.extend(p.for_split(split) for p in unpaired)
    if splits:
        layout.splits = {s: layout.splits[s] for s in splits if s in layout.splits}
    return layout


def plan(context: ConvertContext) -> ConvertPlan:
    layout = load_kitti_road(context.root, context.splits, context.options["seed"])
    return ConvertPlan(layout, context.registry.get("kitti_road"))
