"""A generic folder of pairs: ROOT/images/{stem}.jpg|png and ROOT/labels/{stem}.png, split by a seeded shuffle."""

from __future__ import annotations

from pathlib import Path

from segprep.datasets.base import (
    IMAGE_EXTENSIONS,
    DatasetLayout,
    LayoutError,
    ListProblem,
    Sample,
    union_split,
)
from segprep.ops.labels import LabelPolicy
from segprep.splits import seeded_split


def pair_by_stem(images_dir: Path, labels_dir: Path) -> tuple[list[Sample], list[ListProblem]]:
    """Samples for every stem with both an image and a label; a problem for each file without its partner."""
    images = {p.stem: p for p in sorted(images_dir.iterdir()) if p.suffix in IMAGE_EXTENSIONS and p.is_file()}
    labels = {p.stem: p for p in sorted(labels_dir.iterdir()) if p.suffix.lower() == ".png" and p.is_file()}
    problems = [ListProblem("*", str(images[s]), "image has no label in " + str(labels_dir)) for s in sorted(set(images) - set(labels))]
    problems += [ListProblem("*", str(labels[s]), "label has no image in " + str(images_dir)) for s in sorted(set(labels) - set(images))]
    samples = [Sample(s, images[s], labels[s]) for s in sorted(set(images) & set(labels))]
    return samples, problems


def load_folder(
    root: Path,
    policy: LabelPolicy,
    fractions: dict[str, float],
    seed: int = 0,
    images: str = "images",
    labels: str = "labels",
) -> DatasetLayout:
    """Pair images and labels by stem and split them with seeded_split; adds trainval when train and val exist.

    A stem with only an image or only a label is a problem of every split (it cannot be placed).
    """
    images_dir, labels_dir = root / images, root / labels
    for folder in (images_dir, labels_dir):
        if not folder.is_dir():
            raise LayoutError(f"{root}: no {folder.name}/ folder (expected {images}/ and {labels}/ with matching stems)")
    samples, unpaired = pair_by_stem(images_dir, labels_dir)
    if not samples and not unpaired:
        raise LayoutError(f"{images_dir}: no images found")
    by_name = {s.name: s for s in samples}
    assignment = seeded_split(sorted(by_name), fractions, seed)
    layout = DatasetLayout({split: [by_name[n] for n in names] for split, names in assignment.items()}, policy)
    for split in assignment:
        layout.problems.extend(ListProblem(split, p.where, p.reason) for p in unpaired)
    union_split(layout, "trainval", ["train", "val"])
    return layout
