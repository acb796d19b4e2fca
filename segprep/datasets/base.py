"""What every layout adapter produces: splits of (name, image path, label path) samples."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segprep.errors import SegprepError
from segprep.fileio import read_regular_file
from segprep.problems import Problem

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")


@dataclass(frozen=True)
class Sample:
    """One image/label pair; `name` becomes image/filename in the record."""

    name: str
    image: Path
    label: Path


@dataclass(frozen=True)
class LabelRules:
    """How a layout's label files hold class ids: the conversions its adapter allows.

    The class count, ignore label and colours are the registry entry's; adapter.label_policy
    joins the two into the LabelPolicy the writer enforces.
    """

    accept_palette: bool = False  # palette PNGs whose indices are the class ids (VOC)
    void_values: tuple[int, ...] = ()  # stored values that mean "not labelled": -> the ignore label (CamVid's 11)
    remap: tuple[tuple[int, int], ...] = ()  # other documented value changes (a Cityscapes class subset)
    colour_coded: bool = False  # RGB labels in the entry's colormap (KITTI road)
    void_colors: tuple[tuple[int, int, int], ...] = ()  # colours that mean "not labelled"
    known_values: tuple[int, ...] | None = None  # the only values a label file may hold (a label table's ids), before any remap
    colors: tuple[tuple[int, int, int], ...] | None = None  # colour-coded labels drawn in other colours than the entry's (a class mapping: the source's)


@dataclass
class DatasetLayout:
    """A dataset found on disk: its splits in list order, its label rules and the list problems seen."""

    splits: dict[str, list[Sample]]
    rules: LabelRules = LabelRules()
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the user should know that is not an error (images in no split)
    class_mapping: dict[str, Any] | None = None  # --classes/--merge/--drop: recorded in each manifest (parameters.class_mapping)

    def problems_for(self, split: str) -> list[Problem]:
        return [p for p in self.problems if p.split == split]


class LayoutError(SegprepError, ValueError):
    """The root folder is not in the expected layout; the message says what is missing."""


def read_list_lines(path: Path, split: str) -> tuple[list[tuple[int, str]], list[Problem]]:
    """(line number, stripped text) of each entry, and a problem for every blank line inside the list.

    Trailing blank lines at the end of the file are tolerated (editors add them); a blank line
    between entries is reported, because it usually means a list was concatenated or edited by hand.
    """
    try:
        text = read_regular_file(path).decode("utf-8")  # a FIFO named like a list must not hang the run
    except UnicodeDecodeError:
        return [], [Problem(str(path), "list file is not UTF-8 text", split=split)]
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    entries: list[tuple[int, str]] = []
    problems: list[Problem] = []
    for number, raw in enumerate(lines, start=1):
        stripped = raw.strip()
        if not stripped:
            problems.append(Problem(f"{path}:{number}", "blank line in list", split=split))
        else:
            entries.append((number, stripped))
    return entries, problems


def image_candidates(folder: Path, stem: str) -> list[Path]:
    """Every entry of folder named stem + an image extension, whatever it is (a FIFO or a folder
    so named is the writer's to refuse by name, not a reason to say the image is missing)."""
    return [folder / f"{stem}{ext}" for ext in IMAGE_EXTENSIONS if os.path.lexists(folder / f"{stem}{ext}")]


def find_image(folder: Path, stem: str) -> Path | None:
    """The image file for a stem, whatever its extension (the first of image_candidates)."""
    candidates = image_candidates(folder, stem)
    return candidates[0] if candidates else None


def ambiguous_stem(stem: str, candidates: list[Path]) -> str:
    """The reason given when one stem names several images: which one is meant cannot be guessed."""
    return f"{len(candidates)} images with the stem {stem!r} ({', '.join(p.name for p in candidates)}): rename or remove all but one"


def union_split(layout: DatasetLayout, name: str, parts: list[str]) -> None:
    """Add a split that is the concatenation of others (e.g. trainval = train + val): a list, never copies."""
    if all(p in layout.splits for p in parts) and name not in layout.splits:
        layout.splits[name] = [s for p in parts for s in layout.splits[p]]
        for p in parts:
            layout.problems.extend(q.for_split(name) for q in layout.problems_for(p))


def read_pair_list(list_file: Path, split: str, resolve: Callable[[str], Path]) -> tuple[list[Sample], list[Problem]]:
    """Samples from a list of `IMAGE LABEL` lines; resolve turns each path as written into a real path.

    The sample name is the image file's stem.
    """
    entries, problems = read_list_lines(list_file, split)
    samples: list[Sample] = []
    for number, text in entries:
        fields = text.split()
        if len(fields) != 2:
            problems.append(Problem(f"{list_file}:{number}", f"expected 'IMAGE LABEL', got {text!r}", split=split))
            continue
        image, label = resolve(fields[0]), resolve(fields[1])
        samples.append(Sample(image.stem, image, label))
    return samples, problems
