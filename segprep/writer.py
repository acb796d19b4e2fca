"""The sharded TFRecord writer of SPEC §2, DeepLab compatible.

Per sample (in worker processes): read the image bytes and check their structure and size from
the header (never decoding pixels), decode the label and validate every pixel against the
dataset's LabelPolicy, build the tf.train.Example and frame it as a TFRecord. The parent writes
records in list order into contiguous shards of ceil(N / n) records, as DeepLab's converters do.

Safety: each shard is written under a hidden temporary name and renamed when complete, then
recorded in a journal; the manifest is written last. A failed split (any bad sample without
--skip-invalid) leaves none of its shards behind; an interrupted run leaves only complete shards,
which a re-run with the same inputs keeps instead of rewriting.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segprep.datasets.base import ListProblem, Sample
from segprep.fileio import append_file
from segprep.formats.example import encode_example
from segprep.formats.images import ImageFormatError, read_image_info
from segprep.formats.tfrecord import frame_record
from segprep.manifest import (
    MANIFEST_FORMAT,
    append_journal,
    journal_path,
    manifest_path,
    read_journal,
    read_manifest,
    shard_name,
    shard_pattern,
    temporary_shard_name,
    write_json_atomic,
)
from segprep.ops.labels import LabelError, LabelPolicy, prepare_label
from segprep.parallel import OrderedPool

DEFAULT_SHARD_BYTES = 128 * 1024 * 1024
CHUNK_SIZE = 16  # samples per unit of work: small enough for smooth progress and balanced cores


@dataclass(frozen=True)
class BadSample:
    """A sample that cannot be written, with the file at fault and a one-line reason."""

    name: str
    path: str
    reason: str

    def line(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class WriterOptions:
    """How a split is written. num_shards=None picks max(min(4, N), ceil(bytes / 128 MiB))."""

    out_dir: Path
    num_shards: int | None = None
    skip_invalid: bool = False


@dataclass
class SplitResult:
    """What happened to one split: 'written', 'up to date' or 'failed'."""

    split: str
    status: str
    records: int = 0
    shards: int = 0
    bad: list[BadSample] = field(default_factory=list)  # refused (failed) or skipped (--skip-invalid)
    resumed_shards: int = 0


def encode_sample(sample: Sample, policy: LabelPolicy) -> tuple[bytes, dict[str, Any]] | list[BadSample]:
    """The framed TFRecord and manifest entry of one sample, or every reason it cannot be written."""
    bad: list[BadSample] = []
    image_bytes = _read(sample.name, sample.image, "image", bad)
    label_bytes = _read(sample.name, sample.label, "label", bad)
    info = prepared = None
    if image_bytes is not None:
        try:
            info = read_image_info(image_bytes)
        except ImageFormatError as exc:
            bad.append(BadSample(sample.name, str(sample.image), str(exc)))
    if label_bytes is not None:
        try:
            prepared = prepare_label(label_bytes, policy)
        except LabelError as exc:
            bad.append(BadSample(sample.name, str(sample.label), str(exc)))
    if info is not None and prepared is not None and (info.width, info.height) != (prepared.width, prepared.height):
        bad.append(
            BadSample(
                sample.name,
                str(sample.label),
                f"label is {prepared.width}x{prepared.height} but image {sample.image.name} is {info.width}x{info.height}",
            )
        )
    if bad or info is None or prepared is None or image_bytes is None or label_bytes is None:
        return bad
    example = encode_example(
        [
            ("image/encoded", image_bytes),
            ("image/filename", sample.name.encode()),
            ("image/format", info.format.encode()),
            ("image/height", info.height),
            ("image/width", info.width),
            ("image/channels", 3),
            ("image/segmentation/class/encoded", prepared.png),
            ("image/segmentation/class/format", b"png"),
        ]
    )
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


def encode_chunk(job: tuple[Path, list[Sample]], policy: LabelPolicy) -> tuple[list[dict[str, Any]], list[BadSample]]:
    """Encode consecutive samples into one file of records (worker side); return their entries and the bad ones."""
    path, samples = job
    entries: list[dict[str, Any]] = []
    bad: list[BadSample] = []
    with open(path, "wb") as handle:
        for sample in samples:
            outcome = encode_sample(sample, policy)
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


def _read(name: str, path: Path, what: str, bad: list[BadSample]) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        bad.append(BadSample(name, str(path), f"missing {what} file"))
    except IsADirectoryError:
        bad.append(BadSample(name, str(path), f"{what} path is a folder"))
    except OSError as exc:
        bad.append(BadSample(name, str(path), f"cannot read {what} ({exc.strerror})"))
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


def write_split(
    split: str,
    samples: list[Sample],
    policy: LabelPolicy,
    options: WriterOptions,
    pool: OrderedPool,
    *,
    dataset: str,
    registry_entry: dict[str, Any],
    list_problems: list[ListProblem] = (),  # type: ignore[assignment]
    advance: Callable[[int], None] = lambda n: None,
) -> SplitResult:
    """Write one split; see the module docstring for the guarantees."""
    out_dir = options.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    stats = [_stat(s.image) + _stat(s.label) for s in samples]
    num_shards = options.num_shards or default_num_shards(samples, stats)
    ranges = shard_ranges(len(samples), num_shards)
    names = [shard_name(split, i, num_shards) for i in range(num_shards)]
    parameters = {
        "dataset": dataset,
        "split": split,
        "num_shards": num_shards,
        "skip_invalid": options.skip_invalid,
        "label_policy": asdict(policy),
        "registry_entry": registry_entry,
    }
    shard_keys = [
        _digest({"parameters": parameters, "shard": i, "samples": [[samples[k].name, str(samples[k].image), str(samples[k].label), stats[k]] for k in r]})
        for i, r in enumerate(ranges)
    ]
    problems = [BadSample("", p.where, p.reason) for p in list_problems]
    split_key = _digest({"shards": shard_keys, "problems": [asdict(p) for p in problems]})

    manifest_file = manifest_path(out_dir, split)
    previous = read_manifest(manifest_file)
    if previous is not None and previous.get("fingerprint") == split_key and _shards_intact(out_dir, previous):
        advance(len(samples))
        skipped = [BadSample(**b) for b in previous.get("skipped", [])]
        return SplitResult(split, "up to date", previous["num_records"], num_shards, skipped)
    manifest_file.unlink(missing_ok=True)

    journal_file = journal_path(out_dir, split)
    done = {
        i: entry
        for i, entry in read_journal(journal_file).items()
        if i < num_shards and entry.get("key") == shard_keys[i] and _file_size(out_dir / names[i]) == entry.get("bytes")
    }
    journal_file.unlink(missing_ok=True)
    for i in sorted(done):
        append_journal(journal_file, done[i])
    advance(sum(len(ranges[i]) for i in done))

    failed = bool(problems) and not options.skip_invalid
    bad: list[BadSample] = list(problems)
    todo = [i for i in range(num_shards) if i not in done]
    # Work is cut into chunks of consecutive samples inside a shard. A worker writes its chunk's
    # records to a hidden file and returns only the manifest entries, so record bytes never cross
    # a pipe; the parent splices chunk files into the shard in order (in the kernel), so the
    # output is the same whatever the number of workers.
    jobs = [
        (i, out_dir / f".tmp-{split}-chunk-{os.getpid()}-{i:05d}-{start:07d}", [samples[k] for k in ranges[i][start : start + CHUNK_SIZE]])
        for i in todo
        for start in range(0, len(ranges[i]), CHUNK_SIZE)
    ]
    remaining = {i: len(ranges[i]) for i in todo}
    entries: dict[int, list[dict[str, Any]]] = {i: [] for i in todo}
    shard_bad: dict[int, list[BadSample]] = {i: [] for i in todo}
    handle = None

    def finish(i: int) -> None:
        nonlocal handle
        tmp = out_dir / temporary_shard_name(split, i, num_shards)
        if handle is None:
            open(tmp, "wb").close()  # a shard with no valid sample is an empty file, as in DeepLab
        else:
            handle.close()
            handle = None
        os.replace(tmp, out_dir / names[i])
        append_journal(
            journal_file,
            {
                "shard": i,
                "key": shard_keys[i],
                "bytes": _file_size(out_dir / names[i]),
                "samples": entries[i],
                "skipped": [asdict(b) for b in shard_bad[i]],
            },
        )

    encode = functools.partial(encode_chunk, policy=policy)
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
                if not options.skip_invalid and not failed:
                    failed = True
                    if handle is not None:
                        handle.close()
                        handle = None
            if not failed:
                if handle is None:
                    handle = open(out_dir / temporary_shard_name(split, i, num_shards), "wb")
                append_file(handle, path)
                for entry in chunk_entries:
                    entry["shard"] = i
                entries[i].extend(chunk_entries)
            path.unlink(missing_ok=True)
            if not remaining[i] and not failed:
                finish(i)
    finally:
        if handle is not None:
            handle.close()
        _remove_temporaries(out_dir, split)

    if failed:
        remove_split(out_dir, split)
        return SplitResult(split, "failed", 0, num_shards, bad)

    journal = read_journal(journal_file)
    shards = [
        {"file": names[i], "records": len(journal[i]["samples"]), "bytes": journal[i]["bytes"]} for i in range(num_shards)
    ]
    written = [entry for i in range(num_shards) for entry in journal[i]["samples"]]
    skipped = [asdict(p) for p in problems] + [b for i in range(num_shards) for b in journal[i]["skipped"]]
    write_json_atomic(
        manifest_file,
        {
            "format": MANIFEST_FORMAT,
            "dataset": dataset,
            "split": split,
            "num_records": len(written),
            "num_shards": num_shards,
            "fingerprint": split_key,
            "parameters": parameters,
            "shards": shards,
            "skipped": skipped,
            "samples": written,
        },
    )
    journal_file.unlink(missing_ok=True)
    pattern = shard_pattern(split)
    for path in out_dir.iterdir():
        if pattern.fullmatch(path.name) and path.name not in names:
            path.unlink()  # shards of an earlier run with another shard count
    return SplitResult(split, "written", len(written), num_shards, [BadSample(**b) for b in skipped], len(done))


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def _shards_intact(out_dir: Path, manifest: dict[str, Any]) -> bool:
    return all(_file_size(out_dir / s["file"]) == s["bytes"] for s in manifest.get("shards", []))


def remove_split(out_dir: Path, split: str) -> None:
    """Delete every shard, temporary file, journal and manifest of a split."""
    pattern = shard_pattern(split)
    for path in list(out_dir.iterdir()):
        if pattern.fullmatch(path.name):
            path.unlink(missing_ok=True)
    _remove_temporaries(out_dir, split)
    manifest_path(out_dir, split).unlink(missing_ok=True)
    journal_path(out_dir, split).unlink(missing_ok=True)
