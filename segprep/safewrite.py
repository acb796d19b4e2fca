"""Writing outputs so that nothing half-written survives, and only segprep's own files are replaced.

Three small tools shared by the commands that write files beside or among a user's files
(`remove-colormap`, `trainids`, `lists`, `labelme`):

- Temporaries are named `.{target name}.segprep-{pid}.tmp` beside their target and renamed over
  it only when complete, so a killed run never leaves a truncated file under a real name. The
  pid in the name tells a later run whether the writer is still alive: temporaries of dead
  processes are removed by the next run (`remove_stale_temporaries`).
- `write_files_atomically` writes a whole set of files as temporaries first and renames them only
  when every one was written: a full disk or a permission error leaves the old files as they were.
- `OutputLedger` is a sidecar JSON in an output folder recording the sha256 of each file a command
  wrote there. A file may be replaced only when its current bytes are ones this command wrote (or
  equal what it is about to write); anything else is a user's file and is refused, never replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from segprep.errors import OutputLocationError, with_filename
from segprep.fileio import atomic_write_bytes, make_folder, temporary_for  # noqa: F401 - part of this module's toolkit

TEMP_PATTERN = re.compile(r"^\.(?P<name>.+)\.segprep-(?P<pid>\d+)\.tmp$")
# Also the `.{name}.{pid}.tmp` naming of earlier versions; match only with a check that `name` is
# one of the command's own targets.
ANY_TEMP_PATTERN = re.compile(r"^\.(?P<name>.+?)\.(?:segprep-)?(?P<pid>\d+)\.tmp$")


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


def write_atomic(target: Path, data: bytes) -> None:
    """Write data to a temporary beside target and rename it over target (segprep.fileio.atomic_write)."""
    atomic_write_bytes(target, data)


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


class OutputLedger:
    """The sidecar `folder/name` listing, per file name, the sha256 of what `tool` wrote there.

    A file may be replaced only when its current bytes are a version recorded here (or equal
    what is about to be written); anything else is a user's file and is refused. Names about to
    be written are first recorded as pending (null): a run killed half-way leaves nothing the next
    run would take for a user's file. A ledger that is missing, unreadable or another tool's owns
    nothing: the safe answer.
    """

    def __init__(self, folder: Path, name: str, tool: str) -> None:
        self.folder = folder
        self.path = folder / name
        self.tool = tool
        self.readable = True
        self.files: dict[str, list[str] | None] = self._load()
        self._before_begin: dict[str, list[str] | None] = {}

    def _load(self) -> dict[str, list[str] | None]:
        if not os.path.lexists(self.path):
            return {}
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            document = None
        if not isinstance(document, dict) or document.get("tool") != self.tool or not isinstance(document.get("files"), dict):
            self.readable = False
            return {}
        return {
            str(name): None if hashes is None else [h for h in hashes if isinstance(h, str)]
            for name, hashes in document["files"].items()
            if hashes is None or isinstance(hashes, list)
        }

    def foreign(self, targets: Iterable[str] | Mapping[Path, bytes]) -> list[str]:
        """One line per existing target this ledger does not own as it is now.

        targets: file names in the folder, or {path: new bytes} (a file already holding exactly
        the new bytes is then no loss to replace).
        """
        new = targets if isinstance(targets, Mapping) else {self.folder / name: None for name in targets}
        lines = []
        for target, data in new.items():
            if not os.path.lexists(target):
                continue
            current = sha256_file(target) if not target.is_symlink() else None
            if current is None:
                lines.append(f"{target}: exists and is not a file {self.tool} wrote; refusing to replace it")
                continue
            if data is not None and current == sha256_bytes(data):
                continue
            if target.name not in self.files:
                why = f"{self.path} is unreadable" if not self.readable else f"not listed in {self.path}"
                lines.append(f"{target}: exists and was not written by {self.tool} ({why}); refusing to replace it")
            elif self.files[target.name] is not None and current not in self.files[target.name]:
                lines.append(f"{target}: changed since {self.tool} wrote it; refusing to replace it")
        return lines

    def refuse_foreign(self, new: Mapping[Path, bytes], what: str) -> None:
        """Raise OutputLocationError naming the first target in the way; `what` names the user's way out."""
        lines = self.foreign(new)
        if lines:
            more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
            raise OutputLocationError(f"{lines[0]}{more}: {what}")

    def begin(self, names: Iterable[str]) -> None:
        """Record names as pending before any of them is written."""
        names = list(names)
        self._before_begin = {name: self.files.get(name) for name in names if name in self.files}
        self.files.update({name: None for name in names})
        self._save()

    def finish(self, written: Mapping[str, str]) -> None:
        """Record the sha256 of what was written; pending names not written go back to what they were."""
        for name, digest in list(self.files.items()):
            if digest is None and name not in written:
                if name in self._before_begin:
                    self.files[name] = self._before_begin[name]
                else:
                    del self.files[name]
        self.files.update({name: [digest] for name, digest in written.items()})
        self._save()

    def replace(self, new: Mapping[Path, bytes]) -> None:
        """Write a set of files atomically: staged first (a full disk changes nothing), then renamed."""
        staged = stage_files(new)
        try:
            self.begin(target.name for target in new)
        except BaseException:
            discard_staged(staged)
            raise
        commit_staged(staged)
        self.finish({target.name: sha256_bytes(data) for target, data in new.items()})

    def _save(self) -> None:
        document = {"tool": self.tool, "files": dict(sorted(self.files.items()))}
        write_atomic(self.path, (json.dumps(document, indent=1) + "\n").encode("utf-8"))


OUTPUTS_SIDECAR = ".segprep-outputs.json"


def write_owned_file(
    target: Path,
    data: bytes,
    *,
    inputs: Iterable[Path] = (),
    option: str = "output",
    sidecar: str = OUTPUTS_SIDECAR,
    tool: str = "segprep",
) -> None:
    """Write one output file a user named (a preview sheet, a JSON report) the way every output is written.

    Never over one of the command's `inputs`; never over a file this tool did not write (the
    ledger `sidecar` beside the target records what it wrote there); atomically, so a full disk
    leaves the old file. OutputLocationError names the target and the way out otherwise.
    """
    from segprep.paths import check_not_overwriting

    check_not_overwriting([target], inputs, option)
    ledger = OutputLedger(target.parent, sidecar, tool)
    ledger.refuse_foreign({target: data}, f"choose another {option} or move that file away")
    make_folder(target.parent)
    ledger.replace({target: data})
