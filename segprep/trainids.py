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
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segprep.fileio import atomic_write_bytes
from segprep.formats.png import encode_index_png
from segprep.ops.cityscapes_labels import ID_TO_TRAIN_ID
from segprep.ops.cityscapes_raster import (
    AnnotationError,
    decode_label_ids,
    rasterize_polygons,
    subset_lookup,
)
from segprep.parallel import OrderedPool

SOURCES = ("polygons", "labelids")
FINE, COARSE = "gtFine", "gtCoarse"
_SOURCE_SUFFIX = {"polygons": "_polygons.json", "labelids": "_labelIds.png"}
_OUTPUT_SUFFIX = "_labelTrainIds"


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
class BadAnnotation:
    """An annotation that could not be converted, and why (one line)."""

    path: Path
    reason: str

    def line(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class TrainIdReport:
    """What a run did: annotations found, outputs written, existing outputs left alone, bad annotations."""

    found: int
    written: int
    skipped: int
    bad: list[BadAnnotation]


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
    """
    try:
        data = task.annotation.read_bytes()
        values = rasterize_polygons(data) if task.source == "polygons" else decode_label_ids(data)
        lookup = None if task.lookup is None else np.frombuffer(task.lookup, dtype=np.uint8)
        atomic_write_bytes(task.output, encode_index_png(values, lookup))
    except AnnotationError as exc:
        return str(exc)
    except OSError as exc:
        return exc.strerror or str(exc)
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
    quiet: bool = True,
    description: str = "trainIds",
) -> TrainIdReport:
    """Convert every annotation (ordered parallel map); bad files are collected, not fatal.

    The worker pool is created before the progress bar, whose refresh thread must not be forked.
    """
    tasks = list(_tasks(annotations, options))
    todo = [t for t in tasks if not (options.skip_existing and t.output.is_file())]
    bad: list[BadAnnotation] = []
    with OrderedPool(min(workers, max(1, len(todo)))) as pool, _progress(quiet) as progress:
        advance = progress.task(description, len(todo))
        for task, reason in zip(todo, pool.imap(_convert, todo, len(todo))):
            if reason is not None:
                bad.append(BadAnnotation(task.annotation, reason))
            advance(1)
    return TrainIdReport(len(tasks), len(todo) - len(bad), len(tasks) - len(todo), bad)


def _progress(quiet: bool):  # type: ignore[no-untyped-def]
    """The CLI's progress bar, imported late: this module is a library first."""
    from segprep.cli.common import progress_bar

    return progress_bar(quiet)


def generate_missing_trainids(root: Path, workers: int, quiet: bool) -> list[str]:
    """Write the *_labelTrainIds.png that are missing under root; return one line per bad annotation.

    Covers the gtFine and gtCoarse polygons present; existing trainIds files are trusted (they may
    come from cityscapesScripts itself) and left alone. Used by `segprep convert cityscapes`.
    """
    annotations = find_annotations(root, "polygons", (FINE, COARSE))
    options = TrainIdOptions(skip_existing=True)
    missing = [a for a in annotations if not output_path(a, "polygons").is_file()]
    if not missing:
        return []
    report = convert_annotations(missing, options, workers, quiet, "Cityscapes trainIds")
    return [bad.line() for bad in report.bad]

