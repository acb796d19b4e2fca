"""Statistics of a written dataset: counts, class-pixel histograms, ignore fraction, bad values, duplicates.

Reads the manifests when present (they hold every sample's histogram, so inspecting is instant);
for folders of records without manifests (e.g. written by DeepLab's own converters) it scans the
shards, decoding labels and reading image sizes from their headers.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from segprep.errors import describe_os_error
from segprep.formats.example import ExampleDecodeError, decode_example
from segprep.formats.images import ImageFormatError, read_image_info
from segprep.formats.tfrecord import CorruptRecordError, iter_records
from segprep.manifest import MANIFEST_SUFFIX, ManifestError, load_manifest
from segprep import schema



@dataclass
class SplitStats:
    """What inspect reports for one split."""

    split: str
    records: int = 0
    shards: int = 0
    histogram: np.ndarray = field(default_factory=lambda: np.zeros(256, dtype=np.int64))
    size_mismatches: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # unreadable shards and records, one line each
    skipped: int = 0
    names: list[str] = field(default_factory=list)
    # (values, counts) of each record's label, for statistics that need per-image presence.
    per_sample: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    def presence_pixels(self, ignore_label: int | None) -> np.ndarray:
        """Per value: labelled (non-ignored) pixels of the records in which the value occurs."""
        presence = np.zeros(256, dtype=np.int64)
        for values, counts in self.per_sample:
            labelled = counts[values != ignore_label]
            presence[values[values != ignore_label]] += int(labelled.sum())
        return presence


@dataclass
class InspectReport:
    dataset: str | None
    num_classes: int | None
    ignore_label: int | None
    class_names: list[str] | None
    colormap: str | list[list[int]] | None
    splits: dict[str, SplitStats]
    duplicates: list[tuple[str, list[str]]]
    warnings: list[str] = field(default_factory=list)  # manifests that could not be used

    def out_of_range(self, stats: SplitStats) -> dict[int, int]:
        if self.num_classes is None:
            return {}
        return {
            int(v): int(stats.histogram[v])
            for v in np.flatnonzero(stats.histogram)
            if v >= self.num_classes and v != self.ignore_label
        }

    def ignore_fraction(self, stats: SplitStats) -> float:
        total = int(stats.histogram.sum())
        if not total or self.ignore_label is None:
            return 0.0
        return float(stats.histogram[self.ignore_label]) / total

    def to_json(self) -> dict[str, Any]:
        """The --json document."""
        names = self.class_names or []

        def label(v: int) -> str:
            return names[v] if v < len(names) and v != self.ignore_label else str(v)

        return {
            "dataset": self.dataset,
            "num_classes": self.num_classes,
            "ignore_label": self.ignore_label,
            "splits": {
                split: {
                    "records": s.records,
                    "shards": s.shards,
                    "skipped": s.skipped,
                    "class_pixels": {label(int(v)): int(s.histogram[v]) for v in np.flatnonzero(s.histogram)},
                    "ignore_fraction": self.ignore_fraction(s),
                    "out_of_range_values": {str(v): n for v, n in self.out_of_range(s).items()},
                    "size_mismatches": s.size_mismatches,
                    "problems": s.problems,
                }
                for split, s in self.splits.items()
            },
            "duplicates": [{"name": n, "splits": sp} for n, sp in self.duplicates],
            "warnings": self.warnings,
        }


def _from_manifest(manifest: dict[str, Any]) -> SplitStats:
    stats = SplitStats(manifest["split"], manifest["num_records"], manifest["num_shards"], skipped=len(manifest.get("skipped", [])))
    for sample in manifest["samples"]:
        values = np.fromiter(map(int, sample["histogram"]), dtype=np.int64, count=len(sample["histogram"]))
        counts = np.fromiter(sample["histogram"].values(), dtype=np.int64, count=len(values))
        stats.histogram[values] += counts
        stats.per_sample.append((values, counts))
        stats.names.append(sample["name"])
    return stats


# What PIL raises on a damaged label PNG besides OSError.
_PIL_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error, Image.DecompressionBombError)


def scan_split(split: str, shards: list[Path]) -> SplitStats:
    """Statistics of a split read from its records (no manifest): decodes every label.

    A shard or record that cannot be read becomes one line in `problems`; the scan goes on.
    """
    stats = SplitStats(split, shards=len(shards))
    for shard in shards:
        try:
            for number, payload in enumerate(iter_records(shard), start=1):
                _scan_record(stats, shard, number, payload)
        except CorruptRecordError as exc:
            stats.problems.append(str(exc))
        except OSError as exc:
            stats.problems.append(describe_os_error(exc))
    return stats


def _scan_record(stats: SplitStats, shard: Path, number: int, payload: bytes) -> None:
    where = f"{shard}: record {number}"
    try:
        example = decode_example(payload)
    except ExampleDecodeError as exc:
        stats.problems.append(f"{where}: not a tf.train.Example ({exc})")
        return
    name = _single_bytes(example, schema.FILENAME, b"?").decode(errors="replace")
    stats.records += 1
    stats.names.append(name)
    label_png = _single_bytes(example, schema.LABEL)
    if label_png is None:
        stats.problems.append(f"{where} ({name}): no {schema.LABEL} bytes")
        return
    try:
        with Image.open(io.BytesIO(label_png)) as label:
            array = np.asarray(label)
    except _PIL_ERRORS as exc:
        stats.problems.append(f"{where} ({name}): label is not a readable image ({' '.join(str(exc).split()) or type(exc).__name__})")
        return
    if array.ndim != 2 or array.dtype != np.uint8:
        detail = f"{array.shape[2]} channels" if array.ndim == 3 else f"shape {array.shape}, {array.dtype}"
        stats.size_mismatches.append(f"{shard.name}: {name}: label has {detail}")
        return
    counts = np.bincount(array.ravel(), minlength=256)[:256]
    stats.histogram += counts
    present = np.flatnonzero(counts)
    stats.per_sample.append((present, counts[present]))
    image = _single_bytes(example, schema.IMAGE)
    try:
        if image is None:
            raise ImageFormatError(f"no {schema.IMAGE} bytes")
        info = read_image_info(image)
    except ImageFormatError as exc:
        stats.size_mismatches.append(f"{shard.name}: {name}: {exc}")
        return
    if (info.height, info.width) != array.shape:
        stats.size_mismatches.append(f"{shard.name}: {name}: image {info.width}x{info.height}, label {array.shape[1]}x{array.shape[0]}")


def _single_bytes(example: dict[str, Any], key: str, default: bytes | None = None) -> bytes | None:
    """The first bytes value of a feature, or default when the feature is absent or holds no bytes."""
    values = example.get(key) or []
    return values[0] if values and isinstance(values[0], bytes) else default


def find_duplicates(splits: dict[str, SplitStats]) -> list[tuple[str, list[str]]]:
    """Names found in more than one split.

    A merged split is expected to hold its parts: a pair is exempt when one split contains the
    other and is named after it (trainval ⊇ train and val, train_extra ⊇ train).
    """
    sets = {s: set(st.names) for s, st in splits.items()}
    seen: dict[str, set[str]] = {}
    for a, b in combinations(sets, 2):
        if (sets[a] <= sets[b] and a in b) or (sets[b] <= sets[a] and b in a):
            continue
        for name in sets[a] & sets[b]:
            seen.setdefault(name, set()).update((a, b))
    return sorted((n, sorted(sp)) for n, sp in seen.items())


def inspect_folder(out_dir: Path, entry: Any | None = None) -> InspectReport:
    """Inspect a folder of shards; entry (a registry DatasetEntry) supplies classes where no manifest does."""
    manifests, warnings = _load_manifests(out_dir)
    splits = {split: _from_manifest(m) for split, m in manifests.items()}
    groups: dict[str, list[Path]] = {}
    for path in sorted(out_dir.glob(f"*{schema.SHARD_SUFFIX}")):
        match = schema.ANY_SHARD.fullmatch(path.name)
        # Hidden files (.tmp-*, .staged-*) are a writer's work in progress, not a split.
        if match and not path.name.startswith(".") and match["split"] not in splits:
            groups.setdefault(match["split"], []).append(path)
    for split, shards in groups.items():
        splits[split] = scan_split(split, shards)
    dataset = num_classes = ignore = names = colormap = None
    if manifests:
        first = next(iter(manifests.values()))
        dataset = first["dataset"]
        reg = first["parameters"]["registry_entry"]
        num_classes, ignore, names, colormap = reg["num_classes"], reg["ignore_label"], reg["class_names"], reg["colormap"]
    if entry is not None:
        dataset, num_classes, ignore, names, colormap = entry.name, entry.num_classes, entry.ignore_label, entry.class_names, entry.colormap
    return InspectReport(dataset, num_classes, ignore, names, colormap, splits, find_duplicates(splits), warnings)


def _load_manifests(out_dir: Path) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """{split: manifest} of the sound manifests, and one warning per manifest that is not.

    A split whose manifest cannot be used is inspected from its records instead, like a folder
    written by DeepLab's own converters.
    """
    manifests: dict[str, dict[str, Any]] = {}
    warnings: list[str] = []
    for path in sorted(out_dir.glob(f"*{MANIFEST_SUFFIX}")):
        try:
            document = load_manifest(path)
        except ManifestError as exc:
            warnings.append(f"{exc}; reading the split's records instead")
            continue
        manifests[document["split"]] = document
    return manifests, warnings
