"""A generic folder of pairs: ROOT/images/{stem}.jpg|png and ROOT/labels/{stem}.png, split by a seeded shuffle."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from segprep.datasets.adapter import ConvertContext, ConvertPlan, OptionError
from segprep.datasets.base import (
    IMAGE_EXTENSIONS,
    DatasetLayout,
    LabelRules,
    LayoutError,
    Sample,
    ambiguous_stem,
    union_split,
)
from segprep.fileio import check_regular_file, read_regular_file
from segprep.problems import Problem
from segprep.splits import SplitSpecError, parse_fractions, seeded_split, unplaced_note

# Index PNGs, or palette PNGs whose indices are the class ids (what most labelling tools save).
FOLDER_RULES = LabelRules(accept_palette=True)


def _files_by_stem(folder: Path, suffixes: tuple[str, ...], what: str) -> tuple[dict[str, Path], list[Problem]]:
    """{stem: path} of every entry named like an image (or label); a problem for each entry that is
    not a regular file, and one for each stem that names several files (which one is meant cannot
    be guessed, and silently keeping one would drop the other)."""
    found: dict[str, list[Path]] = {}
    problems: list[Problem] = []
    for path in sorted(folder.iterdir()):
        if path.suffix not in suffixes:
            continue
        try:
            check_regular_file(path)
        except FileNotFoundError:
            problems.append(Problem(str(path), f"{what} is a dangling link", split="*"))
            continue
        except OSError as exc:
            reason = "is a folder, not a file" if exc.errno == errno.EISDIR else f"is {exc.strerror}"
            problems.append(Problem(str(path), f"{what} {reason}", split="*"))
            continue
        found.setdefault(path.stem, []).append(path)
    for stem, paths in found.items():
        if len(paths) > 1:
            problems.append(Problem(str(paths[0]), ambiguous_stem(stem, paths).replace("images", f"{what}s", 1), split="*"))
    return {stem: paths[0] for stem, paths in found.items() if len(paths) == 1}, problems


def pair_by_stem(images_dir: Path, labels_dir: Path) -> tuple[list[Sample], list[Problem]]:
    """Samples for every stem with both an image and a label; a problem for each file without its
    partner, each entry that is not a regular file and each stem shared by two files."""
    images, problems = _files_by_stem(images_dir, IMAGE_EXTENSIONS, "image")
    labels, label_problems = _files_by_stem(labels_dir, (".png", ".PNG"), "label")
    problems += label_problems
    unusable = {Path(p.where).stem for p in problems}  # already reported: not also "has no partner"
    problems += [Problem(str(images[s]), "image has no label in " + str(labels_dir), split="*") for s in sorted(set(images) - set(labels) - unusable)]
    problems += [Problem(str(labels[s]), "label has no image in " + str(images_dir), split="*") for s in sorted(set(labels) - set(images) - unusable)]
    samples = [Sample(s, images[s], labels[s]) for s in sorted(set(images) & set(labels))]
    return samples, problems


def load_split_folders(where: Path, name: str, folders: dict[str, tuple[Path, Path | None, str]], wanted: list[str] | None, rules: LabelRules) -> DatasetLayout:
    """Splits that are each an image folder and a label folder paired by stem, plus trainval (train + val) when asked for.

    folders: split -> (image folder, label folder or None where there is none, what the layout expects there).
    """
    wanted = list(wanted or folders)
    unknown = [s for s in wanted if s not in folders and s != "trainval"]
    if unknown:
        raise LayoutError(f"{where}: {name} has splits {', '.join(folders)} (and trainval), not {', '.join(unknown)}")
    layout = DatasetLayout({}, rules)
    for split, (images, labels, expected) in folders.items():
        if split not in wanted and "trainval" not in wanted:
            continue
        if not images.is_dir() or labels is None or not labels.is_dir():
            raise LayoutError(f"{where}: no {expected}")
        samples, unpaired = pair_by_stem(images, labels)
        layout.splits[split] = samples
        layout.problems.extend(p.for_split(split) for p in unpaired)
    if "trainval" in wanted:
        union_split(layout, "trainval", ["train", "val"])
    layout.splits = {s: layout.splits[s] for s in wanted}
    return layout


def load_folder(
    root: Path,
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
    layout = DatasetLayout({split: [by_name[n] for n in names] for split, names in assignment.items()}, FOLDER_RULES)
    placed = sum(len(names) for names in assignment.values())
    if placed < len(by_name):
        layout.notes.append(unplaced_note(len(by_name) - placed, len(by_name), fractions))
    for split in assignment:
        layout.problems.extend(p.for_split(split) for p in unpaired)
    union_split(layout, "trainval", ["train", "val"])
    return layout


def plan(context: ConvertContext) -> ConvertPlan:
    """The folder's splits under --name: the registry's entry, or a new one from its class names."""
    from segprep.colormaps import colormap_option
    from segprep.registry import DatasetEntry, validate_entry

    options = context.options
    name = options["name"]
    if not name:
        raise OptionError("--name", "convert folder needs --name (the dataset's registry name)")
    try:
        fractions = parse_fractions(list(options["split"]) or ["train=0.9", "val=0.1"])
    except SplitSpecError as exc:
        raise OptionError("--split", str(exc)) from None
    class_names: Path | None = options["class_names"]
    inputs = [class_names] if class_names else []
    if name in context.registry.datasets:
        return ConvertPlan(load_folder(context.root, fractions, options["seed"]), context.registry.get(name), inputs=inputs)
    names_file = class_names or context.root / "class_names.txt"
    if not os.path.lexists(names_file):
        raise OptionError("--class-names", f"{name!r} is not in the registry: give --class-names FILE (or put class_names.txt in {context.root})")
    try:
        text = read_regular_file(names_file).decode("utf-8")  # a FIFO must not hang the run
    except UnicodeDecodeError:
        raise LayoutError(f"{names_file}: class names file is not UTF-8 text") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    colormap = colormap_option(options["colormap"], len(names))
    raw = DatasetEntry(name, len(names), options["ignore_label"], colormap, names).to_dict()
    entry = validate_entry(name, raw, names_file)
    return ConvertPlan(load_folder(context.root, fractions, options["seed"]), entry, register=True, inputs=inputs)
