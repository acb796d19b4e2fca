"""Where `segtrain predict` and `segtrain export` write, without ever replacing a user's file.

predict keeps a ledger, `.segtrain-predict.json`, in its --out folder: the sha256 of every file
it wrote there. A later run may replace a file only when the ledger lists it with its current
bytes (a mask corrected by hand since is the user's now); any other existing file is refused
before any work. Names about to be written are recorded as pending (null) first, so a run killed
half-way leaves nothing the next run would mistake for a user's file.

export writes the SavedModel into a hidden staging folder beside --out and moves it into place
when complete; an existing --out is replaced only when it is empty or a SavedModel that export
wrote (it carries `segtrain-export.json`).

Pure Python (no TensorFlow), so these checks run before any model is loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from segprep.errors import OutputLocationError
from segtrain.errors import SegtrainError
from segtrain.images import IMAGE_SUFFIXES

LEDGER = ".segtrain-predict.json"
LEDGER_TOOL = "segtrain predict"
EXPORT_MARKER = "segtrain-export.json"
OUTPUT_SUFFIXES = ("", "_color", "_overlay")  # {stem}.png, {stem}_color.png, {stem}_overlay.png


def collect_images(inputs: Sequence[Path]) -> list[Path]:
    """The files named, and the images directly inside the folders named, each once, in order.

    Hidden files in folders (.DS_Store, macOS's ._photo.jpg) are not images and are skipped; a
    folder with no image is an error, so a typo does not pass as "0 images predicted".
    """
    files: list[Path] = []
    seen: set[str] = set()
    for path in inputs:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file())
            if not found:
                raise SegtrainError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        else:
            found = [path]
        for file in found:
            key = os.path.realpath(file)
            if key not in seen:
                seen.add(key)
                files.append(file)
    return files


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


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class PredictLedger:
    """The record, in an --out folder, of the files segtrain predict wrote there (name -> sha256)."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.path = out_dir / LEDGER
        self.readable = True
        self.files: dict[str, str | None] = self._load()

    def _load(self) -> dict[str, str | None]:
        if not self.path.exists():
            return {}
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
            files = document["files"] if isinstance(document, dict) and document.get("tool") == LEDGER_TOOL else None
            if not isinstance(files, dict):
                raise ValueError("not a ledger")
        except (OSError, ValueError, KeyError):
            self.readable = False  # owns nothing: every existing output is then the user's
            return {}
        return {str(k): v for k, v in files.items() if v is None or isinstance(v, str)}

    def foreign(self, names: Iterable[str]) -> list[str]:
        """One line per existing file among names that this ledger does not own as it is now."""
        lines = []
        for name in names:
            path = self.out_dir / name
            if not os.path.lexists(path):
                continue
            if path.is_symlink() or not path.is_file():
                lines.append(f"{path}: exists and is not a file segtrain predict wrote; refusing to replace it")
            elif name not in self.files:
                where = f"{self.path} is unreadable" if not self.readable else f"not listed in {self.path}"
                lines.append(f"{path}: exists and was not written by segtrain predict ({where}); refusing to replace it")
            elif self.files[name] is not None and self.files[name] != _file_sha256(path):
                lines.append(f"{path}: changed since segtrain predict wrote it; refusing to replace it")
        return lines

    def begin(self, names: Iterable[str]) -> None:
        """Record names as pending before any of them is written."""
        self._previous = dict(self.files)
        self.files.update({name: None for name in names})
        self._save()

    def finish(self, written: dict[str, str]) -> None:
        """Record what was written; pending names that were not written go back to what they were."""
        previous = getattr(self, "_previous", {})
        for name, digest in list(self.files.items()):
            if digest is None and name not in written:
                if name in previous:
                    self.files[name] = previous[name]
                else:
                    del self.files[name]
        self.files.update(written)
        self._save()

    def _save(self) -> None:
        from segprep.fileio import atomic_write_text

        document = {"tool": LEDGER_TOOL, "files": dict(sorted(self.files.items()))}
        atomic_write_text(self.path, json.dumps(document, indent=1) + "\n")


def _file_sha256(path: Path) -> str | None:
    try:
        return sha256_bytes(path.read_bytes())
    except OSError:
        return None


def check_export_target(out_dir: Path) -> None:
    """Refuse an --out that exists and is neither empty nor a SavedModel segtrain export wrote."""
    if not os.path.lexists(out_dir):
        return
    if out_dir.is_symlink() or not out_dir.is_dir():
        raise OutputLocationError(f"{out_dir}: exists and is not a folder; refusing to replace it")
    if not any(out_dir.iterdir()):
        return
    if (out_dir / EXPORT_MARKER).is_file() and (out_dir / "saved_model.pb").is_file():
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
