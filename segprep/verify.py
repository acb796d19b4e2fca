"""Re-read every shard of a segprep output folder and check it against the split manifests.

verify trusts nothing it finds: every manifest is parsed strictly (a missing, truncated or
hand-edited one is a failure, never a reason to skip its split), every shard is re-read with
both CRCs checked and every record compared with its manifest entry, and every file a reader
could mistake for data (a shard no manifest lists, a temporary or journal of an interrupted
run) is reported. Each problem is one line that names the file.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segprep.errors import describe_os_error
from segprep.formats.example import ExampleDecodeError, decode_example
from segprep.formats.tfrecord import CorruptRecordError, iter_records
from segprep.manifest import MANIFEST_SUFFIX, ManifestError, load_manifest, staged_shard_name
from segprep import schema

# The leftovers of interrupted runs.
_JOURNAL = re.compile(r"\.(?P<split>.+)\.journal\.jsonl")
_STAGED_PREFIX = staged_shard_name("")
# segprep.outlock's lock file: present (and locked) only while a run writes into the folder.
_LOCK_NAME = ".segprep.lock"


@dataclass
class VerifyReport:
    """Records checked per split and every discrepancy found (empty when all is well)."""

    records: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@dataclass
class VerifyPlan:
    """What verify found before reading any shard: the shards to check and the problems already known."""

    jobs: list[tuple[str, Path, list[dict[str, Any]]]] = field(default_factory=list)
    records: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Records the manifests promise: the progress bar's length."""
        return sum(len(samples) for _, _, samples in self.jobs)


def check_shard(path: Path, expected: list[dict[str, Any]]) -> tuple[int, list[str]]:
    """Compare a shard's records, in order, with their manifest entries; (records read, problems)."""
    problems: list[str] = []
    count = 0
    try:
        for count, payload in enumerate(iter_records(path), start=1):
            if count <= len(expected):
                problems += _check_record(payload, expected[count - 1], f"{path}: record {count}")
    except CorruptRecordError as exc:
        problems.append(str(exc))
    except OSError as exc:
        problems.append(describe_os_error(exc))
        return count, problems
    if count != len(expected):
        problems.append(f"{path}: {count} records, manifest says {len(expected)}")
    return count, problems


def _check_record(payload: bytes, entry: dict[str, Any], where: str) -> list[str]:
    """Every difference between one record and its manifest entry (entry already checked by load_manifest)."""
    where = f"{where} ({entry['name']})"
    try:
        example = decode_example(payload)
    except ExampleDecodeError as exc:
        return [f"{where}: not a tf.train.Example ({exc})"]
    if tuple(example) != schema.FEATURE_KEYS:
        return [f"{where}: feature keys {_short(list(example), 200)} differ from the SPEC's"]
    values: dict[str, Any] = {}
    for key in schema.FEATURE_KEYS:
        found = example[key]
        kind = int if key in schema.INT_KEYS else bytes
        if len(found) != 1 or not isinstance(found[0], kind):
            return [f"{where}: {key} holds {_short(found)}, not one {'int64' if kind is int else 'bytes'} value"]
        values[key] = found[0]
    # What the record should hold, rebuilt from the manifest entry; the payloads are compared by hash.
    image_sha, label_sha = entry["image"]["sha256"], entry["label"]["sha256"]
    wanted = dict(schema.example_features(entry["name"], b"", entry["image"]["format"], entry["height"], entry["width"], b""))
    hashes = {schema.IMAGE: image_sha, schema.LABEL: label_sha}
    checks = [
        (f"{key} sha256", hashlib.sha256(values[key]).hexdigest(), hashes[key]) if key in hashes else (key, values[key], wanted[key])
        for key in schema.FEATURE_KEYS
    ]
    return [f"{where}: {key} is {_short(found)}, manifest says {_short(wanted)}" for key, found, wanted in checks if found != wanted]


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check(job: tuple[Path, list[dict[str, Any]]]) -> tuple[int, list[str]]:
    return check_shard(*job)


def plan_verify(out_dir: Path) -> VerifyPlan:
    """Load every manifest strictly, check the listed shards exist, and flag every file no manifest explains."""
    plan = VerifyPlan()
    names = sorted(os.listdir(out_dir))
    manifest_names = [n for n in names if n.endswith(MANIFEST_SUFFIX) and not n.startswith(".")]
    if not manifest_names:
        plan.problems.append(f"{out_dir}: no *{MANIFEST_SUFFIX} (not a segprep output folder, or no split finished)")
    manifests: dict[str, dict[str, Any]] = {}
    broken: set[str] = set()
    for name in manifest_names:
        try:
            manifests[name[: -len(MANIFEST_SUFFIX)]] = load_manifest(out_dir / name)
        except ManifestError as exc:
            plan.problems.append(str(exc))
            broken.add(name[: -len(MANIFEST_SUFFIX)])
    listed: set[str] = set()
    for split, manifest in manifests.items():
        listed.update(s["file"] for s in manifest["shards"])
        _plan_split(out_dir, split, manifest, plan)
    for name in names:
        if name not in listed and name not in manifest_names:
            problem = _unexplained(out_dir, name, manifests, broken)
            if problem:
                plan.problems.append(problem)
    return plan


def _plan_split(out_dir: Path, split: str, manifest: dict[str, Any], plan: VerifyPlan) -> None:
    """Queue each listed shard that exists as a regular file of the listed size; report the others."""
    plan.records[split] = 0
    by_shard: list[list[dict[str, Any]]] = [[] for _ in manifest["shards"]]
    for entry in manifest["samples"]:
        by_shard[entry["shard"]].append(entry)
    for index, shard in enumerate(manifest["shards"]):
        path = out_dir / shard["file"]
        try:
            info = os.stat(path)
        except FileNotFoundError:
            plan.problems.append(f"{path}: shard listed in {split}{MANIFEST_SUFFIX} is missing")
            continue
        except OSError as exc:
            plan.problems.append(describe_os_error(exc))
            continue
        if not stat.S_ISREG(info.st_mode):
            plan.problems.append(f"{path}: shard listed in {split}{MANIFEST_SUFFIX} is not a regular file")
            continue
        if info.st_size != shard["bytes"]:
            plan.problems.append(f"{path}: {info.st_size} bytes, {split}{MANIFEST_SUFFIX} says {shard['bytes']}")
        plan.jobs.append((split, path, by_shard[index]))


def _unexplained(out_dir: Path, name: str, manifests: dict[str, Any], broken: set[str]) -> str | None:
    """The problem with a folder entry that no manifest lists, or None when it is harmless."""
    path = out_dir / name
    journal = _JOURNAL.fullmatch(name)
    if journal:
        return f"{path}: journal of an unfinished run of split {journal['split']} (re-run the conversion)"
    if name == _LOCK_NAME:
        return f"{path}: a segprep run is writing into this folder now" if _locked(path) else None
    if name.startswith(".tmp") or (name.startswith(".") and name.endswith(".tmp")):
        return f"{path}: temporary file of an interrupted run (re-run the conversion, which removes it)"
    if name.startswith(_STAGED_PREFIX):
        return f"{path}: staged shard of an unfinished run (re-run the conversion to finish the split)"
    shard = schema.ANY_SHARD.fullmatch(name)
    if shard and shard["split"] in broken:
        return None  # its manifest is already reported as unusable
    if shard and shard["split"] in manifests:
        return f"{path}: shard not listed in {shard['split']}{MANIFEST_SUFFIX}"
    if shard:
        return f"{path}: shard of split {shard['split']}, which has no {shard['split']}{MANIFEST_SUFFIX}"
    for split in manifests:
        if name.startswith(f"{split}-"):
            # DeepLab and segtrain read `{split}-*`: this file would be read as part of the split.
            return f"{path}: not listed in {split}{MANIFEST_SUFFIX}, yet readers of {split}-* would take it for a shard"
    if name.endswith(schema.SHARD_SUFFIX):
        return f"{path}: TFRecord file listed in no manifest"
    return None


def _locked(path: Path) -> bool:
    """Whether another process holds the output lock (checked without creating or changing anything)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
    finally:
        os.close(fd)  # closing releases our shared lock, if we got it
    return False


def run_plan(plan: VerifyPlan, pool: Any, advance: Any = lambda n: None) -> VerifyReport:
    """Re-read the planned shards (in the pool's workers) and collect every problem."""
    report = VerifyReport(dict(plan.records), list(plan.problems))
    outcomes = pool.imap(_check, [(p, s) for _, p, s in plan.jobs], len(plan.jobs))
    for (split, _, samples), (count, problems) in zip(plan.jobs, outcomes):
        report.records[split] += count
        report.problems.extend(problems)
        advance(len(samples))
    return report


def verify_output(out_dir: Path, pool: Any, advance: Any = lambda n: None) -> VerifyReport:
    """Check every split that has a manifest, and flag whatever in the folder no manifest explains."""
    return run_plan(plan_verify(out_dir), pool, advance)
