"""Cityscapes polygons (or official labelIds PNGs) -> *_labelTrainIds.png next to each annotation, in parallel.

This replaces cityscapesScripts' createTrainIdLabelImgs, which converts one file after another
and encodes with PIL's PNG writer. Here each worker reads, rasterizes and encodes a whole file
and writes it atomically itself, so only a path and an error line cross the process boundary.

Output names:

- `{base}_{gtFine|gtCoarse}_labelTrainIds.png` for the 19 train classes (the name DeepLab,
  cityscapesScripts and mmsegmentation look for);
- with a class subset, `{base}_{gt}_labelTrainIds_{tag}.png` where tag is the classes in the
  order given joined by `-`, spaces as `_` (`..._labelTrainIds_car.png`,
  `..._labelTrainIds_person-rider.png`). The subset file never replaces the full trainIds file,
  and tools that glob `*_labelTrainIds.png` do not pick it up.

Existing outputs are overwritten (as createTrainIdLabelImgs does) unless `skip_existing` is set;
a bad annotation is reported and leaves its output untouched, and the others are still written.

The outputs live among the user's files, so before any work every output name is checked: it
must be a trainIds name, never an input or any other official Cityscapes file (`_labelIds.png`,
`_color.png`, `_instanceIds.png`, `_polygons.json`, ...). Each file is written as a temporary and
renamed, so a killed run leaves no half-written PNG; the next run removes the temporaries of dead
runs. A failed write (full disk, no permission) stops the whole run with the path and the reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segprep.problems import Problem
from segprep.progress import ProgressFactory, silent
from segprep.errors import OutputLocationError
from segprep.formats.png import encode_index_png
from segprep.ops.cityscapes_labels import ID_TO_TRAIN_ID
from segprep.ops.cityscapes_raster import (
    AnnotationError,
    decode_label_ids,
    rasterize_polygons,
    subset_lookup,
)
from segprep.parallel import OrderedPool
from segprep.safewrite import remove_stale_temporaries, write_atomic

SOURCES = ("polygons", "labelids")
FINE, COARSE = "gtFine", "gtCoarse"
_SOURCE_SUFFIX = {"polygons": "_polygons.json", "labelids": "_labelIds.png"}
_OUTPUT_SUFFIX = "_labelTrainIds"
# What a trainIds output may be called, and the files of the official Cityscapes release (and of
# other tools) that it must never replace.
_OUTPUT_NAME = re.compile(r"^.+_labelTrainIds(?:_[A-Za-z0-9_-]+)?\.png$")
_PROTECTED_SUFFIXES = (
    "_labelIds.png",
    "_color.png",
    "_instanceIds.png",
    "_instanceTrainIds.png",
    "_polygons.json",
    "_leftImg8bit.png",
    "_rightImg8bit.png",
    "_disparity.png",
    "_camera.json",
    "_vehicle.json",
)
# Temporaries of a killed run: this module's (segprep.safewrite) and those of the older
# fileio.atomic_write naming (`.NAME.PID.tmp`), both only for trainIds output names.
_STALE_TEMPORARY = re.compile(r"^\.(?P<name>.+_labelTrainIds(?:_[A-Za-z0-9_-]+)?\.png)\.(?:segprep-)?(?P<pid>\d+)\.tmp$")


@dataclass(frozen=True)
class TrainIdOptions:
    """What to convert and how.

    classes: canonical class names of a subset (None: all 19 train classes).
    skip_existing: leave annotations whose output already exists alone (resume, or `convert`).
    """

    source: str = "polygons"
    classes: tuple[str, ...] | None = None
    skip_existing: bool = False

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"unknown source {self.source!r}; expected one of {', '.join(SOURCES)}")


@dataclass(frozen=True)
class TrainIdReport:
    """What a run did: annotations found, outputs written, existing outputs left alone, bad annotations."""

    found: int
    written: int
    skipped: int
    bad: list[Problem]


def subset_tag(classes: tuple[str, ...]) -> str:
    """`car`, `person-rider`, `traffic_light-traffic_sign`: the classes as a file-name part."""
    return "-".join(name.replace(" ", "_") for name in classes)


def output_path(annotation: Path, source: str, classes: tuple[str, ...] | None = None) -> Path:
    """Where the trainIds of an annotation go: beside it, `_polygons.json`/`_labelIds.png` replaced."""
    stem = annotation.name[: -len(_SOURCE_SUFFIX[source])]
    suffix = _OUTPUT_SUFFIX + (f"_{subset_tag(classes)}" if classes else "")
    return annotation.with_name(f"{stem}{suffix}.png")


def find_annotations(root: Path, source: str, groups: tuple[str, ...]) -> list[Path]:
    """`{group}/{split}/{city}/*_{group}_polygons.json` (or `_labelIds.png`) under root, sorted."""
    found: list[Path] = []
    for group in groups:
        found += sorted(root.glob(f"{group}/*/*/*_{group}{_SOURCE_SUFFIX[source]}"))
    return found


@dataclass(frozen=True)
class _Task:
    annotation: Path
    output: Path
    source: str
    lookup: bytes | None  # 256-entry table from the raster's values to the values written


def _convert(task: _Task) -> str | None:
    """Read, rasterize (or decode), encode and atomically write one annotation (in a worker).

    Returns the reason it failed, or None; only that crosses the process boundary.
    A failed write raises the OSError (naming the output): a full disk or a read-only folder is
    not a problem of one annotation, and the run stops.
    """
    try:
        data = task.annotation.read_bytes()
        values = rasterize_polygons(data) if task.source == "polygons" else decode_label_ids(data)
        lookup = None if task.lookup is None else np.frombuffer(task.lookup, dtype=np.uint8)
        png = encode_index_png(values, lookup)
    except AnnotationError as exc:
        return str(exc)
    except OSError as exc:
        return f"cannot read ({exc.strerror or exc})"
    write_atomic(task.output, png)
    return None


def _lookup(options: TrainIdOptions) -> bytes | None:
    """The table from what the source yields to what is written: ids -> trainIds, then the subset."""
    table = np.arange(256, dtype=np.uint8)
    if options.source == "labelids":
        table = np.frombuffer(ID_TO_TRAIN_ID, dtype=np.uint8)
    if options.classes:
        table = subset_lookup(options.classes)[table]
    return None if (table == np.arange(256)).all() else table.tobytes()


def _tasks(annotations: list[Path], options: TrainIdOptions) -> Iterator[_Task]:
    lookup = _lookup(options)
    for annotation in annotations:
        yield _Task(annotation, output_path(annotation, options.source, options.classes), options.source, lookup)


def convert_annotations(
    annotations: list[Path],
    options: TrainIdOptions,
    workers: int,
    progress: ProgressFactory = silent,
    description: str = "trainIds",
) -> TrainIdReport:
    """Convert every annotation (ordered parallel map); bad files are collected, not fatal.

    The worker pool is created before the progress bar, whose refresh thread must not be forked.
    Before any work the output names are checked (check_outputs) and the temporaries of killed
    runs removed; a failed write stops the run, and its workers' temporaries are removed too.
    """
    tasks = list(_tasks(annotations, options))
    check_outputs(tasks)
    folders = sorted({t.output.parent for t in tasks})
    _remove_stale(folders)
    todo = [t for t in tasks if not (options.skip_existing and t.output.is_file())]
    bad: list[Problem] = []
    try:
        with OrderedPool(min(workers, max(1, len(todo)))) as pool, progress() as sink:
            advance = sink.task(description, len(todo))
            for task, reason in zip(todo, pool.imap(_convert, todo, len(todo))):
                if reason is not None:
                    bad.append(Problem(str(task.annotation), reason))
                advance(1)
    except BaseException:
        _remove_stale(folders)  # the pool is gone: every temporary left is a dead worker's
        raise
    return TrainIdReport(len(tasks), len(todo) - len(bad), len(tasks) - len(todo), bad)


def check_outputs(tasks: list[_Task]) -> None:
    """Refuse, before any work, an output that could replace an input or an official file.

    By construction outputs end in `_labelTrainIds[_tag].png`; this checks it anyway, because
    these files are written among the dataset's own files and a mistake would destroy them.
    """
    inputs = {t.annotation for t in tasks}
    seen: dict[Path, Path] = {}
    for task in tasks:
        name = task.output.name
        if task.output in inputs or not _OUTPUT_NAME.match(name) or name.endswith(_PROTECTED_SUFFIXES):
            raise OutputLocationError(
                f"{task.output}: the trainIds output of {task.annotation} would replace an input or an official Cityscapes file"
            )
        if task.output in seen:
            raise OutputLocationError(f"{task.output}: the trainIds output of both {seen[task.output]} and {task.annotation}")
        seen[task.output] = task.annotation


def _remove_stale(folders: list[Path]) -> None:
    for folder in folders:
        remove_stale_temporaries(folder, _STALE_TEMPORARY)


def generate_missing_trainids(root: Path, workers: int, progress: ProgressFactory = silent) -> list[str]:
    """Write the *_labelTrainIds.png that are missing under root; return one line per bad annotation.

    Covers the gtFine and gtCoarse polygons present; existing trainIds files are trusted (they may
    come from cityscapesScripts itself) and left alone. Used by `segprep convert cityscapes`.
    """
    annotations = find_annotations(root, "polygons", (FINE, COARSE))
    options = TrainIdOptions(skip_existing=True)
    missing = [a for a in annotations if not output_path(a, "polygons").is_file()]
    if not missing:
        return []
    report = convert_annotations(missing, options, workers, progress, "Cityscapes trainIds")
    return [bad.line() for bad in report.bad]

