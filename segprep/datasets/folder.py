"""A generic folder of pairs: ROOT/images/{stem}.jpg|png and ROOT/labels/{stem}.png, split by a seeded
shuffle or by list files (--lists DIR: DIR/train.txt, val.txt, ...).

Labels are index (or palette) PNGs, or with --label-colors RGB images in a colour map: a built-in
colormap name or a file of `R G B name` lines, one per class in class order. A colour that is not in
the map is refused, unless --void-color names it (stored as the ignore label).
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from segprep.datasets.adapter import ConvertContext, ConvertPlan, OptionError
from segprep.datasets.base import (
    IMAGE_EXTENSIONS,
    DatasetLayout,
    LabelRules,
    LayoutError,
    Sample,
    ambiguous_stem,
    image_candidates,
    read_list_lines,
    union_split,
)
from segprep.fileio import check_regular_file, read_regular_file
from segprep.problems import Problem
from segprep.splits import SplitSpecError, check_split_name, parse_fractions, seeded_split, unplaced_note

if TYPE_CHECKING:
    from segprep.registry import DatasetEntry, Registry

# Index PNGs, or palette PNGs whose indices are the class ids (what most labelling tools save).
FOLDER_RULES = LabelRules(accept_palette=True)


def has_line_break(name: str) -> bool:
    """A name that cannot be one line of a list file (DeepLab's build scripts read one name a line)."""
    return "\n" in name or "\r" in name


def line_break_reason(what: str, name: str) -> str:
    """The one-line reason a name with a line break is refused (repr keeps it on one line)."""
    return f"{what} name {name!r} holds a line break, so it cannot be a list line: rename it"


def _files_by_stem(folder: Path, suffixes: tuple[str, ...], what: str) -> tuple[dict[str, Path], list[Problem]]:
    """{stem: path} of every entry named like an image (or label); a problem for each entry that is
    not a regular file, and one for each stem that names several files (which one is meant cannot
    be guessed, and silently keeping one would drop the other)."""
    found: dict[str, list[Path]] = {}
    problems: list[Problem] = []
    for path in sorted(folder.iterdir()):
        if path.suffix not in suffixes:
            continue
        if has_line_break(path.name):  # named by the folder and the name's repr: one error line
            problems.append(Problem(str(folder), line_break_reason(f"{what} file", path.name), name=path.stem, split="*"))
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
    unusable = {p.name or Path(p.where).stem for p in problems}  # already reported: not also "has no partner"
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
    rules: LabelRules = FOLDER_RULES,
    lists: Path | None = None,
) -> DatasetLayout:
    """Pair images and labels by stem and split them with seeded_split, or as the list files in
    `lists` say (read_split_lists); adds trainval when train and val exist (and no trainval list).

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
    if lists is not None:
        layout = read_split_lists(lists, root, images_dir, samples, rules)
    else:
        assignment = seeded_split(sorted(by_name), fractions, seed)
        layout = DatasetLayout({split: [by_name[n] for n in names] for split, names in assignment.items()}, rules)
        placed = sum(len(names) for names in assignment.values())
        if placed < len(by_name):
            layout.notes.append(unplaced_note(len(by_name) - placed, len(by_name), fractions))
    for split in list(layout.splits):
        layout.problems.extend(p.for_split(split) for p in unpaired)
    union_split(layout, "trainval", ["train", "val"])
    return layout


def read_split_lists(lists: Path, root: Path, images_dir: Path, samples: list[Sample], rules: LabelRules) -> DatasetLayout:
    """One split per LISTS/*.txt (the file's stem), its samples in list order.

    A line is an image's stem (um_000000), its file name (um_000000.png) or its path under ROOT
    (images/um_000000.png), as DeepLab's build scripts read stems from ImageSets/Segmentation/*.txt.
    A line naming no image with a label, or an image already listed in that file, is a problem
    `file:line`; images in no list are counted in a note.
    """
    files = sorted(p for p in lists.iterdir() if p.suffix == ".txt" and not p.name.startswith("."))
    if not files:
        raise LayoutError(f"{lists}: no list files (expected train.txt, val.txt, ...: one image stem a line)")
    keys: dict[str, Sample] = {}
    for sample in samples:  # stems win over file names and paths that look like another stem
        keys.setdefault(sample.image.relative_to(root).as_posix(), sample)
        keys.setdefault(sample.image.name, sample)
    keys.update((sample.name, sample) for sample in samples)
    layout = DatasetLayout({}, rules)
    for list_file in files:
        split = list_file.stem
        try:
            check_split_name(split)
            check_regular_file(list_file)
        except SplitSpecError as exc:
            raise LayoutError(f"{list_file}: {exc}") from None
        except OSError as exc:
            raise LayoutError(f"{list_file}: list path {'is a folder, not a file' if exc.errno == errno.EISDIR else 'is ' + str(exc.strerror)}") from None
        entries, problems = read_list_lines(list_file, split)
        chosen: list[Sample] = []
        first_line: dict[str, int] = {}
        for number, text in entries:
            sample = keys.get(text)
            where = f"{list_file}:{number}"
            if sample is None:
                stem = Path(text).stem if Path(text).suffix in IMAGE_EXTENSIONS else text
                has_image = image_candidates(images_dir, stem) or os.path.lexists(root / text) or os.path.lexists(images_dir / text)
                reason = "names an image without a usable label" if has_image else f"names no image in {images_dir}"
                problems.append(Problem(where, f"{text!r} {reason} (a line is an image stem, file name, or path under {root})", split=split))
            elif sample.name in first_line:
                problems.append(Problem(where, f"{text!r}: image {sample.name!r} is already on line {first_line[sample.name]}", split=split))
            else:
                first_line[sample.name] = number
                chosen.append(sample)
        layout.splits[split] = chosen
        layout.problems.extend(problems)
    listed = {s.name for split in layout.splits.values() for s in split}
    if len(listed) < len(samples):
        layout.notes.append(f"{len(samples) - len(listed)} of {len(samples)} samples are in no list of {lists}")
    return layout


@dataclass(frozen=True)
class LabelColors:
    """--label-colors: the class colours of RGB labels, from a built-in colormap or a file.

    entry_colormap is what the registry entry holds (the built-in name, or the file's colours);
    names are the file's class names (None for a built-in map or a file of bare `R G B` lines).
    """

    spec: str
    colors: list[tuple[int, int, int]]
    names: list[str] | None
    file: Path | None

    @property
    def entry_colormap(self) -> str | list[list[int]]:
        return self.spec if self.file is None else [list(c) for c in self.colors]


_COLOR_LINE = re.compile(r"(\d{1,3})[\s,]+(\d{1,3})[\s,]+(\d{1,3})(?:\s+(.*))?")
_VOID_COLOR = re.compile(r"(\d{1,3}),(\d{1,3}),(\d{1,3})")


def read_label_colors(spec: str) -> LabelColors:
    """A built-in colormap name, or a file of `R G B name` lines (one per class, in class order;
    '#' comments and blank lines skipped; the names may be left out on every line, then the class
    names come from --class-names). OptionError when spec is neither; ColormapFileError naming
    `file:line` for a bad line, two classes of one colour, or names on some lines only."""
    from segprep.colormaps import BUILTIN_COLORMAPS, ColormapFileError, builtin_colormap

    if spec in BUILTIN_COLORMAPS:
        return LabelColors(spec, [(int(r), int(g), int(b)) for r, g, b in builtin_colormap(spec)], None, None)
    path = Path(spec)
    try:
        text = read_regular_file(path).decode("utf-8")
    except FileNotFoundError:
        raise OptionError("--label-colors", f"--label-colors {spec}: neither a built-in colormap ({', '.join(BUILTIN_COLORMAPS)}) nor a file") from None
    except OSError as exc:
        raise OptionError("--label-colors", f"--label-colors {spec}: cannot read the colour map ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ColormapFileError(f"{spec}: colour map file is not UTF-8 text") from None
    colors: list[tuple[int, int, int]] = []
    names: list[str | None] = []
    seen: dict[tuple[int, int, int], int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _COLOR_LINE.fullmatch(line.strip())
        if not match or any(int(v) > 255 for v in match.groups()[:3]):
            raise ColormapFileError(f"{spec}:{number}: expected 'R G B name' with R, G, B in 0..255, got {line.strip()!r}")
        color = (int(match[1]), int(match[2]), int(match[3]))
        if color in seen:
            raise ColormapFileError(f"{spec}:{number}: rgb{color} is already the colour of class {seen[color]} (line colours must differ)")
        seen[color] = len(colors)
        colors.append(color)
        names.append(match[4].strip() if match[4] else None)
        if (names[-1] is None) != (names[0] is None):
            raise ColormapFileError(f"{spec}:{number}: give a class name on every line or on none")
    if not colors:
        raise ColormapFileError(f"{spec}: no colours (expected one 'R G B name' line per class)")
    if len(colors) > 256:
        raise ColormapFileError(f"{spec}: {len(colors)} colours; at most 256 fit uint8 labels")
    return LabelColors(spec, colors, None if names[0] is None else [n for n in names if n is not None], path)


def parse_void_colors(texts: tuple[str, ...] | list[str]) -> tuple[tuple[int, int, int], ...]:
    """--void-color R,G,B values (repeatable), each once."""
    colors: list[tuple[int, int, int]] = []
    for text in texts:
        match = _VOID_COLOR.fullmatch(text.replace(" ", ""))
        if not match or any(int(v) > 255 for v in match.groups()):
            raise OptionError("--void-color", f"--void-color {text!r}: expected R,G,B with values in 0..255 (e.g. 0,0,0)")
        color = (int(match[1]), int(match[2]), int(match[3]))
        if color not in colors:
            colors.append(color)
    return tuple(colors)


def _read_class_names(names_file: Path) -> list[str]:
    try:
        text = read_regular_file(names_file).decode("utf-8")  # a FIFO must not hang the run
    except UnicodeDecodeError:
        raise LayoutError(f"{names_file}: class names file is not UTF-8 text") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def _check_registered_colors(entry: DatasetEntry, colors: LabelColors) -> None:
    """Converting into a registered dataset: its colormap must be the map's colours, class for class."""
    from segprep.colormaps import resolve_colormap

    registered = [tuple(int(v) for v in c) for c in resolve_colormap(entry.colormap)[: entry.num_classes]]
    mine = colors.colors[: entry.num_classes]
    if registered != mine or (colors.names is not None and colors.names != entry.class_names):
        what = f"{len(colors.colors)} classes" if colors.names is not None else ", ".join(f"rgb{c}" for c in mine)
        raise OptionError(
            "--label-colors",
            f"--label-colors {colors.spec} ({what}) is not how dataset {entry.name!r} is registered "
            f"({entry.num_classes} classes: {', '.join(f'rgb{c}' for c in registered)}): choose another --name",
        )


def _new_entry(context: ConvertContext, colors: LabelColors | None) -> DatasetEntry:
    """The entry of a dataset not yet registered: names from the --label-colors file, else --class-names
    (default ROOT/class_names.txt), else the registry's dataset named like a built-in --label-colors map."""
    from segprep.colormaps import colormap_option
    from segprep.registry import DatasetEntry, validate_entry

    options, name = context.options, context.options["name"]
    class_names: Path | None = options["class_names"]
    if colors is not None and colors.names is not None:
        if class_names:
            raise OptionError("--class-names", f"--label-colors {colors.spec} names the classes already: drop --class-names")
        raw = DatasetEntry(name, len(colors.names), options["ignore_label"], colors.entry_colormap, colors.names).to_dict()
        return validate_entry(name, raw, colors.spec)
    names_file = class_names or context.root / "class_names.txt"
    if os.path.lexists(names_file):
        names, source = _read_class_names(names_file), str(names_file)
    elif colors is not None and colors.file is None and _builtin_entry(context.registry, colors.spec) is not None:
        names, source = list(_builtin_entry(context.registry, colors.spec).class_names), f"registry entry {colors.spec!r}"  # type: ignore[union-attr]
    else:
        also = ", or give --label-colors a file of 'R G B name' lines" if colors is not None else ""
        raise OptionError("--class-names", f"{name!r} is not in the registry: give --class-names FILE (or put class_names.txt in {context.root}){also}")
    if colors is None:
        colormap = colormap_option(options["colormap"], len(names))
    else:
        if len(names) > len(colors.colors):
            raise OptionError("--label-colors", f"--label-colors {colors.spec} has {len(colors.colors)} colour(s) for the {len(names)} classes of {source}")
        colormap = colors.entry_colormap
    raw = DatasetEntry(name, len(names), options["ignore_label"], colormap, names).to_dict()
    return validate_entry(name, raw, source)


def _builtin_entry(registry: Registry, colormap: str) -> DatasetEntry | None:
    """The registry's dataset named like a built-in colormap and drawn in it (kitti_road, camvid...)."""
    if colormap not in registry.datasets:
        return None
    entry = registry.get(colormap)
    return entry if entry.colormap == colormap else None


def plan(context: ConvertContext) -> ConvertPlan:
    """The folder's splits under --name: the registry's entry, or a new one from its class names
    (with a --label-colors file: its names and colours)."""
    from segprep.colormaps import resolve_colormap

    options = context.options
    name = options["name"]
    if not name:
        raise OptionError("--name", "convert folder needs --name (the dataset's registry name)")
    lists: Path | None = options["lists"]
    if lists is not None and options["split"]:
        raise OptionError("--lists", "--lists and --split exclude each other (the lists are the splits)")
    try:
        fractions = {} if lists is not None else parse_fractions(list(options["split"]) or ["train=0.9", "val=0.1"])
    except SplitSpecError as exc:
        raise OptionError("--split", str(exc)) from None
    colors = read_label_colors(options["label_colors"]) if options["label_colors"] else None
    void = parse_void_colors(options["void_color"])
    if void and colors is None:
        raise OptionError("--void-color", "--void-color needs --label-colors (it is a colour of RGB labels)")
    if colors is not None and options["colormap"] not in ("pascal", colors.spec):
        raise OptionError("--colormap", "--label-colors is the dataset's colormap: drop --colormap")
    class_names: Path | None = options["class_names"]
    inputs = [p for p in (class_names, colors.file if colors else None, lists) if p is not None]
    if name in context.registry.datasets:
        entry = context.registry.get(name)
        if colors is not None:
            _check_registered_colors(entry, colors)
        register = False
    else:
        entry = _new_entry(context, colors)
        register = True
    rules = FOLDER_RULES
    if colors is not None:
        class_colors = [tuple(int(v) for v in c) for c in resolve_colormap(entry.colormap)[: entry.num_classes]]
        clash = [c for c in void if c in class_colors]
        if clash:
            raise OptionError("--void-color", f"--void-color {','.join(map(str, clash[0]))} is the colour of class {class_colors.index(clash[0])} ({entry.class_names[class_colors.index(clash[0])]})")
        rules = LabelRules(colour_coded=True, void_colors=void)
    layout = load_folder(context.root, fractions, options["seed"], rules=rules, lists=lists)
    return ConvertPlan(layout, entry, register=register, inputs=inputs)
