"""Re-read every shard of a segprep output folder and check it against the split manifests."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segprep.formats.example import decode_example
from segprep.formats.tfrecord import CorruptRecordError, iter_records
from segprep.manifest import find_manifests, shard_pattern

# The SPEC §2 keys, in the order segprep writes them.
EXAMPLE_KEYS = (
    "image/encoded",
    "image/filename",
    "image/format",
    "image/height",
    "image/width",
    "image/channels",
    "image/segmentation/class/encoded",
    "image/segmentation/class/format",
)


@dataclass
class VerifyReport:
    """Records checked per split and every discrepancy found (empty when all is well)."""

    records: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def check_shard(path: Path, expected: list[dict[str, Any]]) -> tuple[int, list[str]]:
    """Compare a shard's records, in order, with their manifest entries; (records read, problems)."""
    problems: list[str] = []
    count = 0
    try:
        for count, payload in enumerate(iter_records(path), start=1):
            if count > len(expected):
                continue
            entry = expected[count - 1]
            where = f"{path}: record {count} ({entry['name']})"
            try:
                example = decode_example(payload)
            except ValueError as exc:
                problems.append(f"{where}: not a tf.train.Example ({exc})")
                continue
            if tuple(example) != EXAMPLE_KEYS:
                problems.append(f"{where}: feature keys {list(example)} differ from the SPEC's")
                continue
            checks = [
                ("image/filename", example["image/filename"][0].decode(errors="replace"), entry["name"]),
                ("image/format", example["image/format"][0].decode(errors="replace"), entry["image"]["format"]),
                ("image/height", example["image/height"][0], entry["height"]),
                ("image/width", example["image/width"][0], entry["width"]),
                ("image/channels", example["image/channels"][0], 3),
                ("image/encoded sha256", hashlib.sha256(example["image/encoded"][0]).hexdigest(), entry["image"]["sha256"]),
                ("label sha256", hashlib.sha256(example["image/segmentation/class/encoded"][0]).hexdigest(), entry["label"]["sha256"]),
                ("image/segmentation/class/format", example["image/segmentation/class/format"][0], b"png"),
            ]
            for key, found, wanted in checks:
                if found != wanted:
                    problems.append(f"{where}: {key} is {found!r}, manifest says {wanted!r}")
    except CorruptRecordError as exc:
        problems.append(str(exc))
    except OSError as exc:
        problems.append(f"{path}: cannot read ({exc.strerror})")
    if count != len(expected):
        problems.append(f"{path}: {count} records, manifest says {len(expected)}")
    return count, problems


def _check(job: tuple[Path, list[dict[str, Any]]]) -> tuple[int, list[str]]:
    return check_shard(*job)


def verify_output(out_dir: Path, pool: Any, advance: Any = lambda n: None) -> VerifyReport:
    """Check every split that has a manifest, and flag shards and journals that belong to none."""
    report = VerifyReport()
    manifests = find_manifests(out_dir)
    if not manifests:
        report.problems.append(f"{out_dir}: no *.manifest.json (not a segprep output folder, or no split finished)")
    jobs: list[tuple[str, Path, list[dict[str, Any]]]] = []
    for split, manifest in manifests.items():
        listed = {s["file"] for s in manifest["shards"]}
        by_shard: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(manifest["shards"]))}
        for entry in manifest["samples"]:
            by_shard.setdefault(entry["shard"], []).append(entry)
        for index, shard in enumerate(manifest["shards"]):
            path = out_dir / shard["file"]
            if not path.is_file():
                report.problems.append(f"{path}: shard listed in {split}.manifest.json is missing")
                continue
            jobs.append((split, path, by_shard[index]))
        pattern = shard_pattern(split)
        for path in sorted(out_dir.iterdir()):
            if pattern.fullmatch(path.name) and path.name not in listed:
                report.problems.append(f"{path}: shard not listed in {split}.manifest.json")
        report.records[split] = 0
    for path in sorted(out_dir.glob(".*.journal.jsonl")):
        report.problems.append(f"{path}: a split was left unfinished (re-run the conversion)")
    outcomes = pool.imap(_check, [(p, s) for _, p, s in jobs], len(jobs))
    for (split, path, samples), (count, problems) in zip(jobs, outcomes):
        report.records[split] += count
        report.problems.extend(problems)
        advance(len(samples))
    return report
