"""`segprep labelme`: a folder of labelme JSON files -> the VOC layout that `segprep convert labelme` reads.

OUT gets, for every SRC/*.json (the folder itself, not subfolders, as labelme's labelme2voc.py;
the sample name is the JSON file's stem):

- JPEGImages/{name}.jpg|.png: the annotated image's original bytes, with the extension of its
  real format. Where labelme itself changes the image (EXIF orientation 2-8 on an imagePath
  image, or a format other than JPEG/PNG) it holds labelme's re-encoding instead: the upright
  pixels as JPEG quality 95 (PNG when the image has alpha), so image and mask share one grid.
- SegmentationClass/{name}.png: raw class indices (mode L), pixel-identical to
  labelme.utils.shapes_to_label; `__ignore__` is stored as the ignore label (labelme's -1).
- SegmentationClassVisualization/{name}.jpg: the class colours blended over the image.
- class_names.txt (`_background_` first, no `__ignore__`), ImageSets/Segmentation/{train,val,
  trainval}.txt from a seeded shuffle, and segprep_labelme.json (ignore label, options, which
  images were re-encoded and why) for `segprep convert labelme`.

Every file read (each JSON, its image, the labels file) is opened only once it is known to be a
regular file: a FIFO or a folder named `*.json` in SRC is that file's error, never a hang or a
silent skip. Sizes are checked before anything is allocated (formats.labelme_json).

Everything is written into a hidden staging folder beside OUT and renamed to OUT only when every
file converted; any bad file leaves OUT untouched and is reported with its reason.

Inputs are never destroyed: OUT may not be, lie inside or contain SRC, the labels file or (when an
existing OUT would be replaced) any image a JSON's imagePath points to. `--overwrite` replaces only
an export this command wrote: segprep_labelme.json says so and lists every file it wrote, and OUT
holds nothing else. The staging folder of a killed run (and the previous export it was about to
replace) is cleaned up, or put back, by the next run.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any

import numpy as np
from PIL import Image

from segprep.colormaps import palette_for_png, resolve_colormap
from segprep.errors import OutputLocationError, SegprepError, describe_os_error
from segprep.fileio import read_regular_file
from segprep.formats.labelme_json import LabelmeFormatError, parse_labelme
from segprep.formats.png import encode_index_png
from segprep.ops.rasterize_labelme import rasterize_shapes
from segprep.paths import check_output_location
from segprep.progress import ProgressSink
from segprep.errors import with_filename
from segprep.safewrite import is_stale, make_folder, remove_path

IGNORE_NAME = "__ignore__"
BACKGROUND_NAME = "_background_"
METADATA_FILE = "segprep_labelme.json"
IMAGE_DIR = "JPEGImages"
LABEL_DIR = "SegmentationClass"
VISUALIZATION_DIR = "SegmentationClassVisualization"
LIST_DIR = Path("ImageSets") / "Segmentation"
TOOL = "segprep labelme"
# What an export held before the metadata listed its files: OUT's top-level entries.
_LAYOUT = frozenset({IMAGE_DIR, LABEL_DIR, VISUALIZATION_DIR, LIST_DIR.parts[0], "class_names.txt", METADATA_FILE})
_STAGING_MARKER = ".segprep-staging"
_STAGING = re.compile(r"^\.(?P<name>.+)\.segprep-(?P<pid>\d+)\.tmp$")
_PREVIOUS = re.compile(r"^\.(?P<name>.+)\.segprep-old-(?P<pid>\d+)\.tmp$")
_VISUALIZATION_ALPHA = 128  # of 255: the colour's share in the blend
_VISUALIZATION_QUALITY = 90


class ExportUsageError(SegprepError, ValueError):
    """The command line or the labels file is wrong (exit 2); nothing was read from SRC yet."""


class ExportDataError(SegprepError, ValueError):
    """SRC cannot be exported as a whole (e.g. no JSON files); per-file problems are FileOutcomes."""


@dataclass(frozen=True)
class LabelSet:
    """The labels file: class names in id order (`_background_` = 0) and whether `__ignore__` is allowed."""

    class_names: tuple[str, ...]
    has_ignore: bool

    def class_ids(self, ignore_label: int) -> dict[str, int]:
        ids = {name: index for index, name in enumerate(self.class_names)}
        if self.has_ignore:
            ids[IGNORE_NAME] = ignore_label
        return ids


def read_labels_file(path: Path) -> LabelSet:
    """Parse a labelme labels file: one name a line, `_background_` the first class, `__ignore__` optional.

    Blank lines are refused except at the end (labelme2voc would turn them into a class named '').
    A labels file that cannot be read (a FIFO or folder so named, no permission) raises the
    OSError naming it: an OS fault (exit 1), not a usage error.
    """
    try:
        text = read_regular_file(path).decode("utf-8-sig")  # a FIFO named as the labels file must not hang
    except UnicodeDecodeError:
        raise ExportUsageError(f"{path}: labels file is not UTF-8 text") from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    names: list[str] = []
    has_ignore = False
    seen: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        name = raw.strip()
        if not name:
            raise ExportUsageError(f"{path}:{number}: blank line in the labels file")
        if name in seen:
            raise ExportUsageError(f"{path}:{number}: label {name!r} repeats line {seen[name]}")
        seen[name] = number
        if name == IGNORE_NAME:
            has_ignore = True
        else:
            names.append(name)
    if not names:
        raise ExportUsageError(f"{path}: no class names (expected '{BACKGROUND_NAME}' and then one class a line)")
    if names[0] != BACKGROUND_NAME:
        raise ExportUsageError(f"{path}: the first class must be '{BACKGROUND_NAME}' (class 0), got {names[0]!r}")
    return LabelSet(tuple(names), has_ignore)


@dataclass(frozen=True)
class ExportOptions:
    """What `segprep labelme` was asked to do."""

    src: Path
    out: Path
    labels_file: Path
    labels: LabelSet
    ignore_label: int = 255
    colormap: str = "pascal"
    val_fraction: float = 0.1
    seed: int = 0
    overwrite: bool = False

    def validate(self) -> None:
        """Usage checks that need no data: ignore label, colormap, fraction, OUT.

        An OUT that overlaps SRC or the labels file, or an existing OUT that --overwrite would
        delete but this command did not write, raises OutputLocationError (exit 1).
        """
        top = len(self.labels.class_names) - 1
        if not 0 <= self.ignore_label <= 255:
            raise ExportUsageError(f"ignore label {self.ignore_label} is not in 0..255")
        if self.ignore_label <= top:
            raise ExportUsageError(
                f"ignore label {self.ignore_label} is a class id (classes are 0..{top}); use a value above {top}, e.g. 255"
            )
        try:
            resolve_colormap(self.colormap)
        except ValueError as exc:
            raise ExportUsageError(f"--colormap: {exc}") from None
        if not 0 <= self.val_fraction < 1:
            raise ExportUsageError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        check_output_location(self.out, [self.src, self.labels_file], "OUT")
        if self.out.exists() and not _is_empty_dir(self.out):
            if not self.overwrite:
                raise ExportUsageError(f"{self.out} exists and is not empty; remove it or pass --overwrite")
            check_replaceable(self.out)


@dataclass(frozen=True)
class FileOutcome:
    """One JSON file's result: where its sample went, or why it could not be converted."""

    json_path: Path
    name: str
    error: str | None = None
    shapes: int = 0
    image_file: str | None = None
    reencoded: str | None = None

    def line(self) -> str:
        return f"{self.json_path}: {self.error}"


@dataclass
class ExportResult:
    outcomes: list[FileOutcome]
    splits: dict[str, list[str]] = field(default_factory=dict)

    @property
    def bad(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.error is not None]


def find_label_files(src: Path) -> list[Path]:
    """SRC's *.json entries (any case of the suffix), sorted; subfolders are not searched.

    Every entry so named is returned, whatever it is: a FIFO, a folder or a broken link named
    like an annotation is reported by the conversion with its reason, never skipped in silence.
    """
    return sorted(p for p in src.iterdir() if p.suffix.lower() == ".json")


@dataclass(frozen=True)
class _Converter:
    """Everything a worker needs to turn one JSON file into its three output files."""

    staging: Path
    class_ids: dict[str, int]
    labels_file_name: str
    palette: list[int]  # colormaps.palette_for_png: 256 RGB triples, ignore label included
    alpha_table: list[int] = field(default_factory=lambda: [0] + [_VISUALIZATION_ALPHA] * 255)  # background stays as is

    def __call__(self, item: tuple[Path, str]) -> FileOutcome:
        """One file's outcome. A problem with the file is its outcome; a failed write (full disk,
        read-only folder) is not the file's fault and raises the OSError, which stops the run."""
        json_path, name = item
        try:
            outcome, files = self._convert(json_path, name)
        except Image.DecompressionBombError as exc:
            return FileOutcome(json_path, name, f"image too large for PIL's decompression-bomb limit ({exc})")
        except (LabelmeFormatError, ValueError, OSError, OverflowError, SyntaxError) as exc:
            return FileOutcome(json_path, name, str(exc) or type(exc).__name__)
        for path, data in files:
            _write_bytes(path, data)
        return outcome

    def _convert(self, json_path: Path, name: str) -> tuple[FileOutcome, list[tuple[Path, bytes]]]:
        try:
            data = read_regular_file(json_path)  # a FIFO named like an annotation must not hang the run
        except OSError as exc:
            raise LabelmeFormatError(f"cannot read: {_os_reason(exc)}") from None
        document = parse_labelme(data, json_path)
        unknown = [label for label in dict.fromkeys(s.label for s in document.shapes) if label not in self.class_ids]
        if unknown:
            listed = ", ".join(repr(label) for label in unknown)
            return FileOutcome(json_path, name, f"unknown label {listed} (not in {self.labels_file_name})"), []
        image = document.image
        labels = rasterize_shapes(document.shapes, self.class_ids, image.height, image.width)
        visualization = self._visualize(image.data, labels)
        image_file = f"{name}{image.extension}"
        files = [
            (self.staging / IMAGE_DIR / image_file, image.data),
            (self.staging / LABEL_DIR / f"{name}.png", encode_index_png(labels)),
            (self.staging / VISUALIZATION_DIR / f"{name}.jpg", visualization),
        ]
        return FileOutcome(json_path, name, None, len(document.shapes), image_file, image.reencoded), files

    def _visualize(self, image_data: bytes, labels: np.ndarray) -> bytes:
        """Class colours blended 50/50 over the image where the class is not background; JPEG.

        The colours are colorize()'s (palette_for_png is the same table), applied as a PIL palette
        and blended by one masked paste: ~4 ms for 1280x720 where the numpy gather alone takes
        13 ms. Decoding the whole image here also proves it is complete (a truncated JPEG fails).
        """
        image = Image.open(io.BytesIO(image_data))
        image.load()
        base = image if image.mode == "RGB" else image.convert("RGB")
        label_image = Image.fromarray(labels)
        colours = label_image.copy()
        colours.putpalette(self.palette)
        base.paste(colours.convert("RGB"), mask=label_image.point(self.alpha_table))
        buffer = io.BytesIO()
        base.save(buffer, format="JPEG", quality=_VISUALIZATION_QUALITY)
        return buffer.getvalue()


def _os_reason(exc: OSError) -> str:
    """An OS error's reason in words, without its path (the caller names the file)."""
    return describe_os_error(OSError(exc.errno, exc.strerror)) if exc.errno is not None else str(exc)


def _write_bytes(path: Path, data: bytes) -> None:
    """Write a staging file; the OSError of a failed write always names the file."""
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise with_filename(exc, path) from None


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and not any(path.iterdir())


def export_problem(out: Path) -> str | None:
    """Why the folder `out` is not an export segprep labelme wrote; None when it is one.

    Its segprep_labelme.json must be this command's and list every file under OUT (exports made
    before the list existed: every top-level entry must be a part of the layout). Links are
    entries like files: they are never followed, here or when the folder is deleted.
    """
    try:
        document = json.loads((out / METADATA_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"it has no {METADATA_FILE}"
    except (OSError, ValueError):
        return f"its {METADATA_FILE} is unreadable"
    if not isinstance(document, dict) or document.get("tool") != TOOL:
        return f"its {METADATA_FILE} was not written by {TOOL}"
    listed = document.get("files")
    if not isinstance(listed, list):
        foreign = sorted(p.name for p in out.iterdir() if p.name not in _LAYOUT)
        return f"{foreign[0]} is not part of an export" if foreign else None
    allowed = {str(name) for name in listed} | {METADATA_FILE}
    folders = {parent.as_posix() for name in allowed for parent in Path(name).parents}
    foreign_folder = None
    for entry in _entries(out):
        rel = entry.relative_to(out).as_posix()
        if entry.is_dir() and not entry.is_symlink():
            foreign_folder = foreign_folder or (None if rel in folders else rel)
        elif rel not in allowed:
            return f"{rel} was not written by {TOOL}"  # a file is the more useful thing to name
    return None if foreign_folder is None else f"{foreign_folder} was not written by {TOOL}"


def _entries(root: Path) -> Iterator[Path]:
    """Every file, link and folder under root, links not followed."""
    for folder, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            yield Path(folder) / name


def check_replaceable(out: Path) -> None:
    """Raise OutputLocationError unless `out` is an export that --overwrite may delete."""
    problem = export_problem(out)
    if problem is not None:
        raise OutputLocationError(f"{out}: OUT is not a folder {TOOL} wrote ({problem}); refusing to delete it")


def _image_paths(files: list[Path]) -> Iterator[Path]:
    """The images the JSON files' imagePath fields point to (resolved as the loader does).

    Unreadable or broken JSON is skipped here: the conversion reports it with its reason.
    """
    for path in files:
        try:
            document = json.loads(read_regular_file(path).decode("utf-8-sig"))
        except (OSError, ValueError, RecursionError):
            continue
        image_path = document.get("imagePath") if isinstance(document, dict) else None
        if isinstance(image_path, str) and image_path:
            yield path.parent / PureWindowsPath(image_path).as_posix()


def _absolute(path: Path) -> Path:
    """`path` made absolute with `..` and `.` folded, so that its name and parent are real ones."""
    return Path(os.path.abspath(path))


def staging_path(out: Path) -> Path:
    """This process's hidden staging folder beside OUT."""
    out = _absolute(out)
    return out.parent / f".{out.name}.segprep-{os.getpid()}.tmp"


def discard_staging(out: Path) -> None:
    """Remove this process's staging folder for OUT, if any (after its workers are gone)."""
    remove_path(staging_path(out))


def _looks_like_staging(path: Path) -> bool:
    if not path.is_dir() or path.is_symlink():
        return False
    return _is_empty_dir(path) or (path / _STAGING_MARKER).is_file() or export_problem(path) is None


def clean_killed_runs(out: Path) -> None:
    """Remove the staging folders that killed runs left beside OUT; put back a previous export
    that a run killed while replacing it had moved aside (or remove it, if OUT was replaced)."""
    out = _absolute(out)
    try:
        entries = list(os.scandir(out.parent))
    except OSError:
        return
    for entry in entries:
        path = Path(entry.path)
        staging, previous = _STAGING.match(entry.name), _PREVIOUS.match(entry.name)
        match = staging or previous
        if match is None or match["name"] != out.name or not is_stale(int(match["pid"])):
            continue
        if staging and _looks_like_staging(path):
            remove_path(path)
        elif previous and export_problem(path) is None:
            if os.path.lexists(out):
                remove_path(path)
            else:
                path.rename(out)


def _name_problems(files: list[Path]) -> dict[Path, str]:
    """Stems that cannot be sample names: whitespace breaks the list files, and two files may not share one."""
    problems: dict[Path, str] = {}
    by_stem: dict[str, Path] = {}
    for path in files:
        if any(ch.isspace() for ch in path.stem):
            problems[path] = "file name contains whitespace, which the split lists cannot hold; rename the JSON file"
        elif path.stem in by_stem:
            problems[path] = f"same sample name {path.stem!r} as {by_stem[path.stem].name}"
        else:
            by_stem[path.stem] = path
    return problems


def export_labelme(options: ExportOptions, pool: Any, progress: ProgressSink) -> ExportResult:
    """Convert every SRC/*.json into a staging folder with `pool` (an OrderedPool), then rename it to OUT.

    Returns the per-file outcomes; when any file is bad, OUT is not created or changed.
    Raises ExportDataError when SRC holds no JSON file.
    """
    files = find_label_files(options.src)
    if not files:
        raise ExportDataError(f"{options.src}: no labelme *.json files (subfolders are not searched)")
    out = _absolute(options.out)
    if out.exists() and not _is_empty_dir(out):  # it would be replaced: no image may live in it
        check_output_location(options.out, _image_paths(files), "OUT")
    problems = _name_problems(files)
    make_folder(out.parent)
    clean_killed_runs(out)
    staging = staging_path(out)
    remove_path(staging)
    try:
        staging.mkdir()
        (staging / _STAGING_MARKER).write_bytes(b"")
        for folder in (IMAGE_DIR, LABEL_DIR, VISUALIZATION_DIR, LIST_DIR):
            (staging / folder).mkdir(parents=True)
        converter = _Converter(
            staging,
            options.labels.class_ids(options.ignore_label),
            options.labels_file.name,
            palette_for_png(resolve_colormap(options.colormap), options.ignore_label),
        )
        jobs = [(path, path.stem) for path in files if path not in problems]
        advance = progress.task("labelme", len(files))
        outcomes = [FileOutcome(path, path.stem, reason) for path, reason in problems.items()]
        advance(len(outcomes))
        for outcome in pool.imap(converter, jobs, total=len(jobs)):
            outcomes.append(outcome)
            advance(1)
        outcomes.sort(key=lambda o: o.json_path)
        result = ExportResult(outcomes)
        if result.bad:
            return result
        result.splits = _write_lists(staging, [o.name for o in outcomes], options)
        _write_metadata(staging, options, outcomes)
        _publish(staging, out, options.overwrite)
        return result
    except OSError as exc:
        raise with_filename(exc, staging) from None
    finally:
        remove_path(staging)


def _write_lists(staging: Path, names: list[str], options: ExportOptions) -> dict[str, list[str]]:
    from segprep.splits import seeded_split, write_list_files

    fractions = {"train": 1.0 - options.val_fraction, "val": options.val_fraction} if options.val_fraction else {"train": 1.0}
    splits = seeded_split(names, fractions, options.seed)
    splits["trainval"] = splits["train"] + splits.get("val", [])
    write_list_files(staging / LIST_DIR, splits)
    return splits


def _write_metadata(staging: Path, options: ExportOptions, outcomes: list[FileOutcome]) -> None:
    (staging / "class_names.txt").write_text("".join(f"{name}\n" for name in options.labels.class_names), encoding="utf-8")
    metadata = {
        "tool": "segprep labelme",
        "source": str(options.src),
        "labels_file": str(options.labels_file),
        "class_names": list(options.labels.class_names),
        "ignore_label": options.ignore_label,
        "ignore_used": options.labels.has_ignore,
        "colormap": options.colormap,
        "val_fraction": options.val_fraction,
        "seed": options.seed,
        "samples": len(outcomes),
        "reencoded_images": {o.image_file: o.reencoded for o in outcomes if o.reencoded},
        # Every file of the export: --overwrite deletes a folder only when it holds nothing else.
        "files": sorted(
            p.relative_to(staging).as_posix() for p in _entries(staging) if p.is_file() and p.name != _STAGING_MARKER
        )
        + [METADATA_FILE],
    }
    text = json.dumps(metadata, indent=2, ensure_ascii=False) + "\n"
    _write_bytes(staging / METADATA_FILE, text.encode("utf-8"))


def _publish(staging: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished staging folder to OUT; an existing OUT (with --overwrite) is replaced.

    The old export is moved aside first and deleted only once the new one is in place; if the
    rename fails it is put back (and a run killed in between has it put back by the next run).
    """
    (staging / _STAGING_MARKER).unlink()
    if _is_empty_dir(out):
        out.rmdir()
    if not os.path.lexists(out):
        staging.rename(out)
        return
    if not overwrite:
        raise ExportDataError(f"{out} appeared while converting; nothing written (pass --overwrite to replace it)")
    check_replaceable(out)  # again: OUT may have changed while converting
    old = out.parent / f".{out.name}.segprep-old-{os.getpid()}.tmp"
    out.rename(old)
    try:
        staging.rename(out)
    except BaseException:
        old.rename(out)
        raise
    remove_path(old)


def iter_summary(result: ExportResult) -> Iterator[list[Any]]:
    """Rows of the summary table."""
    good = [o for o in result.outcomes if o.error is None]
    yield ["files", len(good)]
    yield ["shapes", sum(o.shapes for o in good)]
    yield ["images re-encoded as labelme does (EXIF orientation / format)", sum(1 for o in good if o.reencoded)]
    for split, names in result.splits.items():
        yield [f"{split} list", len(names)]
