"""A Cityscapes benchmark submission from a model's predictions: the library half of
`segtrain predict --checkpoint L IMAGES --cityscapes-submission DIR [--zip FILE]`.

What the benchmark server and cityscapesScripts' `evalPixelLevelSemanticLabeling` read: one
single-channel 8-bit PNG per image, of the image's size, holding Cityscapes label *ids* (road 7,
car 26, ...; not train ids), named `<city>_<seq>_<frame>*.png`. Here each is named exactly like
its input, `<city>_<seq>_<frame>_leftImg8bit.png`, and written flat into DIR.

- `cityscapes_images(inputs)`: the images to predict, from `leftImg8bit/<split>/` (its city
  folders), a city folder, or image files, and one problem line per file whose name is not a
  Cityscapes image name (the server could not match its prediction to an image).
- `check_cityscapes_classes(class_names, num_classes)`: a one-line SegtrainError unless the model's
  classes are Cityscapes' 19 train classes in train-id order (segprep.ops.cityscapes_labels).
- `trainid_to_id_table()`, `train_ids_to_label_ids(...)`: train id -> label id through the
  official label table. Predictions are an argmax over the 19 classes, so the ignore label 255
  never occurs in them; a 255 (or any value outside 0..18) therefore means a bug upstream and is
  refused rather than written: 255 is no Cityscapes id. A caller that deliberately abstains on
  some pixels may name a void id (`void_id=0`, "unlabeled") for them instead; the evaluation
  counts such a pixel as missed for its true class and as a false positive of no class.
- `check_submission_target(...)`, `write_submission(...)`: DIR holds nothing but the submission.
  It must be new, empty, or an earlier submission this tool wrote, unchanged since: a ledger
  beside DIR (`.<DIR name>.segtrain-cityscapes.json`, segprep.safewrite.OutputLedger) records the
  sha256 of every PNG written. Kept beside rather than inside so that DIR, which is uploaded or
  handed to the evaluation as it is, holds only PNGs. Files of an earlier submission that this one
  does not write are removed. DIR may not be, be inside or contain an input. `--zip` is a
  deterministic archive of DIR's PNGs at its root, written only when every image was predicted
  (an incomplete upload is worse than none), replaced only when this tool wrote it (a ledger
  beside it).

Pure numpy and PIL, no TensorFlow: every check runs before a model is loaded.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segprep.errors import OutputLocationError
from segprep.ops.cityscapes_labels import BY_ID, IGNORE_TRAIN_ID, TRAIN_CLASS_NAMES, TRAIN_LABELS
from segprep.progress import NoProgress, ProgressSink
from segprep.safewrite import TEMP_PATTERN, OutputLedger, is_stale
from segtrain.errors import SegtrainError

NUM_CLASSES = len(TRAIN_CLASS_NAMES)  # 19
TOOL = "segtrain predict --cityscapes-submission"
LEDGER_SUFFIX = ".segtrain-cityscapes.json"  # beside DIR: .<DIR name>.segtrain-cityscapes.json
ZIP_LEDGER = ".segtrain-cityscapes-zip.json"  # in the folder of --zip
NO_ID = 255  # trainid_to_id_table's entry for values that are not train ids (255 is no Cityscapes id)
# <city>_<seq>_<frame>_leftImg8bit.png: cityscapesScripts splits names at "_", so a city has none.
IMAGE_NAME = re.compile(r"^(?P<city>[A-Za-z0-9-]+)_(?P<seq>\d{6})_(?P<frame>\d{6})_leftImg8bit\.png$")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed, so the same PNGs give the same archive bytes


# --- classes and ids ------------------------------------------------------------------------


def _normalized(name: str) -> str:
    return name.strip().replace("_", " ").casefold()


def check_cityscapes_classes(class_names: Sequence[str], num_classes: int) -> None:
    """SegtrainError (one line) unless the model predicts Cityscapes' 19 train classes in train-id order.

    class_names, num_classes: segtrain.json's "class_names" and "model.num_classes" (or a registry
    entry's). Names are compared ignoring case, with `_` for a space (`traffic_light`). A model
    without class names (an import without --dataset names them class_0, class_1, ...) is refused
    too: 19 outputs alone do not say they are Cityscapes' classes in Cityscapes' order.
    """
    wanted = f"Cityscapes' {NUM_CLASSES} train classes ({', '.join(TRAIN_CLASS_NAMES[:3])}, ..., {TRAIN_CLASS_NAMES[-1]})"
    names = list(class_names)
    if num_classes != NUM_CLASSES:
        shown = f" ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})" if names else ""
        raise SegtrainError(
            f"the model predicts {num_classes} classes{shown}, not {wanted}: a Cityscapes submission needs a model trained on the cityscapes dataset"
        )
    if not names or all(re.fullmatch(r"class_\d+", name) for name in names):
        raise SegtrainError(
            f"the model's {num_classes} classes are unnamed, so nothing says they are {wanted} in train-id order; "
            "import or train it with --dataset cityscapes"
        )
    if len(names) != NUM_CLASSES:
        raise SegtrainError(f"the model has {num_classes} outputs but {len(names)} class names; its segtrain.json is inconsistent")
    for train_id, (name, expected) in enumerate(zip(names, TRAIN_CLASS_NAMES)):
        if _normalized(name) != _normalized(expected):
            raise SegtrainError(
                f"the model's class {train_id} is {name!r}, Cityscapes' train id {train_id} is {expected!r}: "
                f"its classes are not {wanted} in train-id order"
            )


def trainid_to_id_table() -> np.ndarray:
    """uint8 [256]: train id -> Cityscapes label id (road 0 -> 7, ..., bicycle 18 -> 33).

    Every other entry (19..255, the ignore label 255 included) is NO_ID = 255, which is not a
    Cityscapes id: a lookup that yields it found a value with no id to write. A fresh read-only
    array, built from segprep.ops.cityscapes_labels (the official table).
    """
    table = np.full(256, NO_ID, np.uint8)
    for label in TRAIN_LABELS:
        table[label.train_id] = label.id
    table.flags.writeable = False
    return table


def train_ids_to_label_ids(train_ids: np.ndarray, void_id: int | None = None) -> np.ndarray:
    """uint8 label ids of the same shape as train_ids (integers 0..18).

    Any other value raises ValueError naming the values: 255 (the ignore label) has no id, and
    argmax over 19 classes never gives it. void_id: a void label id (trainId 255 in the table, e.g.
    0 "unlabeled") to write where train_ids holds 255, for a caller that abstains on purpose.
    """
    values = np.asarray(train_ids)
    if values.dtype.kind not in "iu":
        raise ValueError(f"train ids must be integers, not {values.dtype}")
    allowed = (values >= 0) & (values < NUM_CLASSES)
    if void_id is not None:
        label = BY_ID.get(void_id)
        if label is None or label.train_id != IGNORE_TRAIN_ID:
            voids = sorted(i for i, lab in BY_ID.items() if i >= 0 and lab.train_id == IGNORE_TRAIN_ID)
            raise ValueError(f"void_id {void_id} is not a void Cityscapes label id (one of {voids})")
        allowed |= values == IGNORE_TRAIN_ID
    if not allowed.all():
        bad = np.unique(values[~allowed])
        shown = ", ".join(str(int(v)) for v in bad[:8]) + (", ..." if bad.size > 8 else "")
        why = " (255 is the ignore label, which has no Cityscapes id; argmax over 19 classes never gives it)" if IGNORE_TRAIN_ID in bad and void_id is None else ""
        raise ValueError(f"values {shown} are not Cityscapes train ids 0..{NUM_CLASSES - 1}{why}")
    table = trainid_to_id_table().copy()
    if void_id is not None:
        table[IGNORE_TRAIN_ID] = void_id
    return table[values.astype(np.intp)]


# --- inputs ---------------------------------------------------------------------------------


def cityscapes_images(inputs: Iterable[Path]) -> tuple[list[tuple[Path, str]], list[str]]:
    """([(image, output name)], one problem line per input that cannot be part of a submission).

    inputs: image files, and folders: `leftImg8bit/<split>/` (the PNGs in each city folder), a
    city folder, or any folder of such images (its PNGs and those one level below). Hidden files
    and files that are not images are skipped in folders; an image whose name is not
    `<city>_<seq>_<frame>_leftImg8bit.png` is a problem (the server matches predictions to images
    by that name), as are a file named like an image that is not a regular file, and two inputs
    with one name. A folder with no image at all is a SegtrainError (a typo, or `leftImg8bit/`
    itself instead of one of its splits). The output name is the input's own name.
    """
    from segtrain.images import IMAGE_SUFFIXES
    from segtrain.outputs import collect_images

    def holds_images(folder: Path) -> bool:
        return any(p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") for p in folder.iterdir())

    locations: list[Path] = []  # files, and folders that hold images (predict's own collect_images reads them)
    for source in map(Path, inputs):
        if not source.is_dir():
            locations.append(source)
            continue
        folders = [source, *sorted(c for c in source.iterdir() if c.is_dir() and not c.name.startswith("."))]
        found = [folder for folder in folders if holds_images(folder)]
        if not found:
            raise SegtrainError(f"{source}: no images in this folder or its city folders; give leftImg8bit/<split>/, a city folder or image files")
        locations += found
    files, problems = collect_images(locations)  # each file once; anything not a regular file is a problem line
    images: list[tuple[Path, str]] = []
    owner: dict[str, Path] = {}
    for path in files:
        if IMAGE_NAME.match(path.name) is None:
            problems.append(
                f"{path}: not a Cityscapes image name (<city>_<seq>_<frame>_leftImg8bit.png, 6-digit numbers); "
                "the benchmark could not match its prediction to an image"
            )
            continue
        other = owner.setdefault(path.name.casefold(), path)
        if other != path:
            problems.append(f"{path}: its prediction would be named {path.name}, as that of {other}; a submission holds each image once")
            continue
        images.append((path, path.name))
    return images, problems


# --- where it is written --------------------------------------------------------------------


def _ledger(out_dir: Path) -> OutputLedger:
    """The ledger of the PNGs this tool wrote into out_dir, kept beside out_dir (so DIR holds only PNGs)."""
    absolute = Path(os.path.abspath(out_dir))
    if not absolute.name:
        raise OutputLocationError(f"{out_dir}: not a folder a submission can be written to; name a new folder")
    ledger = OutputLedger(absolute.parent, f".{absolute.name}{LEDGER_SUFFIX}", TOOL)
    ledger.folder = Path(out_dir)  # the files it owns live in out_dir; the ledger file beside it
    return ledger


def _zip_ledger(zip_path: Path) -> OutputLedger:
    return OutputLedger(zip_path.parent, ZIP_LEDGER, TOOL)


def _foreign_entries(out_dir: Path, ledger: OutputLedger) -> list[str]:
    """One line per entry of out_dir that is not a file of an earlier submission, unchanged since."""
    if not os.path.lexists(out_dir):
        return []
    if not out_dir.is_dir():
        return [f"{out_dir}: exists and is not a folder"]
    names = []
    for entry in sorted(os.scandir(out_dir), key=lambda e: e.name):
        match = TEMP_PATTERN.match(entry.name)
        if match is not None and is_stale(int(match["pid"])) and entry.is_file(follow_symlinks=False):
            continue  # a killed run's temporary: removed before writing
        names.append(entry.name)
    return ledger.foreign(names)


def check_submission_target(out_dir: Path, inputs: Iterable[Path] = (), zip_path: Path | None = None) -> None:
    """OutputLocationError (one line, naming the first thing in the way) unless the submission may be written.

    out_dir must be new, empty, or hold only the PNGs of an earlier submission this tool wrote
    (unchanged since), and may not be, be inside or contain any of inputs (the images, the
    folders named, the checkpoint's logdir). zip_path may not be inside out_dir (which would then
    hold more than the submission) nor be or be inside an input, and is replaced only when this
    tool wrote it.
    """
    from segprep.paths import check_output_location

    inputs = list(inputs)
    check_output_location(out_dir, inputs, "--cityscapes-submission")
    ledger = _ledger(out_dir)
    foreign = _foreign_entries(out_dir, ledger)
    if foreign:
        more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        raise OutputLocationError(
            f"{foreign[0]}{more}: --cityscapes-submission must be a new or empty folder, or an earlier submission written by {TOOL}"
        )
    check_output_location(ledger.path, inputs, "--cityscapes-submission's ledger")
    if zip_path is not None:
        check_output_location(zip_path, [*inputs, out_dir], "--zip")
        _zip_ledger(zip_path).refuse_foreign([zip_path.name], "choose another --zip file, or remove it")


# --- writing --------------------------------------------------------------------------------


@dataclass
class SubmissionResult:
    """What write_submission did: names written into out_dir, names of an earlier submission it
    removed, one problem line per image it could not predict, and the zip written (None when
    none was asked for, or when an image failed and the submission is incomplete)."""

    out_dir: Path
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    zip_path: Path | None = None


def _png(label_ids: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(label_ids, np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def write_submission(
    predict_classes: Callable[[np.ndarray], np.ndarray],
    images: Sequence[tuple[Path, str]],
    out_dir: Path,
    zip_path: Path | None = None,
    progress: ProgressSink | None = None,
    inputs: Iterable[Path] = (),
) -> SubmissionResult:
    """Predict every image and write its label-id PNG into out_dir; then the zip, when every image was predicted.

    predict_classes: uint8 RGB [H, W, 3] -> train ids [H, W] (integers 0..18), e.g.
    `lambda rgb: predictor(rgb).argmax(-1).astype(np.uint8)` with segtrain.predict.make_predictor.
    images: from cityscapes_images. inputs: more paths out_dir and zip_path must stay clear of (the
    folders named on the command line, the checkpoint's logdir); the images and their folders
    always count.
    Images are read with segtrain.images.read_rgb, as predict reads them. One that cannot be read
    is a problem line and the others are still written. A prediction of the wrong size or with a
    value that is no train id raises SegtrainError naming the image (a bug, not bad data).
    Refusals (check_submission_target) come before anything is predicted or written.
    """
    from segprep.fileio import atomic_write_bytes, make_folder
    from segprep.safewrite import remove_path, remove_stale_temporaries, sha256_bytes
    from segtrain.errors import ImageReadError
    from segtrain.images import read_rgb

    out_dir = Path(out_dir)
    names = [name for _, name in images]
    if not names:
        raise SegtrainError("no images to predict: a submission needs every image of its split")
    if len({name.casefold() for name in names}) != len(names):
        raise SegtrainError("two images would write one prediction name; use cityscapes_images, which reports such clashes")
    bad = [name for name in names if IMAGE_NAME.match(name) is None]
    if bad:
        raise SegtrainError(f"{bad[0]}: not a Cityscapes image name; use cityscapes_images")
    folders = {path.parent for path, _ in images}  # an image's folder is an input too: nothing is written inside it
    check_submission_target(out_dir, [*(path for path, _ in images), *sorted(folders), *inputs], zip_path)

    result = SubmissionResult(out_dir)
    ledger = _ledger(out_dir)
    make_folder(out_dir)
    remove_stale_temporaries(out_dir)
    planned = set(names)
    for name in sorted(ledger.files):
        if name in planned:
            continue
        if os.path.lexists(out_dir / name):  # owned and unchanged: check_submission_target said so
            remove_path(out_dir / name)
            result.removed.append(name)
        del ledger.files[name]
    ledger.begin(names)  # saves the ledger, without the removed names
    advance = (progress or NoProgress()).task("Cityscapes submission", len(images))
    written: dict[str, str] = {}
    try:
        for path, name in images:
            try:
                rgb = read_rgb(path)
            except ImageReadError as exc:
                result.problems.append(str(exc))
                advance(1)
                continue
            train_ids = np.asarray(predict_classes(rgb))
            if train_ids.shape != rgb.shape[:2]:
                raise SegtrainError(f"{path}: the prediction is {train_ids.shape}, the image {rgb.shape[:2]}; predict_classes must return [H, W] train ids")
            try:
                label_ids = train_ids_to_label_ids(train_ids)
            except ValueError as exc:
                raise SegtrainError(f"{path}: the prediction's {exc}") from None
            data = _png(label_ids)
            atomic_write_bytes(out_dir / name, data)
            written[name] = sha256_bytes(data)
            result.written.append(name)
            advance(1)
    finally:
        ledger.finish(written)
    if zip_path is not None and not result.problems:
        _write_zip(zip_path, out_dir, sorted(written))
        result.zip_path = zip_path
    return result


def _write_zip(zip_path: Path, out_dir: Path, names: list[str]) -> None:
    """A deterministic archive of out_dir's PNGs (at its root, sorted, fixed times), written as a
    temporary beside zip_path and renamed over it; recorded in the ledger beside it."""
    from segprep.fileio import make_folder, temporary_for
    from segprep.safewrite import remove_path

    ledger = _zip_ledger(zip_path)
    ledger.refuse_foreign([zip_path.name], "choose another --zip file, or remove it")
    make_folder(zip_path.parent)
    tmp = temporary_for(zip_path)
    try:
        with zipfile.ZipFile(tmp, "w") as archive:
            for name in names:
                info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, (out_dir / name).read_bytes())
        digest = hashlib.sha256()
        with open(tmp, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        ledger.begin([zip_path.name])
        os.replace(tmp, zip_path)
        ledger.finish({zip_path.name: digest.hexdigest()})
    finally:
        remove_path(tmp)


__all__ = [
    "IMAGE_NAME",
    "NUM_CLASSES",
    "SubmissionResult",
    "check_cityscapes_classes",
    "check_submission_target",
    "cityscapes_images",
    "train_ids_to_label_ids",
    "trainid_to_id_table",
    "write_submission",
]
