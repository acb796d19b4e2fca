"""Writing outputs so that nothing half-written survives, and only segprep's own files are replaced.

Three small tools shared by the commands that write files beside or among a user's files
(`remove-colormap`, `trainids`, `lists`, `labelme`):

- Temporaries are named `.{target name}.segprep-{pid}.tmp` beside their target and renamed over
  it only when complete, so a killed run never leaves a truncated file under a real name. The
  pid in the name tells a later run whether the writer is still alive: temporaries of dead
  processes are removed by the next run (`remove_stale_temporaries`).
- `write_files_atomically` writes a whole set of files as temporaries first and renames them only
  when every one was written: a full disk or a permission error leaves the old files as they were.
- `OwnedFiles` is a sidecar JSON in an output folder recording the sha256 of each file a command
  wrote there. A file may be replaced only when its current bytes are ones this command wrote (or
  equal what it is about to write); anything else is a user's file and is refused, never replaced.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

from segprep.errors import OutputLocationError

TEMP_PATTERN = re.compile(r"^\.(?P<name>.+)\.segprep-(?P<pid>\d+)\.tmp$")
# Also the temporaries of segprep.fileio.atomic_write (`.{name}.{pid}.tmp`); match only with a
# check that `name` is one of the command's own targets.
ANY_TEMP_PATTERN = re.compile(r"^\.(?P<name>.+?)\.(?:segprep-)?(?P<pid>\d+)\.tmp$")


def temporary_for(target: Path, pid: int | None = None) -> Path:
    """The hidden temporary beside `target` that this process (or `pid`) writes before renaming."""
    return target.with_name(f".{target.name}.segprep-{os.getpid() if pid is None else pid}.tmp")


def pid_alive(pid: int) -> bool:
    """True when a process with this id exists (it may belong to another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(pid: int) -> bool:
    """A temporary of `pid` is stale when that process is gone, or is this one (a reused pid: this
    run has not written anything yet when it looks, or has stopped writing when it cleans up)."""
    return pid == os.getpid() or not pid_alive(pid)


def remove_path(path: Path) -> None:
    """Remove a file, link or folder tree; already gone is fine. Links are removed, never followed."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def remove_stale_temporaries(
    folder: Path,
    pattern: re.Pattern[str] = TEMP_PATTERN,
    accept: Callable[[Path, re.Match[str]], bool] | None = None,
) -> list[Path]:
    """Remove the temporaries of dead processes in `folder` (not recursive); return what was removed.

    `pattern` must have a `pid` group; `accept` may veto an entry (e.g. a folder that does not look
    like this tool's staging). A missing or unreadable folder has nothing to clean.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = pattern.match(entry.name)
        if match is None or not is_stale(int(match["pid"])):
            continue
        path = Path(entry.path)
        if accept is not None and not accept(path, match):
            continue
        remove_path(path)
        removed.append(path)
    return removed


def make_folder(path: Path) -> None:
    """mkdir -p that names `path` when a component of it is a file (mkdir alone says 'exists')."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path)) from None


def with_filename(exc: OSError, path: Path) -> OSError:
    """The same OS error, naming `path` when the OS did not (a write() that hit a full disk)."""
    if exc.filename is not None:
        return exc
    return type(exc)(exc.errno, exc.strerror or str(exc), str(path))


def write_atomic(target: Path, data: bytes) -> None:
    """Write data to a temporary beside target and rename it over target; no temporary survives a failure."""
    tmp = temporary_for(target)
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except OSError as exc:
        remove_path(tmp)
        raise with_filename(exc, target) from None
    except BaseException:
        remove_path(tmp)
        raise


def stage_files(files: Mapping[Path, bytes]) -> list[tuple[Path, Path]]:
    """Write every file as its temporary; [(temporary, target)]. On failure none is left behind."""
    staged: list[tuple[Path, Path]] = []
    try:
        for target, data in files.items():
            tmp = temporary_for(target)
            staged.append((tmp, target))
            try:
                with open(tmp, "wb") as handle:
                    handle.write(data)
            except OSError as exc:
                raise with_filename(exc, target) from None
    except BaseException:
        discard_staged(staged)
        raise
    return staged


def commit_staged(staged: list[tuple[Path, Path]]) -> None:
    """Rename staged temporaries over their targets; on failure remove those not renamed yet."""
    try:
        for tmp, target in staged:
            os.replace(tmp, target)
    except BaseException:
        discard_staged(staged)
        raise


def discard_staged(staged: list[tuple[Path, Path]]) -> None:
    for tmp, _target in staged:
        remove_path(tmp)


def write_files_atomically(files: Mapping[Path, bytes]) -> None:
    """Write every file as a temporary, then rename them all; on any failure remove every temporary.

    A failure while writing (full disk, no permission) leaves every target as it was; the renames
    that follow only fail on a broken file system, and then the files already renamed are complete.
    """
    commit_staged(stage_files(files))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str | None:
    """The file's sha256, or None when it is not a readable regular file (a folder, a dangling link)."""
    try:
        if not path.is_file():
            return None
        return sha256_bytes(path.read_bytes())
    except OSError:
        return None


class OwnedFiles:
    """The sidecar `folder/name` listing, per file name, the sha256 of what `tool` wrote there.

    A sidecar that is missing, unreadable or written by another tool owns nothing: the safe answer.
    """

    def __init__(self, folder: Path, name: str, tool: str) -> None:
        self.folder = folder
        self.path = folder / name
        self.tool = tool
        self.files: dict[str, list[str]] = self._load()

    def _load(self) -> dict[str, list[str]]:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(document, dict) or document.get("tool") != self.tool or not isinstance(document.get("files"), dict):
            return {}
        return {
            str(name): [h for h in hashes if isinstance(h, str)]
            for name, hashes in document["files"].items()
            if isinstance(hashes, list)
        }

    def refuse_foreign(self, new: Mapping[Path, bytes], what: str) -> None:
        """Raise OutputLocationError naming the first existing target that is not this tool's file.

        A target may be replaced when it does not exist, when its bytes are a version this tool
        recorded, or when they equal the new bytes. `what` names the user's way out.
        """
        foreign: list[Path] = []
        for target, data in new.items():
            if not os.path.lexists(target):
                continue
            current = sha256_file(target) if not target.is_symlink() else None
            if current is None or (current != sha256_bytes(data) and current not in self.files.get(target.name, [])):
                foreign.append(target)
        if foreign:
            more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
            raise OutputLocationError(
                f"{foreign[0]}: exists and was not written by {self.tool}{more}; "
                f"refusing to replace it: {what}"
            )

    def replace(self, new: Mapping[Path, bytes]) -> None:
        """Write the new files atomically, recording them in the sidecar first and pruning it after.

        The files are staged first (a write fault leaves files and sidecar as they were); while they
        are renamed the sidecar accepts both the old and the new versions, so a run killed half-way
        leaves nothing that the next run would take for a user's file.
        """
        hashes = {target.name: sha256_bytes(data) for target, data in new.items()}
        staged = stage_files(new)  # a full disk fails here, before the sidecar changes
        try:
            self._save({name: sorted(set(self.files.get(name, [])) | {h}) for name, h in hashes.items()})
        except BaseException:
            discard_staged(staged)
            raise
        commit_staged(staged)
        self._save({name: [h] for name, h in hashes.items()})

    def _save(self, updates: dict[str, list[str]]) -> None:
        self.files = {**self.files, **updates}
        document = {"tool": self.tool, "files": dict(sorted(self.files.items()))}
        write_atomic(self.path, (json.dumps(document, indent=1) + "\n").encode("utf-8"))

