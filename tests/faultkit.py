"""Helpers for the fault-injection tests: snapshots of inputs and what a clean refusal looks like.

Every fault test marks itself with `@pytest.mark.fault(CLASS, COMMAND, ...)` (CLASS one of
FAULT_CLASSES) so that `pytest -m fault --fault-table` prints the table of fault class,
commands checked and cases.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

# Issue 8's fault classes, in its order.
FAULT_CLASSES = {
    "inputs": "1. inputs never destroyed",
    "poison": "2. poison refused before it is stored",
    "registry": "3. registry changes only on success",
    "writer": "4. one writer per output",
    "verify": "5. verify trusts nothing",
    "os": "6. OS faults",
    "segtrain": "7. segtrain refuses early and clearly",
    "traceback": "8. no traceback reaches a user",
}

_SHARD = re.compile(r".+-\d{5}-of-\d{5}\.tfrecord$")


def snapshot(*roots: Path) -> dict[str, tuple[str, int]]:
    """{relative path: (sha256, mode)} of every file and folder under the roots (a root may be a file)."""
    found: dict[str, tuple[str, int]] = {}
    for root in map(Path, roots):
        if not root.exists():
            found[str(root)] = ("absent", 0)
            continue
        paths = [root] if root.is_file() else [root, *sorted(root.rglob("*"))]
        for path in paths:
            st = os.lstat(path)
            if path.is_symlink():
                digest = "link:" + os.readlink(path)
            elif path.is_dir():
                digest = "dir"
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            found[str(path)] = (digest, st.st_mode)
    return found


def assert_unchanged(before: dict[str, tuple[str, int]], *roots: Path) -> None:
    """The roots hold exactly the same files, bytes and modes as in `before`."""
    after = snapshot(*roots)
    changed = sorted(set(before) ^ set(after) | {p for p in before.keys() & after.keys() if before[p] != after[p]})
    assert not changed, f"inputs changed: {changed[:10]}"


def error_lines(result) -> list[str]:  # type: ignore[no-untyped-def]
    """The `error:` lines a command printed on stderr."""
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def assert_refused(result, *names: object, code: int = 1) -> None:  # type: ignore[no-untyped-def]
    """Exit `code`, no traceback anywhere, and every name appears in some one-line `error:` message."""
    output = result.stdout + result.stderr
    assert result.exit_code == code, f"exit {result.exit_code}, wanted {code}: {output[-2000:]}"
    assert "Traceback" not in output, output[-2000:]
    lines = error_lines(result) if code == 1 else result.stderr.splitlines()
    assert lines, f"no error line: {output[-2000:]}"
    for name in names:
        assert any(str(name) in line for line in lines), f"{name!r} not named in {lines}"


def finished_looking(out_dir: Path) -> list[str]:
    """Files under out_dir that a reader would take for finished output (shards, manifests)."""
    if not out_dir.exists():
        return []
    return sorted(
        str(p.relative_to(out_dir))
        for p in out_dir.rglob("*")
        if p.is_file() and not p.name.startswith(".") and (_SHARD.match(p.name) or p.name.endswith(".manifest.json"))
    )
