"""PASCAL VOC 2012 segmentation layout: JPEGImages/, SegmentationClass/ (palette PNGs), ImageSets/Segmentation/*.txt."""

from __future__ import annotations

from pathlib import Path

from segprep.datasets.adapter import ConvertContext, ConvertPlan
from segprep.datasets.base import (
    DatasetLayout,
    LabelRules,
    LayoutError,
    Sample,
    read_list_lines,
)
from segprep.problems import Problem


def find_voc_root(root: Path) -> Path:
    """Accept the VOC2012 folder itself or a folder above it (VOCdevkit/ or its parent)."""
    for candidate in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
        if (candidate / "ImageSets" / "Segmentation").is_dir():
            return candidate
    raise LayoutError(f"{root}: not a PASCAL VOC 2012 folder (no ImageSets/Segmentation/ found)")


def load_pascal_voc(root: Path, label_dir: str = "SegmentationClass", splits: list[str] | None = None) -> DatasetLayout:
    """Splits from ImageSets/Segmentation/*.txt (stems), images from JPEGImages/, labels from label_dir/.

    label_dir may be SegmentationClassAug for the augmented 10,582-image training set.
    """
    voc = find_voc_root(root)
    list_dir = voc / "ImageSets" / "Segmentation"
    available = sorted(p.stem for p in list_dir.glob("*.txt"))
    wanted = splits or available
    missing = [s for s in wanted if s not in available]
    if missing:
        raise LayoutError(f"{list_dir}: no list for split(s) {', '.join(missing)} (found: {', '.join(available)})")
    layout = DatasetLayout({}, LabelRules(accept_palette=True))  # VOC's labels are palette PNGs
    for split in wanted:
        entries, problems = read_list_lines(list_dir / f"{split}.txt", split)
        layout.problems.extend(problems)
        samples = []
        for number, stem in entries:
            if len(stem.split()) != 1:
                layout.problems.append(Problem(f"{list_dir / split}.txt:{number}", f"expected one stem per line, got {stem!r}", split=split))
                continue
            samples.append(Sample(stem, voc / "JPEGImages" / f"{stem}.jpg", voc / label_dir / f"{stem}.png"))
        layout.splits[split] = samples
    return layout


def plan(context: ConvertContext) -> ConvertPlan:
    layout = load_pascal_voc(context.root, context.options["label_dir"], context.splits)
    return ConvertPlan(layout, context.registry.get("pascal_voc_seg"))
