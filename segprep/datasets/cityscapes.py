"""Cityscapes: leftImg8bit/{split}/{city}/*_leftImg8bit.png with gtFine (and gtCoarse) *_labelTrainIds.png.

Splits as the benchmark defines them: `train`, `val`, `test` from gtFine; `trainval` = train + val;
`train_extra` = fine train + the coarse `train_extra` set (2975 + 19998 = 22973), which is how
DeepLab trains its Cityscapes models with coarse data. Unions are list concatenations of the
same samples; no file is copied. The sample name (image/filename) is the frame's base name,
`aachen_000000_000019`, without the `_leftImg8bit` suffix.

A class subset (`classes=[car]`) reads the same trainIds files and remaps them while writing:
chosen classes 1..k, every other class 0, void 255 stays 255.
"""

from __future__ import annotations

from pathlib import Path

from segprep.datasets.adapter import ConvertContext, ConvertPlan, OptionError, PrepareError
from segprep.datasets.base import (
    DatasetLayout,
    LabelRules,
    LayoutError,
    Sample,
    union_split,
)
from segprep.problems import Problem
from segprep.ops.cityscapes_labels import (
    BY_NAME,
    IGNORE_TRAIN_ID,
    TRAIN_CLASS_NAMES,
    UnknownClassError,
    resolve_classes,
)
from segprep.ops.cityscapes_raster import subset_lookup
from segprep.registry import DatasetEntry

IMAGE_DIR = "leftImg8bit"
IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_labelTrainIds.png"

# split -> (annotation folder, split folder); "_coarse_extra" is the coarse-only part of train_extra.
_SOURCES = {
    "train": ("gtFine", "train"),
    "val": ("gtFine", "val"),
    "test": ("gtFine", "test"),
    "_coarse_extra": ("gtCoarse", "train_extra"),
}
_UNIONS = {"trainval": ("train", "val"), "train_extra": ("train", "_coarse_extra")}
SPLIT_ORDER = ("train", "val", "test", "trainval", "train_extra")


def rules_for(classes: list[str] | None = None) -> LabelRules:
    """The 19 trainIds as stored; for a subset, the trainId -> subset id remap (identity pairs left out)."""
    if not classes:
        return LabelRules()
    table = subset_lookup(resolve_classes(classes))
    return LabelRules(remap=tuple((train_id, int(table[train_id])) for train_id in range(len(TRAIN_CLASS_NAMES)) if table[train_id] != train_id))


def subset_name(classes: list[str] | tuple[str, ...]) -> str:
    """`cityscapes_car`, `cityscapes_person_rider`, `cityscapes_traffic_light`."""
    return "cityscapes_" + "_".join(name.replace(" ", "_") for name in resolve_classes(list(classes)))


def subset_entry(classes: list[str], name: str | None = None) -> DatasetEntry:
    """Registry entry of a subset: [background, *classes], ignore 255, background black + the classes' colours."""
    chosen = resolve_classes(classes)
    colormap = [[0, 0, 0]] + [list(BY_NAME[c].color) for c in chosen]
    return DatasetEntry(name or subset_name(chosen), len(chosen) + 1, IGNORE_TRAIN_ID, colormap, ["background", *chosen])


def _pair(split: str, images: Path, group: str, labels: Path) -> tuple[list[Sample], list[Problem]]:
    """Samples of one image folder with its annotation folder; a problem for each file without its partner."""
    label_suffix = f"_{group}{LABEL_SUFFIX}"
    image_files = {p.relative_to(images).as_posix()[: -len(IMAGE_SUFFIX)]: p for p in images.glob(f"*/*{IMAGE_SUFFIX}")}
    label_files = {p.relative_to(labels).as_posix()[: -len(label_suffix)]: p for p in labels.glob(f"*/*{label_suffix}")}
    samples = [Sample(Path(key).name, image_files[key], label_files[key]) for key in sorted(image_files.keys() & label_files.keys())]
    problems = [
        Problem(str(image_files[key]), f"image has no label {labels / (key + label_suffix)}", split=split)
        for key in sorted(image_files.keys() - label_files.keys())
    ]
    problems += [
        Problem(str(label_files[key]), f"label has no image {images / (key + IMAGE_SUFFIX)}", split=split)
        for key in sorted(label_files.keys() - image_files.keys())
    ]
    return samples, problems


def load_cityscapes(root: Path, splits: list[str] | None, classes: list[str] | None = None) -> DatasetLayout:
    """The splits asked for (default: every one the tree has) that exist under root.

    A split exists when both its image folder and its annotation folder do; a split asked for
    that does not exist is left out (the caller reports it). Run `segprep trainids` (or let
    `segprep convert cityscapes` do it) first: the labels read are the *_labelTrainIds.png.
    """
    wanted = [s for s in splits if not s.startswith("_")] if splits else list(SPLIT_ORDER)
    layout = DatasetLayout({}, rules_for(classes))
    needed = set(wanted) | {part for s in wanted for part in _UNIONS.get(s, ())}
    for split in (s for s in _SOURCES if s in needed):
        group, folder = _SOURCES[split]
        images, labels = root / IMAGE_DIR / folder, root / group / folder
        if images.is_dir() and labels.is_dir():
            layout.splits[split], problems = _pair(split, images, group, labels)
            layout.problems.extend(problems)
    if not layout.splits:
        raise LayoutError(
            f"{root}: no Cityscapes split found (expected {IMAGE_DIR}/{{train,val,test}}/CITY/*{IMAGE_SUFFIX} "
            f"with gtFine/{{train,val,test}}/CITY/*_gtFine{LABEL_SUFFIX})"
        )
    for union, parts in _UNIONS.items():
        if union in wanted:
            union_split(layout, union, list(parts))
    layout.splits = {s: layout.splits[s] for s in wanted if s in layout.splits}
    layout.problems = [p for p in layout.problems if p.split in layout.splits]
    return layout


def plan(context: ConvertContext) -> ConvertPlan:
    """Cityscapes with its trainIds (made from the polygons first where missing), optionally as a class subset."""
    from segprep.trainids import generate_missing_trainids

    classes, name = context.options["classes"], context.options["name"]
    chosen = None
    if classes is not None:
        try:
            chosen = list(resolve_classes(classes.split(",")))
        except UnknownClassError as exc:
            raise OptionError("--classes", str(exc)) from None
    bad = generate_missing_trainids(context.root, context.workers, context.progress)
    if bad:
        raise PrepareError(bad, f"{len(bad)} Cityscapes annotation(s) could not be turned into trainIds; nothing written")
    layout = load_cityscapes(context.root, context.splits, chosen)
    if not chosen:
        return ConvertPlan(layout, context.registry.get("cityscapes"))
    entry = subset_entry(chosen, name)
    if entry.name in context.registry.datasets:
        return ConvertPlan(layout, context.registry.get(entry.name))
    return ConvertPlan(layout, entry, register=True)
