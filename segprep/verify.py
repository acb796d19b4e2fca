"""Re-read every shard of a segprep output folder and check it against the split manifests.

verify trusts nothing it finds: every manifest is parsed strictly (a missing, truncated or
hand-edited one is a failure, never a reason to skip its split), every shard is re-read with
both CRCs checked and every record compared with its manifest entry, and every file a reader
could mistake for data (a shard no manifest lists, a temporary or journal of an interrupted
run) is reported. Each problem is one line that names the file.

Beyond the sha256 of the payloads (which a manifest rewritten to match would satisfy), every
record's content is checked against the contract itself: the label is decoded and must be an
8-bit single-channel PNG of the record's size whose every value is a class or the ignore label
of the manifest's registry entry, with the manifest's histogram; the image's header must give the
record's size and format (with decode_images, the image is decoded in full as well). The
manifest's registry entry must agree with the registry's entry for the dataset, when the
registry has one, since that is what `segtrain fit` trains with.
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

import numpy as np

from segprep.errors import describe_os_error
from segprep.formats.example import ExampleDecodeError, decode_example
from segprep.formats.images import ImageFormatError, read_image_info
from segprep.formats.payload import PayloadChecks, check_image_payload
from segprep.formats.tfrecord import CorruptRecordError, iter_records
from segprep.manifest import MANIFEST_SUFFIX, ManifestError, load_manifest, staged_shard_name
from segprep.ops.labels import LabelError, LabelPolicy, decode_label, format_values, out_of_range_values
from segprep import schema

# The leftovers of interrupted runs.
_JOURNAL = re.compile(r"\.(?P<split>.+)\.journal\.jsonl")
_STAGED_PREFIX = staged_shard_name("")
# segprep.outlock's lock file: present (and locked) only while a run writes into the folder.
_LOCK_NAME = ".segprep.lock"


@dataclass(frozen=True)
class ContentChecks:
    """What verify proves about each record's payloads beyond their sha256 (sent to the workers).

    num_classes, ignore_label: the split's, from its manifest's registry entry.
    decode_labels: decode every label and read every image header (False: sha256 only, for benchmarks).
    decode_images: also decode every image in full (--decode-images).
    """

    num_classes: int
    ignore_label: int
    decode_labels: bool = True
    decode_images: bool = False


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
    classes: dict[str, tuple[int, int]] = field(default_factory=dict)  # split -> (num_classes, ignore_label)
    problems: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Records the manifests promise: the progress bar's length."""
        return sum(len(samples) for _, _, samples in self.jobs)


def check_shard(path: Path, expected: list[dict[str, Any]], content: ContentChecks | None = None) -> tuple[int, list[str]]:
    """Compare a shard's records, in order, with their manifest entries; (records read, problems).

    content: the payload checks to run on each record as well (None: the manifest comparison only).
    """
    problems: list[str] = []
    count = 0
    try:
        for count, payload in enumerate(iter_records(path), start=1):
            if count <= len(expected):
                problems += _check_record(payload, expected[count - 1], f"{path}: record {count}", content)
    except CorruptRecordError as exc:
        problems.append(str(exc))
    except OSError as exc:
        problems.append(describe_os_error(exc))
        return count, problems
    if count != len(expected):
        problems.append(f"{path}: {count} records, manifest says {len(expected)}")
    return count, problems


def _check_record(payload: bytes, entry: dict[str, Any], where: str, content: ContentChecks | None = None) -> list[str]:
    """Every difference between one record and its manifest entry (entry already checked by load_manifest)."""
    where = f"{where} ({entry['name']})"
    try:
        example = decode_example(payload)
    except ExampleDecodeError as exc:
        return [f"{where}: not a tf.train.Example ({exc})"]
    if tuple(example) != schema.FEATURE_KEYS:
        return [f"{where}: feature keys {_short(list(example), 200)} differ from docs/tfrecord.md's"]
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
    problems = [f"{where}: {key} is {_short(found)}, manifest says {_short(wanted)}" for key, found, wanted in checks if found != wanted]
    if content is None:
        return problems
    size = (values[schema.WIDTH], values[schema.HEIGHT])
    try:
        if content.decode_labels:
            problems += [f"{where}: {p}" for p in _check_label(values[schema.LABEL], size, entry, content)]
        if content.decode_labels or content.decode_images:
            problems += [f"{where}: {p}" for p in _check_image(values[schema.IMAGE], values[schema.IMAGE_FORMAT], size, content)]
    except Exception as exc:  # a payload no decoder foresaw: still one line naming the record, never a traceback
        problems.append(f"{where}: payloads cannot be checked ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})")
    return problems


def _size_text(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _check_label(data: bytes, size: tuple[int, int], entry: dict[str, Any], content: ContentChecks) -> list[str]:
    """What is wrong with a record's label: not an 8-bit single-channel PNG, the wrong size, values, histogram."""
    try:
        info = read_image_info(data)
    except ImageFormatError as exc:
        return [f"label is not a readable PNG ({exc})"]
    if info.format != "png":
        return [f"label is a {info.format.upper()}, not a PNG"]
    if info.png_color_type != 0 or info.bit_depth != 8:
        kinds = {0: "greyscale", 2: "RGB", 3: "palette", 4: "greyscale+alpha", 6: "RGBA"}
        kind = f"{info.bit_depth}-bit {kinds.get(info.png_color_type or 0, 'PNG')}"
        return [f"label PNG is {kind}, not 8-bit single-channel (DeepLab and segtrain would read other class ids)"]
    problems = []
    same_size = (info.width, info.height) == size
    if not same_size:
        problems.append(f"label is {_size_text((info.width, info.height))} but the record's image/width x image/height is {_size_text(size)}")
    try:
        _, mode, histogram = decode_label(data)
    except LabelError as exc:
        return [*problems, str(exc)]
    if mode != "L" or histogram is None:
        return [*problems, f"label decodes in mode {mode}, not as an 8-bit single-channel image"]
    policy = LabelPolicy(content.num_classes, content.ignore_label)
    bad = out_of_range_values(histogram, policy)
    if bad:
        problems.append(f"label values outside {policy.valid_values_text()}: {format_values(bad)}")
    differences = _histogram_differences(histogram, entry["histogram"]) if same_size else ""  # else it cannot agree
    if differences:
        problems.append(f"label histogram differs from the manifest's: {differences}")
    return problems


def _histogram_differences(histogram: np.ndarray, listed: dict[str, int], limit: int = 6) -> str:
    """'value v: N px, manifest says M; ...' for every value counted differently (empty when they agree)."""
    present = np.flatnonzero(histogram).tolist()
    found = {int(v): int(histogram[v]) for v in present}
    manifest = {int(k): v for k, v in listed.items() if v}
    values = sorted(v for v in set(found) | set(manifest) if found.get(v, 0) != manifest.get(v, 0))
    text = "; ".join(f"value {v}: {found.get(v, 0)} px, manifest says {manifest.get(v, 0)}" for v in values[:limit])
    if len(values) > limit:
        text += f"; … {len(values) - limit} more"
    return text


def _check_image(data: bytes, fmt: bytes, size: tuple[int, int], content: ContentChecks) -> list[str]:
    """What is wrong with a record's image: unreadable header, another format or size (decode_images: any damage)."""
    try:
        info = read_image_info(data)
    except ImageFormatError as exc:
        return [f"image: {exc}"]
    problems = []
    if info.format.encode() != fmt:
        problems.append(f"image is a {info.format.upper()} but the record's image/format says {_short(fmt)}")
    if (info.width, info.height) != size:
        problems.append(f"image is {_size_text((info.width, info.height))} but the record's image/width x image/height is {_size_text(size)}")
    if content.decode_images:
        try:
            check_image_payload(data, info, PayloadChecks(decode_images=True))
        except ImageFormatError as exc:
            problems.append(f"image does not decode: {exc}")
    return problems


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check(job: tuple[Path, list[dict[str, Any]], ContentChecks | None]) -> tuple[int, list[str]]:
    return check_shard(*job)


def plan_verify(out_dir: Path, registry: Any = None) -> VerifyPlan:
    """Load every manifest strictly, check the listed shards exist, and flag every file no manifest explains.

    registry: a segprep.registry.Registry (or None); each manifest's registry entry must agree
    with the registry's entry for its dataset, when the registry has that dataset.
    """
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
        if registry is not None:
            problem = _registry_disagreement(out_dir / f"{split}{MANIFEST_SUFFIX}", manifest, registry)
            if problem:
                plan.problems.append(problem)
    for name in names:
        if name not in listed and name not in manifest_names:
            problem = _unexplained(out_dir, name, manifests, broken)
            if problem:
                plan.problems.append(problem)
    return plan


def _registry_disagreement(path: Path, manifest: dict[str, Any], registry: Any) -> str | None:
    """The problem when the registry's entry for the manifest's dataset has other classes or ignore label."""
    registered = registry.datasets.get(manifest["dataset"])
    if registered is None:
        return None
    entry = manifest["parameters"]["registry_entry"]
    ours = (entry["num_classes"], entry["ignore_label"])
    theirs = (registered.num_classes, registered.ignore_label)
    if ours == theirs:
        return None
    return (
        f"{path}: written with num_classes {ours[0]}, ignore_label {ours[1]} (parameters.registry_entry), but dataset "
        f"{manifest['dataset']!r} in the registry {registry.path} has num_classes {theirs[0]}, ignore_label {theirs[1]}"
    )


def _plan_split(out_dir: Path, split: str, manifest: dict[str, Any], plan: VerifyPlan) -> None:
    """Queue each listed shard that exists as a regular file of the listed size; report the others."""
    plan.records[split] = 0
    entry = manifest["parameters"]["registry_entry"]
    plan.classes[split] = (entry["num_classes"], entry["ignore_label"])
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


def run_plan(
    plan: VerifyPlan, pool: Any, advance: Any = lambda n: None, *, decode_images: bool = False, decode_labels: bool = True
) -> VerifyReport:
    """Re-read the planned shards (in the pool's workers) and collect every problem.

    decode_images: decode every image in full as well (--decode-images).
    decode_labels: False compares the records with their manifests only (sha256 of the payloads,
    no decoding): the verify of before the content checks, kept for benchmarks/convert_speed.py.
    """
    report = VerifyReport(dict(plan.records), list(plan.problems))

    def content(split: str) -> ContentChecks:
        return ContentChecks(*plan.classes[split], decode_labels=decode_labels, decode_images=decode_images)

    outcomes = pool.imap(_check, [(p, s, content(split)) for split, p, s in plan.jobs], len(plan.jobs))
    for (split, _, samples), (count, problems) in zip(plan.jobs, outcomes):
        report.records[split] += count
        report.problems.extend(problems)
        advance(len(samples))
    return report


def verify_output(
    out_dir: Path,
    pool: Any,
    advance: Any = lambda n: None,
    *,
    registry: Any = None,
    decode_images: bool = False,
    decode_labels: bool = True,
) -> VerifyReport:
    """Check every split that has a manifest, and flag whatever in the folder no manifest explains."""
    return run_plan(plan_verify(out_dir, registry), pool, advance, decode_images=decode_images, decode_labels=decode_labels)
