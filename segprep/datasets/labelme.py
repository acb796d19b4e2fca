"""The VOC layout that `segprep labelme` writes, read back for `segprep convert labelme`.

Lists come from ImageSets/Segmentation/*.txt, images from JPEGImages/ (.jpg or .png: the export
keeps PNG sources as PNG), raw index labels from SegmentationClass/, class names from
class_names.txt and the ignore label from segprep_labelme.json (255 when that file is absent,
e.g. for a folder written by labelme2voc.py). Labels are index PNGs by construction, so palette
PNGs are refused rather than silently converted.

Every file read here is opened only when it is a regular file (a FIFO so named is an error naming
it, never a hang), and a stem with two images (JPEGImages/a.jpg and a.png) is a problem of that
sample, never a silent choice of one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from segprep.datasets.adapter import ConvertContext, ConvertPlan, OptionError
from segprep.datasets.base import (
    DatasetLayout,
    LabelRules,
    LayoutError,
    Sample,
    ambiguous_stem,
    image_candidates,
    read_list_lines,
)
from segprep.fileio import read_regular_file
from segprep.problems import Problem

LIST_DIR = Path("ImageSets") / "Segmentation"
DEFAULT_IGNORE_LABEL = 255


def read_class_names(root: Path) -> list[str]:
    """class_names.txt, one name a line (trailing blank lines ignored)."""
    path = root / "class_names.txt"
    try:
        lines = read_regular_file(path).decode("utf-8").splitlines()  # a FIFO so named must not hang
    except FileNotFoundError:
        raise LayoutError(f"{root}: no class_names.txt (is this a folder written by `segprep labelme`?)") from None
    except UnicodeDecodeError:
        raise LayoutError(f"{path}: not UTF-8 text") from None
    names = [line.strip() for line in lines]
    while names and not names[-1]:
        names.pop()
    if not names or "" in names:
        raise LayoutError(f"{path}: expected one class name a line, without blank lines")
    return names


def read_ignore_label(root: Path) -> int:
    """The ignore label the export recorded in segprep_labelme.json; 255 without that file.

    Anything else so named (a folder, a FIFO) is an OSError naming it, not "no file".
    """
    path = root / "segprep_labelme.json"
    if not os.path.lexists(path):
        return DEFAULT_IGNORE_LABEL
    try:
        value = json.loads(read_regular_file(path).decode("utf-8")).get("ignore_label", DEFAULT_IGNORE_LABEL)
    except (ValueError, AttributeError, RecursionError):
        raise LayoutError(f"{path}: not the JSON object `segprep labelme` writes") from None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
        raise LayoutError(f"{path}: ignore_label must be an integer in 0..255, got {value!r}")
    return value


def load_labelme_voc(root: Path, splits: list[str] | None) -> DatasetLayout:
    """The layout of every split asked for (default: every non-empty list)."""
    list_dir = root / LIST_DIR
    if not list_dir.is_dir():
        raise LayoutError(f"{root}: no {LIST_DIR.as_posix()}/ (is this a folder written by `segprep labelme`?)")
    available = sorted(p.stem for p in list_dir.glob("*.txt"))
    if splits:
        missing = [s for s in splits if s not in available]
        if missing:
            raise LayoutError(f"{list_dir}: no list for split(s) {', '.join(missing)} (found: {', '.join(available)})")
        wanted = splits
    else:
        wanted = [s for s in available if read_regular_file(list_dir / f"{s}.txt").strip()]
        if not wanted:
            raise LayoutError(f"{list_dir}: every list is empty")
    layout = DatasetLayout({}, LabelRules())  # index PNGs by construction
    for split in wanted:
        list_file = list_dir / f"{split}.txt"
        entries, problems = read_list_lines(list_file, split)
        layout.problems.extend(problems)
        samples = []
        for number, stem in entries:
            if len(stem.split()) != 1:
                layout.problems.append(Problem(f"{list_file}:{number}", f"expected one name a line, got {stem!r}", split=split))
                continue
            candidates = image_candidates(root / "JPEGImages", stem)
            if len(candidates) > 1:  # which one is the sample cannot be guessed: never pick one in silence
                layout.problems.append(Problem(str(candidates[0]), ambiguous_stem(stem, candidates), name=stem, split=split))
                continue
            image = candidates[0] if candidates else root / "JPEGImages" / f"{stem}.jpg"
            samples.append(Sample(stem, image, root / "SegmentationClass" / f"{stem}.png"))
        layout.splits[split] = samples
    return layout


def plan(context: ConvertContext) -> ConvertPlan:
    """The export under --name, with the classes and ignore label it recorded (re-registered every time:
    the classes may have changed; class weights are kept only while they have not)."""
    from segprep.registry import DatasetEntry, validate_entry

    name = context.options["name"]
    if not name:
        raise OptionError("--name", "convert labelme needs --name (the dataset's registry name)")
    layout = load_labelme_voc(context.root, context.splits)
    names = read_class_names(context.root)
    raw = DatasetEntry(name, len(names), read_ignore_label(context.root), context.options["colormap"], names).to_dict()
    previous = context.registry.datasets.get(name)
    if previous is not None:
        raw["class_weights"] = previous.class_weights if previous.class_names == names else None
    return ConvertPlan(layout, validate_entry(name, raw, context.root / "class_names.txt"), register=True)
