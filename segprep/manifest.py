"""The per-split manifest ({split}.manifest.json) and the in-progress journal beside it.

The manifest is written last, atomically, and only for a complete split: its presence is what
says a split is finished. While a split is being written, each completed shard is appended to a
hidden journal (one JSON line per shard) so that an interrupted run can resume without
re-reading the shards it already finished.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from segprep.fileio import atomic_write_text

MANIFEST_FORMAT = "segprep-manifest/1"


def shard_name(split: str, index: int, count: int) -> str:
    """DeepLab's shard naming, so that its `{split}-*` pattern and segtrain read the same files."""
    return f"{split}-{index:05d}-of-{count:05d}.tfrecord"


def shard_pattern(split: str) -> re.Pattern[str]:
    return re.compile(re.escape(split) + r"-\d{5}-of-\d{5}\.tfrecord")


def temporary_shard_name(split: str, index: int, count: int) -> str:
    """Hidden and not starting with `{split}-`, so no reader's glob ever picks up a partial shard."""
    return f".tmp-{shard_name(split, index, count)}"


def manifest_path(out_dir: Path, split: str) -> Path:
    return out_dir / f"{split}.manifest.json"


def journal_path(out_dir: Path, split: str) -> Path:
    return out_dir / f".{split}.journal.jsonl"


def write_json_atomic(path: Path, document: Any) -> None:
    """Write JSON to a temporary file in the same folder and rename it into place."""
    # No indent: indented output goes through json's pure-Python encoder, ~10x slower on big manifests.
    atomic_write_text(path, json.dumps(document, ensure_ascii=False) + "\n")


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest, or None when it is absent or not a segprep manifest."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
        return None
    return document


def find_manifests(out_dir: Path) -> dict[str, dict[str, Any]]:
    """{split: manifest} for every finished split in a folder."""
    found = {}
    for path in sorted(out_dir.glob("*.manifest.json")):
        document = read_manifest(path)
        if document is not None:
            found[document["split"]] = document
    return found


def read_journal(path: Path) -> dict[int, dict[str, Any]]:
    """{shard index: entry} of completed shards; a torn last line (killed mid-write) is ignored."""
    entries: dict[int, dict[str, Any]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return entries
    for line in lines:
        try:
            entry = json.loads(line)
            entries[int(entry["shard"])] = entry
        except (ValueError, KeyError, TypeError):
            continue
    return entries


def append_journal(path: Path, entry: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        # No fsync: the journal guards against a killed process (the page cache survives it), the
        # same guarantee the shards themselves have; power loss is out of its scope.
        handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
