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

Nothing is allocated from a size a file declares without checking it first: an annotation's
imgWidth x imgHeight (or a labelIds PNG's header size) must equal the size in the header of its
leftImg8bit image (`ROOT/leftImg8bit/SPLIT/CITY/{base}_leftImg8bit.png`, read without decoding);
where that image does not exist, the size is only bounded (ops.cityscapes_raster.
MAX_PIXELS_WITHOUT_IMAGE) and the report counts the annotations so checked. Every input is
opened only once it is known to be a regular file: a FIFO, device or folder named like an
annotation or image is that annotation's error, never a hang; an output name held by a folder or
FIFO is reported too, never replaced.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segprep.problems import Problem
from segprep.progress import ProgressFactory, silent
from segprep.errors import OutputLocationError, describe_os_error
from segprep.fileio import check_regular_file, read_regular_file
from segprep.formats.images import ImageFormatError, read_image_info, sniff_format
from segprep.formats.png import encode_index_png
from segprep.ops.cityscapes_labels import ID_TO_TRAIN_ID
from segprep.ops.cityscapes_raster import (
    NO_IMAGE,
    PNG_HEADER_BYTES,
    AnnotationError,
    ImageSize,
    decode_label_ids,
    png_header_size,
    rasterize_polygons,
    subset_lookup,
)
from segprep.parallel import OrderedPool
from segprep.safewrite import remove_stale_temporaries, write_atomic

SOURCES = ("polygons", "labelids")
IMAGE_DIR, IMAGE_SUFFIX = "leftImg8bit", "_leftImg8bit.png"
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
    """What a run did: annotations found, outputs written, existing outputs left alone, bad annotations,
    and how many of those written had no leftImg8bit image to check their size against."""

    found: int
    written: int
    skipped: int
    bad: list[Problem]
    unchecked: int = 0


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


def image_path(annotation: Path, source: str = "polygons") -> Path | None:
    """The leftImg8bit image of `ROOT/GROUP/SPLIT/CITY/{base}_GROUP_polygons.json` (or `_labelIds.png`):
    `ROOT/leftImg8bit/SPLIT/CITY/{base}_leftImg8bit.png`; None for a path not in that layout."""
    if len(annotation.parents) < 4 or not annotation.name.endswith(_SOURCE_SUFFIX[source]):
        return None
    stem = annotation.name[: -len(_SOURCE_SUFFIX[source])]
    group = f"_{annotation.parents[2].name}"
    base = stem[: -len(group)] if stem.endswith(group) else stem
    return annotation.parents[3] / IMAGE_DIR / annotation.parents[1].name / annotation.parent.name / f"{base}{IMAGE_SUFFIX}"


def _os_reason(exc: OSError) -> str:
    """An OS error's reason in words, without its path (the caller names the file)."""
    return describe_os_error(OSError(exc.errno, exc.strerror)) if exc.errno is not None else str(exc)


def _read_head(path: Path, size: int) -> bytes:
    """The first `size` bytes of a regular file, opened without blocking (a FIFO must not hang the run)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            check_regular_file(path)  # raises the OSError that says what it is
            raise OSError(errno.EINVAL, "not a regular file", str(path))  # it changed in between
        chunks: list[bytes] = []
        while size > 0:
            chunk = os.read(fd, size)
            if not chunk:
                break
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_image_size(path: Path | None) -> ImageSize:
    """The size in the header of an annotation's leftImg8bit image, read without decoding pixels.

    A missing image gives an ImageSize without a size (only bounded); an image that is not a
    regular file, unreadable or without a well-formed PNG (or JPEG) header is an AnnotationError.
    """
    if path is None:
        return NO_IMAGE
    try:
        head = _read_head(path, PNG_HEADER_BYTES)
        if sniff_format(head) == "jpeg":  # not what Cityscapes ships, but what convert would accept
            info = read_image_info(read_regular_file(path))
            return ImageSize(info.width, info.height, str(path))
        width, height = png_header_size(head)
    except FileNotFoundError:
        return ImageSize(None, None, f"{path} not found")
    except OSError as exc:
        raise AnnotationError(f"image {path}: {_os_reason(exc)}") from None
    except (AnnotationError, ImageFormatError) as exc:
        raise AnnotationError(f"image {path}: {exc}") from None
    return ImageSize(width, height, str(path))


@dataclass(frozen=True)
class _Task:
    annotation: Path
    output: Path
    source: str
    lookup: bytes | None  # 256-entry table from the raster's values to the values written
    image: Path | None = None  # the leftImg8bit image whose size the annotation must have


def _convert(task: _Task) -> tuple[str | None, bool]:
    """Read, rasterize (or decode), encode and atomically write one annotation (in a worker).

    Returns (the reason it failed or None, whether its size was checked against an image); only
    that crosses the process boundary. The annotation's size is checked against the image's
    header before anything of that size is allocated. A failed write raises the OSError (naming
    the output): a full disk or a read-only folder is not a problem of one annotation, and the
    run stops.
    """
    checked = True
    try:
        try:
            data = read_regular_file(task.annotation)  # a FIFO named like an annotation must not hang the run
        except OSError as exc:
            return f"cannot read: {_os_reason(exc)}", checked
        image = read_image_size(task.image)
        checked = image.width is not None
        values = rasterize_polygons(data, image) if task.source == "polygons" else decode_label_ids(data, image)
        lookup = None if task.lookup is None else np.frombuffer(task.lookup, dtype=np.uint8)
        png = encode_index_png(values, lookup)
    except AnnotationError as exc:
        return str(exc), checked
    write_atomic(task.output, png)
    return None, checked


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
        output = output_path(annotation, options.source, options.classes)
        yield _Task(annotation, output, options.source, lookup, image_path(annotation, options.source))


def _output_problem(task: _Task) -> Problem | None:
    """An output name held by something that is not a regular file (a folder, a FIFO): never replaced."""
    try:
        mode = os.stat(task.output).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        return Problem(str(task.annotation), f"output {task.output}: {_os_reason(exc)}")
    if stat.S_ISREG(mode):
        return None
    what = "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "not a regular file"
    return Problem(str(task.annotation), f"output {task.output} exists and is {what}; remove it")


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
    blocked = {t.annotation: problem for t in todo if (problem := _output_problem(t)) is not None}
    runnable = [t for t in todo if t.annotation not in blocked]
    bad: list[Problem] = []
    unchecked = 0
    try:
        with OrderedPool(min(workers, max(1, len(runnable)))) as pool, progress() as sink:
            advance = sink.task(description, len(todo))
            advance(len(blocked))
            results = zip(runnable, pool.imap(_convert, runnable, len(runnable)))
            for task, (reason, checked) in results:
                if reason is not None:
                    bad.append(Problem(str(task.annotation), reason))
                elif not checked:
                    unchecked += 1
                advance(1)
    except BaseException:
        _remove_stale(folders)  # the pool is gone: every temporary left is a dead worker's
        raise
    if blocked:  # in the annotations' order, with the others
        found = {Path(problem.where): problem for problem in [*bad, *blocked.values()]}
        bad = [found[t.annotation] for t in todo if t.annotation in found]
    return TrainIdReport(len(tasks), len(todo) - len(bad), len(tasks) - len(todo), bad, unchecked)


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

