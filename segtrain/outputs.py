"""Where `segtrain predict` and `segtrain export` write, without ever replacing a user's file.

predict keeps a ledger, `.segtrain-predict.json`, in its --out folder (segprep's OutputLedger):
the sha256 of every file it wrote there. A later run may replace a file only when the ledger lists
it with its current bytes (a mask corrected by hand since is the user's now); any other existing
file is refused before any work.

eval and score keep a ledger, `.segtrain-json.json`, in the folder of their --json file: a JSON
file is replaced only when the ledger lists its current bytes, or when it already holds exactly
the bytes about to be written; any other file is the user's and is refused.

export writes the SavedModel into a hidden staging folder beside --out and moves it into place
when complete; an existing --out is replaced only when it is empty or a SavedModel that export
wrote (it carries `segtrain-export.json`).

Pure Python (no TensorFlow), so these checks run before any model is loaded.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from segprep.errors import OutputLocationError
from segprep.safewrite import OutputLedger
from segtrain.errors import SegtrainError
from segtrain.images import IMAGE_SUFFIXES

LEDGER = ".segtrain-predict.json"
LEDGER_TOOL = "segtrain predict"
EXPORT_MARKER = "segtrain-export.json"
# What an export folder holds: tf.saved_model.save's files and folders, and export's marker.
_EXPORT_ENTRIES = frozenset({"saved_model.pb", "fingerprint.pb", "variables", "assets", "assets.extra", EXPORT_MARKER})
OUTPUT_SUFFIXES = ("", "_color", "_overlay")  # {stem}.png, {stem}_color.png, {stem}_overlay.png


def collect_images(inputs: Sequence[Path]) -> tuple[list[Path], list[str]]:
    """(files to predict, one problem line per input that is not a regular file).

    The files named, and the images directly inside the folders named, each once, in order.
    Hidden files in folders (.DS_Store, macOS's ._photo.jpg) are not images and are skipped; a
    folder with no image is an error, so a typo does not pass as "0 images predicted".

    Anything named like an image that is not a regular file (a FIFO, which would block predict
    forever, a folder called x.png, a broken link), named on the command line or found in a
    folder, is never opened and never skipped silently: it is a problem line. predict reports
    those lines as it reports an image it cannot decode: each is one `error:` line at the end,
    the other images are still predicted, and the exit status is 1. Refusing the whole run
    instead would make one stray entry block a folder of good images; a warning would let a
    script take a missing prediction for success.
    """
    from segtrain.files import regular_problem

    files: list[Path] = []
    problems: list[str] = []
    seen: set[str] = set()
    for path in inputs:
        if path.is_dir():
            named = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
            if not named:
                raise SegtrainError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        else:
            named = [path]
        for file in named:
            key = os.path.realpath(file)
            if key in seen:
                continue
            seen.add(key)
            problem = regular_problem(file)
            if problem is None:
                files.append(file)
            else:
                problems.append(f"{problem}; not predicted")
    return files, problems


def output_names(image: Path) -> list[str]:
    return [f"{image.stem}{suffix}.png" for suffix in OUTPUT_SUFFIXES]


def name_clashes(files: Iterable[Path]) -> list[str]:
    """One line per input whose output names another input also produces (a.png and a.jpg,
    x.png in two folders, or a.png beside a_color.png). Names are compared ignoring case, so
    the outputs are the same on case-insensitive file systems (macOS, Windows)."""
    owner: dict[str, Path] = {}
    lines = []
    for file in files:
        for name in output_names(file):
            other = owner.setdefault(name.casefold(), file)
            if other != file:
                lines.append(f"{file}: would write {name}, as {other} does; rename one, or predict them into separate --out folders")
                break
    return lines


def PredictLedger(out_dir: Path) -> OutputLedger:  # noqa: N802 - reads as the ledger's kind
    """The ledger of the files segtrain predict wrote into out_dir (see segprep.safewrite.OutputLedger)."""
    return OutputLedger(out_dir, LEDGER, LEDGER_TOOL)


JSON_LEDGER = ".segtrain-json.json"
JSON_TOOL = "segtrain eval/score --json"


def JsonLedger(json_path: Path) -> OutputLedger:  # noqa: N802 - reads as the ledger's kind
    """The ledger of the --json files segtrain eval and score wrote into json_path's folder."""
    return OutputLedger(json_path.parent, JSON_LEDGER, JSON_TOOL)


def check_json_target(json_path: Path, data: bytes | None = None) -> None:
    """OutputLocationError unless json_path is new, a file eval/score wrote there (unchanged since),
    or (data given) holds exactly data already. Without data (before the work, when the bytes are
    not known yet) an existing file is accepted only when the ledger owns it."""
    JsonLedger(json_path).refuse_foreign({json_path: data} if data is not None else [json_path.name], "choose another --json file, or remove it")


def write_json_output(json_path: Path, data: bytes) -> None:
    """Write --json's bytes atomically and record them in the folder's ledger (checked again first)."""
    from segprep.fileio import make_folder

    ledger = JsonLedger(json_path)
    ledger.refuse_foreign({json_path: data}, "choose another --json file, or remove it")
    make_folder(json_path.parent)
    ledger.replace({json_path: data})


def check_export_target(out_dir: Path) -> None:
    """Refuse an --out that exists and is neither empty nor a SavedModel segtrain export wrote."""
    if not os.path.lexists(out_dir):
        return
    if out_dir.is_symlink() or not out_dir.is_dir():
        raise OutputLocationError(f"{out_dir}: exists and is not a folder; refusing to replace it")
    if not any(out_dir.iterdir()):
        return
    if (out_dir / EXPORT_MARKER).is_file() and (out_dir / "saved_model.pb").is_file():
        extra = sorted(entry.name for entry in out_dir.iterdir() if entry.name not in _EXPORT_ENTRIES)
        if extra:  # replacing the export would delete these: they are not export's
            more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
            raise OutputLocationError(
                f"{out_dir / extra[0]}{more}: not written by segtrain export, and replacing the earlier export in {out_dir} would delete it; "
                "move it out, or choose a new --out"
            )
        return
    raise OutputLocationError(
        f"{out_dir}: not empty and not a SavedModel written by segtrain export (no {EXPORT_MARKER}); refusing to replace it: choose a new --out"
    )


def staging_folder(out_dir: Path) -> Path:
    """A hidden sibling of out_dir to export into (same file system, so the final move is a rename)."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.with_name(f".{out_dir.name}.segtrain-export-{os.getpid()}.tmp")
    if staging.exists():
        shutil.rmtree(staging)
    return staging


def install_folder(staged: Path, out_dir: Path) -> None:
    """Move a complete staged folder to out_dir; an earlier export there is removed only afterwards."""
    if not os.path.lexists(out_dir):
        os.rename(staged, out_dir)
        return
    old = out_dir.with_name(f".{out_dir.name}.segtrain-old-{os.getpid()}")
    os.rename(out_dir, old)
    try:
        os.rename(staged, out_dir)
    except OSError:
        os.rename(old, out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)


EXPORT_LEDGER = ".segtrain-export.json"
EXPORT_TOOL = "segtrain export"


def ExportFileLedger(target: Path) -> OutputLedger:  # noqa: N802 - reads as the ledger's kind
    """The ledger of single-file exports (.tflite) in target's folder."""
    return OutputLedger(target.parent, EXPORT_LEDGER, EXPORT_TOOL)


def check_file_export_target(target: Path) -> None:
    """Refuse a --out file that is a folder, or a file export did not write (or that changed since)."""
    if target.is_dir():
        raise OutputLocationError(f"{target}: is a folder; a TFLite export is one file (e.g. {target / 'model.tflite'})")
    ExportFileLedger(target).refuse_foreign([target.name], "choose another --out file, or remove it")
