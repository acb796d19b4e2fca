"""The sharded TFRecord writer of docs/tfrecord.md, DeepLab compatible.

Per sample (in worker processes): read the image bytes, check their structure and size from
the header and their payload (JPEG scans Huffman-decoded; see segprep.formats.payload), decode
the label and validate every pixel against the dataset's LabelPolicy, build the
tf.train.Example and frame it as a TFRecord. The parent writes records in list order into
contiguous shards of ceil(N / n) records, as DeepLab's converters do.

Safety: the caller holds the output folder's lock (segprep.outlock). Each shard is written under
a temporary name, then kept as a hidden staged file and recorded in a journal; only when every
shard of the split is complete are they renamed to their final names, and the manifest is
written last. A failed split (any bad sample without --skip-invalid) leaves the split's earlier
output as it was; an interrupted run leaves no new file that looks finished, and a re-run with
the same inputs resumes from the staged shards. Shard-named files that no manifest or journal of
segprep accounts for are never replaced or deleted (see foreign_shards).
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segprep.datasets.base import Sample
from segprep.fileio import append_file, read_regular_file
from segprep.errors import os_errors_name
from segprep.formats.example import encode_example
from segprep.formats.images import ImageFormatError, read_image_info
from segprep.formats.payload import PayloadChecks, check_image_payload
from segprep.formats.tfrecord import frame_record
from segprep.manifest import (
    MANIFEST_FORMAT,
    append_journal,
    journal_path,
    manifest_path,
    read_journal,
    read_manifest,
    staged_shard_name,
    temporary_shard_name,
    write_json_atomic,
)
from segprep.ops.labels import LabelError, LabelPolicy, prepare_label
from segprep.parallel import OrderedPool
from segprep.problems import Problem
from segprep.schema import example_features, shard_name, shard_pattern

DEFAULT_SHARD_BYTES = 128 * 1024 * 1024
CHUNK_SIZE = 16  # samples per unit of work: small enough for smooth progress and balanced cores


@dataclass(frozen=True)
class WriterOptions:
    """How a split is written. num_shards=None picks max(min(4, N), ceil(bytes / 128 MiB))."""

    out_dir: Path
    num_shards: int | None = None
    skip_invalid: bool = False
    decode_images: bool = False  # --decode-images: fully decode every image (see segprep.formats.payload)
    prune: bool = False  # --prune: remove the splits of earlier runs that this run does not write

    @property
    def payload_checks(self) -> PayloadChecks:
        return PayloadChecks(decode_images=self.decode_images)


@dataclass
class SplitResult:
    """What happened to one split: 'written', 'up to date' or 'failed'."""

    split: str
    status: str
    records: int = 0
    shards: int = 0
    bad: list[Problem] = field(default_factory=list)  # refused (failed) or skipped (--skip-invalid)
    resumed_shards: int = 0


def encode_sample(
    sample: Sample, policy: LabelPolicy, checks: PayloadChecks = PayloadChecks()
) -> tuple[bytes, dict[str, Any]] | list[Problem]:
    """The framed TFRecord and manifest entry of one sample, or every reason it cannot be written.

    The image must pass `checks` (by default its structure plus a Huffman decode of JPEG scans),
    the label every check of prepare_label; what fails is reported, never stored.
    """
    bad: list[Problem] = []
    image_bytes = _read(sample.name, sample.image, "image", bad)
    label_bytes = _read(sample.name, sample.label, "label", bad)
    info = prepared = None
    if image_bytes is not None:
        try:
            info = read_image_info(image_bytes)
            check_image_payload(image_bytes, info, checks)
        except ImageFormatError as exc:
            info = None
            bad.append(Problem(str(sample.image), str(exc), name=sample.name))
    if label_bytes is not None:
        try:
            prepared = prepare_label(label_bytes, policy)
        except LabelError as exc:
            bad.append(Problem(str(sample.label), str(exc), name=sample.name))
    if info is not None and prepared is not None and (info.width, info.height) != (prepared.width, prepared.height):
        bad.append(
            Problem(str(sample.label), f"label is {prepared.width}x{prepared.height} but image {sample.image.name} is {info.width}x{info.height}", name=sample.name)
        )
    if bad or info is None or prepared is None or image_bytes is None or label_bytes is None:
        return bad
    example = encode_example(example_features(sample.name, image_bytes, info.format, info.height, info.width, prepared.png))
    present = np.flatnonzero(prepared.histogram)
    histogram = dict(zip(map(str, present.tolist()), prepared.histogram[present].tolist()))
    label_entry: dict[str, Any] = {"path": str(sample.label), "sha256": hashlib.sha256(prepared.png).hexdigest()}
    if prepared.conversion:
        label_entry["conversion"] = prepared.conversion
        label_entry["source_sha256"] = hashlib.sha256(label_bytes).hexdigest()
    entry = {
        "name": sample.name,
        "image": {"path": str(sample.image), "format": info.format, "sha256": hashlib.sha256(image_bytes).hexdigest()},
        "label": label_entry,
        "height": info.height,
        "width": info.width,
        "histogram": histogram,
    }
    return frame_record(example), entry


def encode_chunk(
    job: tuple[Path, list[Sample]], policy: LabelPolicy, checks: PayloadChecks = PayloadChecks()
) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Encode consecutive samples into one file of records (worker side); return their entries and the bad ones."""
    path, samples = job
    entries: list[dict[str, Any]] = []
    bad: list[Problem] = []
    with open(path, "wb") as handle:
        for sample in samples:
            outcome = encode_sample(sample, policy, checks)
            if isinstance(outcome, list):
                bad.extend(outcome)
            else:
                record, entry = outcome
                handle.write(record)
                entries.append(entry)
    return entries, bad


def _remove_temporaries(out_dir: Path, split: str) -> None:
    for tmp in out_dir.glob(f".tmp-{split}-*"):
        tmp.unlink(missing_ok=True)


def _read(name: str, path: Path, what: str, bad: list[Problem]) -> bytes | None:
    try:
        return read_regular_file(path)  # a FIFO named like an image must not hang the run
    except FileNotFoundError:
        bad.append(Problem(str(path), f"missing {what} file", name=name))
    except IsADirectoryError:
        bad.append(Problem(str(path), f"{what} path is a folder", name=name))
    except OSError as exc:
        if exc.errno == errno.EINVAL and exc.strerror and exc.strerror.startswith("not a regular file"):
            bad.append(Problem(str(path), f"{what} path is {exc.strerror}", name=name))
            return None
        bad.append(Problem(str(path), f"cannot read {what} ({exc.strerror})", name=name))
    return None


def shard_ranges(count: int, num_shards: int) -> list[range]:
    """Contiguous chunks of ceil(N / n) samples, as DeepLab's build_*_data.py (trailing shards may be empty)."""
    per_shard = math.ceil(count / num_shards) if count else 0
    return [range(min(i * per_shard, count), min((i + 1) * per_shard, count)) for i in range(num_shards)]


def _stat(path: Path) -> list[int]:
    try:
        st = path.stat()
        return [st.st_size, st.st_mtime_ns]
    except OSError:
        return [-1, -1]


def default_num_shards(samples: list[Sample], file_stats: list[list[int]]) -> int:
    total = sum(max(0, s[0]) for s in file_stats)
    count = len(samples)
    return max(1, min(4, count), math.ceil(total / DEFAULT_SHARD_BYTES))


def _digest(document: Any) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


@dataclass
class SplitPlan:
    """What a split will be once written: its shards, their samples and the fingerprints that make resume safe."""

    split: str
    samples: list[Sample]
    out_dir: Path
    names: list[str]  # final shard file names
    ranges: list[range]  # the samples of each shard
    shard_keys: list[str]  # fingerprint of each shard's inputs and parameters
    fingerprint: str  # of the whole split, kept in the manifest
    parameters: dict[str, Any]
    problems: list[Problem]  # list problems found before any file was read
    checks: PayloadChecks  # what every image must pass (recorded in parameters too)

    @property
    def num_shards(self) -> int:
        return len(self.names)

    def staged(self, index: int) -> Path:
        return self.out_dir / staged_shard_name(self.names[index])

    @property
    def journal(self) -> Path:
        return journal_path(self.out_dir, self.split)

    @property
    def manifest(self) -> Path:
        return manifest_path(self.out_dir, self.split)


def plan_split(
    split: str,
    samples: list[Sample],
    policy: LabelPolicy,
    options: WriterOptions,
    *,
    dataset: str,
    registry_entry: dict[str, Any],
    list_problems: list[Problem] = (),  # type: ignore[assignment]
    class_mapping: dict[str, Any] | None = None,
) -> SplitPlan:
    """Shard layout and fingerprints of a split, from file sizes and mtimes only (no file is read)."""
    stats = [_stat(s.image) + _stat(s.label) for s in samples]
    num_shards = options.num_shards or default_num_shards(samples, stats)
    ranges = shard_ranges(len(samples), num_shards)
    parameters = {
        "dataset": dataset,
        "split": split,
        "num_shards": num_shards,
        "skip_invalid": options.skip_invalid,
        "label_policy": policy.manifest_entry(),
        "registry_entry": registry_entry,
        "checks": options.payload_checks.manifest_entry(),  # a re-run with other checks rewrites
    }
    if class_mapping is not None:  # only where set: the fingerprints of unmapped datasets stay what they were
        parameters["class_mapping"] = class_mapping
    shard_keys = [
        _digest({"parameters": parameters, "shard": i, "samples": [[samples[k].name, str(samples[k].image), str(samples[k].label), stats[k]] for k in r]})
        for i, r in enumerate(ranges)
    ]
    problems = list(list_problems)
    return SplitPlan(
        split=split,
        samples=samples,
        out_dir=options.out_dir,
        names=[shard_name(split, i, num_shards) for i in range(num_shards)],
        ranges=ranges,
        shard_keys=shard_keys,
        fingerprint=_digest({"shards": shard_keys, "problems": [p.manifest_entry() for p in problems]}),
        parameters=parameters,
        problems=problems,
        checks=options.payload_checks,
    )


def owned_shard_files(out_dir: Path, split: str) -> set[str]:
    """Shard file names of a split that segprep wrote here: listed in its manifest or its journal."""
    owned: set[str] = set()
    manifest = read_manifest(manifest_path(out_dir, split))
    if manifest is not None:
        owned.update(str(s.get("file")) for s in manifest.get("shards", []) if isinstance(s, dict))
    owned.update(str(e.get("file")) for e in read_journal(journal_path(out_dir, split)).values())
    return owned


def foreign_shards(out_dir: Path, split: str) -> list[Path]:
    """Files in out_dir named like this split's shards that no segprep manifest or journal accounts for.

    They may be a user's own records (from DeepLab's converters, say): the writer refuses to run
    rather than replace or delete them.
    """
    if not out_dir.is_dir():
        return []
    pattern = shard_pattern(split)
    owned = owned_shard_files(out_dir, split)
    return sorted(p for p in out_dir.iterdir() if pattern.fullmatch(p.name) and p.name not in owned)


def remove_stale_temporaries(out_dir: Path) -> None:
    """Remove what killed runs left: chunk and shard temporaries, half-written manifests.

    Only call this while holding the output lock (segprep.outlock): then no live run owns them.
    """
    leftovers = (".tmp-*", ".*.manifest.json.*.tmp", ".*.beam.tmp", ".*.beam-result.json")  # the last two: --runner beam
    for path in [p for pattern in leftovers for p in out_dir.glob(pattern)]:
        path.unlink(missing_ok=True)


def write_split(
    split: str,
    samples: list[Sample],
    policy: LabelPolicy,
    options: WriterOptions,
    pool: OrderedPool,
    *,
    dataset: str,
    registry_entry: dict[str, Any],
    list_problems: list[Problem] = (),  # type: ignore[assignment]
    advance: Callable[[int], None] = lambda n: None,
    class_mapping: dict[str, Any] | None = None,
) -> SplitResult:
    """Write one split in three phases: plan, assemble (hidden, journalled, resumable), finalize.

    The split's earlier output stays untouched until every new shard is complete: a failed run
    keeps it, and only finalize replaces it (renames, then the manifest last).
    """
    options.out_dir.mkdir(parents=True, exist_ok=True)
    plan = plan_split(split, samples, policy, options, dataset=dataset, registry_entry=registry_entry, list_problems=list_problems, class_mapping=class_mapping)
    current = up_to_date(plan)
    if current is not None:
        advance(len(samples))
        return current
    owned = owned_shard_files(plan.out_dir, split)
    with os_errors_name(plan.out_dir):
        done = _resume(plan)
        advance(sum(len(plan.ranges[i]) for i in done))
        failed, bad = _assemble(plan, done, policy, options.skip_invalid, pool, advance)
        if failed:
            _discard(plan)
            return SplitResult(split, "failed", 0, plan.num_shards, bad)
        return _finalize(plan, owned, len(done))


def up_to_date(plan: SplitPlan) -> SplitResult | None:
    """The split's result when its manifest already records this exact plan and its shards are intact."""
    previous = read_manifest(plan.manifest)
    if previous is None or previous.get("fingerprint") != plan.fingerprint or not _shards_intact(plan.out_dir, previous):
        return None
    skipped = [Problem.from_manifest(b) for b in previous.get("skipped", [])]
    return SplitResult(plan.split, "up to date", previous["num_records"], plan.num_shards, skipped)


def shard_outcome(plan: SplitPlan, index: int, size: int, entries: list[dict[str, Any]], bad: list[Problem]) -> dict[str, Any]:
    """What is known of one finished shard (a journal line; the Beam runner makes the same)."""
    for entry in entries:
        entry["shard"] = index
    return {
        "shard": index,
        "file": plan.names[index],
        "key": plan.shard_keys[index],
        "bytes": size,
        "samples": entries,
        "skipped": [b.manifest_entry() for b in bad],
    }


def manifest_document(plan: SplitPlan, outcomes: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The split's manifest from the outcomes of all its shards (whichever runner wrote them)."""
    shards = [{"file": plan.names[i], "records": len(outcomes[i]["samples"]), "bytes": outcomes[i]["bytes"]} for i in range(plan.num_shards)]
    written = [entry for i in range(plan.num_shards) for entry in outcomes[i]["samples"]]
    skipped = [p.manifest_entry() for p in plan.problems] + [b for i in range(plan.num_shards) for b in outcomes[i]["skipped"]]
    return {
        "format": MANIFEST_FORMAT,
        "dataset": plan.parameters["dataset"],
        "split": plan.split,
        "num_records": len(written),
        "num_shards": plan.num_shards,
        "fingerprint": plan.fingerprint,
        "parameters": plan.parameters,
        "shards": shards,
        "skipped": skipped,
        "samples": written,
    }


def written_result(document: dict[str, Any], resumed: int = 0) -> SplitResult:
    return SplitResult(document["split"], "written", document["num_records"], document["num_shards"], [Problem.from_manifest(b) for b in document["skipped"]], resumed)


def _resume(plan: SplitPlan) -> set[int]:
    """Shards a killed run finished with the same inputs; the journal and staging are cut back to them."""
    done = {
        i: entry
        for i, entry in read_journal(plan.journal).items()
        if i < plan.num_shards and entry.get("key") == plan.shard_keys[i] and _file_size(plan.staged(i)) == entry.get("bytes")
    }
    plan.journal.unlink(missing_ok=True)
    for i in sorted(done):
        append_journal(plan.journal, done[i])
    pattern = re.compile(re.escape(staged_shard_name("")) + shard_pattern(plan.split).pattern)
    keep = {plan.staged(i).name for i in done}
    for path in plan.out_dir.iterdir():
        if pattern.fullmatch(path.name) and path.name not in keep:
            path.unlink(missing_ok=True)
    return set(done)


def _assemble(
    plan: SplitPlan,
    done: set[int],
    policy: LabelPolicy,
    skip_invalid: bool,
    pool: OrderedPool,
    advance: Callable[[int], None],
) -> tuple[bool, list[Problem]]:
    """Encode the shards not yet done into hidden staged files, journalling each; (failed, bad samples)."""
    out_dir, split = plan.out_dir, plan.split
    failed = bool(plan.problems) and not skip_invalid
    bad: list[Problem] = list(plan.problems)
    todo = [i for i in range(plan.num_shards) if i not in done]
    # Work is cut into chunks of consecutive samples inside a shard. A worker writes its chunk's
    # records to a hidden file and returns only the manifest entries, so record bytes never cross
    # a pipe; the parent splices chunk files into the shard in order (in the kernel), so the
    # output is the same whatever the number of workers.
    jobs = [
        (i, out_dir / f".tmp-{split}-chunk-{os.getpid()}-{i:05d}-{start:07d}", [plan.samples[k] for k in plan.ranges[i][start : start + CHUNK_SIZE]])
        for i in todo
        for start in range(0, len(plan.ranges[i]), CHUNK_SIZE)
    ]
    remaining = {i: len(plan.ranges[i]) for i in todo}
    entries: dict[int, list[dict[str, Any]]] = {i: [] for i in todo}
    shard_bad: dict[int, list[Problem]] = {i: [] for i in todo}
    handle = None

    def temporary(i: int) -> Path:
        return out_dir / temporary_shard_name(split, i, plan.num_shards)

    def finish(i: int) -> None:
        nonlocal handle
        if handle is None:
            open(temporary(i), "wb").close()  # a shard with no valid sample is an empty file, as in DeepLab
        else:
            handle.close()
            handle = None
        os.replace(temporary(i), plan.staged(i))
        append_journal(plan.journal, shard_outcome(plan, i, _file_size(plan.staged(i)), entries[i], shard_bad[i]))

    encode = functools.partial(encode_chunk, policy=policy, checks=plan.checks)
    try:
        _remove_temporaries(out_dir, split)
        for i in todo:
            if not remaining[i] and not failed:
                finish(i)
        outcomes = pool.imap(encode, [(path, chunk) for _, path, chunk in jobs], len(jobs), chunksize=1)
        for (i, path, chunk), (chunk_entries, chunk_bad) in zip(jobs, outcomes):
            advance(len(chunk))
            remaining[i] -= len(chunk)
            if chunk_bad:
                bad.extend(chunk_bad)
                shard_bad[i].extend(chunk_bad)
                if not skip_invalid and not failed:
                    failed = True
                    if handle is not None:
                        handle.close()
                        handle = None
            if not failed:
                if handle is None:
                    handle = open(temporary(i), "wb")
                append_file(handle, path)
                entries[i].extend(chunk_entries)
            path.unlink(missing_ok=True)
            if not remaining[i] and not failed:
                finish(i)
    except OSError:
        # Disk full, permission lost, ...: leave nothing behind. (An interrupt keeps the staged
        # shards and the journal, so that the next run resumes.)
        if handle is not None:
            handle.close()
            handle = None
        _discard(plan)
        raise
    finally:
        if handle is not None:
            handle.close()
        _remove_temporaries(out_dir, split)
    return failed, bad


def _finalize(plan: SplitPlan, owned: set[str], resumed: int) -> SplitResult:
    """Publish the staged shards under their final names, drop the split's old shards, then write the manifest."""
    document = manifest_document(plan, read_journal(plan.journal))
    # From here until the new manifest exists the split is not finished: the old manifest goes first.
    plan.manifest.unlink(missing_ok=True)
    for i in range(plan.num_shards):
        os.replace(plan.staged(i), plan.out_dir / plan.names[i])
    for name in owned - set(plan.names):
        (plan.out_dir / name).unlink(missing_ok=True)  # this split's shards of an earlier run with another shard count
    write_json_atomic(plan.manifest, document)
    plan.journal.unlink(missing_ok=True)
    return written_result(document, resumed)


def _discard(plan: SplitPlan) -> None:
    """Remove this run's staged shards, journal and temporaries; the split's earlier output is kept."""
    for i in range(plan.num_shards):
        plan.staged(i).unlink(missing_ok=True)
    plan.journal.unlink(missing_ok=True)
    _remove_temporaries(plan.out_dir, plan.split)


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def _shards_intact(out_dir: Path, manifest: dict[str, Any]) -> bool:
    return all(_file_size(out_dir / s["file"]) == s["bytes"] for s in manifest.get("shards", []))
