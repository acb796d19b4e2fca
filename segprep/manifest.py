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

from segprep.errors import SegprepError, describe_os_error
from segprep.fileio import atomic_write_text
from segprep.formats.tfrecord import read_regular_file
from segprep.schema import MAX_SHARDS, shard_name

MANIFEST_FORMAT = "segprep-manifest/1"
MANIFEST_SUFFIX = ".manifest.json"

# Bounds of a sound manifest: generous, but they keep arithmetic on its numbers sane.
_MAX_COUNT = 2**53
_MAX_BYTES = 2**53
_MAX_SIDE = 2**31 - 1
_SHA256 = re.compile(r"[0-9a-f]{64}")
_LABEL_VALUE = re.compile(r"(?:0|[1-9][0-9]{0,2})")
_SKIPPED_KEYS = frozenset({"name", "path", "reason"})


def temporary_shard_name(split: str, index: int, count: int) -> str:
    """Hidden and not starting with `{split}-`, so no reader's glob ever picks up a partial shard."""
    return f".tmp-{shard_name(split, index, count)}"


def staged_shard_name(final_name: str) -> str:
    """A complete shard waiting for the rest of its split: hidden, so no reader's glob sees a partial split."""
    return f".staged-{final_name}"


def manifest_path(out_dir: Path, split: str) -> Path:
    return out_dir / f"{split}{MANIFEST_SUFFIX}"


def journal_path(out_dir: Path, split: str) -> Path:
    return out_dir / f".{split}.journal.jsonl"


def json_line(document: Any) -> str:
    """How segprep writes a manifest or a journal entry: one line of JSON (both runners, byte for byte)."""
    # No indent: indented output goes through json's pure-Python encoder, ~10x slower on big manifests.
    return json.dumps(document, ensure_ascii=False) + "\n"


def write_json_atomic(path: Path, document: Any) -> None:
    """Write JSON to a temporary file in the same folder and rename it into place."""
    atomic_write_text(path, json_line(document))


class ManifestError(SegprepError, ValueError):
    """A manifest that cannot be trusted; the message names the file and what is wrong with it."""


class _Invalid(Exception):
    """A structural problem found while checking a manifest document (the caller adds the file)."""


def load_manifest(path: Path) -> dict[str, Any]:
    """The manifest at path, checked from top to bottom; ManifestError naming the file otherwise.

    Used by `verify`, which must trust nothing: besides the JSON itself, every key the readers
    use is checked for presence, type and range, the counts must agree with each other, and the
    file must be named after the split it describes.
    """
    try:
        data = read_regular_file(path)
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read the manifest ({describe_os_error(exc).rsplit(': ', 1)[-1]})") from None
    document = parse_manifest(data, path)
    expected = f"{document['split']}{MANIFEST_SUFFIX}"
    if path.name != expected:
        raise ManifestError(f"{path}: describes split {document['split']!r}, so it should be named {expected}")
    return document


def parse_manifest(data: bytes, source: Path | str) -> dict[str, Any]:
    """A checked manifest document from a file's bytes; ManifestError naming source otherwise."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{source}: not UTF-8 text (byte {exc.start}); not a segprep manifest") from None
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); truncated or damaged") from None
    except (ValueError, RecursionError) as exc:  # NaN/Infinity, over-long integers, absurd nesting
        raise ManifestError(f"{source}: not a segprep manifest ({_short(str(exc) or type(exc).__name__)})") from None
    try:
        check_manifest(document)
    except _Invalid as exc:
        raise ManifestError(f"{source}: {exc}") from None
    return document


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest, or None when it is absent or is not a sound segprep manifest.

    Lenient on purpose: the writer's resume logic treats any manifest it cannot trust as absent
    (and rewrites the split). `load_manifest` says what is wrong instead.
    """
    try:
        return load_manifest(path)
    except ManifestError:
        return None


def find_manifests(out_dir: Path) -> dict[str, dict[str, Any]]:
    """{split: manifest} for every finished split in a folder whose manifest is sound."""
    found = {}
    for path in sorted(out_dir.glob(f"*{MANIFEST_SUFFIX}")):
        document = read_manifest(path)
        if document is not None:
            found[document["split"]] = document
    return found


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a segprep manifest holds")


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(value: Any) -> str:
    """A value for a one-line message: its JSON type and a short rendering."""
    kinds = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "object", type(None): "null"}
    kind = kinds.get(type(value), type(value).__name__)
    if isinstance(value, list | dict):
        return kind
    return f"{kind} {_short(repr(value), 40)}"


def _field(document: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str = "") -> Any:
    """document[key], which must exist and be of `kind` (a bool is never an integer here)."""
    label = f"{where}{key}"
    if key not in document:
        raise _Invalid(f"'{label}' is missing")
    value = document[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise _Invalid(f"'{label}' must be {_kind_name(kinds)}, got {_describe(value)}")
    if not isinstance(value, kinds):
        raise _Invalid(f"'{label}' must be {_kind_name(kinds)}, got {_describe(value)}")
    return value


def _kind_name(kinds: tuple[type, ...]) -> str:
    names = {int: "an integer", str: "a string", list: "a list", dict: "an object", bool: "true/false", type(None): "null"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _count(document: dict[str, Any], key: str, where: str = "", low: int = 0, high: int = _MAX_COUNT) -> int:
    value = _field(document, key, int, where)
    if not low <= value <= high:
        raise _Invalid(f"'{where}{key}' is {value}, outside [{low}, {high}]")
    return value


def check_manifest(document: Any) -> None:
    """Raise _Invalid with the first structural problem of a manifest document."""
    if not isinstance(document, dict):
        raise _Invalid(f"not a segprep manifest (a JSON {_describe(document)}, not an object)")
    if document.get("format") != MANIFEST_FORMAT:
        raise _Invalid(f"not a segprep manifest ('format' is {_describe(document.get('format'))}, not {MANIFEST_FORMAT!r})")
    split = _field(document, "split", str)
    if not split or not split.isprintable() or "/" in split or "\\" in split or split.startswith("."):
        raise _Invalid(f"'split' {split!r} is not a split name")
    _field(document, "dataset", str)
    _field(document, "fingerprint", str)
    _check_parameters(_field(document, "parameters", dict))
    num_records = _count(document, "num_records")
    num_shards = _count(document, "num_shards", high=MAX_SHARDS)
    shards = _field(document, "shards", list)
    if len(shards) != num_shards:
        raise _Invalid(f"'num_shards' is {num_shards} but 'shards' lists {len(shards)}")
    per_shard = _check_shards(shards, split)
    samples = _field(document, "samples", list)
    if len(samples) != num_records or sum(per_shard) != num_records:
        raise _Invalid(
            f"'num_records' is {num_records} but 'samples' lists {len(samples)} and the shards hold {sum(per_shard)}"
        )
    _check_samples(samples, per_shard)
    for index, entry in enumerate(_field(document, "skipped", list)):
        if not (isinstance(entry, dict) and set(entry) == _SKIPPED_KEYS and all(isinstance(v, str) for v in entry.values())):
            raise _Invalid(f"skipped[{index}] must be an object of strings name, path and reason, got {_describe(entry)}")


def _check_parameters(parameters: dict[str, Any]) -> None:
    """The registry entry that `inspect` reads its classes from."""
    entry = _field(parameters, "registry_entry", dict, "parameters.")
    where = "parameters.registry_entry."
    _count(entry, "num_classes", where, low=1, high=256)
    _count(entry, "ignore_label", where, high=255)
    names = _field(entry, "class_names", (list, type(None)), where)
    if names is not None and not all(isinstance(n, str) for n in names):
        raise _Invalid(f"'{where}class_names' must be a list of strings")
    _field(entry, "colormap", (str, list, type(None)), where)


def _check_shards(shards: list[Any], split: str) -> list[int]:
    """Each shard entry's file (DeepLab's name for its position), record count and size."""
    seen: set[str] = set()
    records = []
    for index, shard in enumerate(shards):
        where = f"shards[{index}]."
        if not isinstance(shard, dict):
            raise _Invalid(f"'shards[{index}]' must be an object, got {_describe(shard)}")
        name = _field(shard, "file", str, where)
        if name in seen:
            raise _Invalid(f"shard file {_short(name)!r} is listed twice")
        seen.add(name)
        expected = shard_name(split, index, len(shards))
        if name != expected:
            raise _Invalid(f"'{where}file' is {_short(name)!r}, expected {expected}")
        records.append(_count(shard, "records", where))
        _count(shard, "bytes", where, high=_MAX_BYTES)
    return records


def _check_samples(samples: list[Any], per_shard: list[int]) -> None:
    """Every sample entry is complete, and the samples fill the shards in order, as many as each holds."""
    counts = [0] * len(per_shard)
    previous = 0
    for index, sample in enumerate(samples):
        where = f"samples[{index}]."
        if not isinstance(sample, dict):
            raise _Invalid(f"'samples[{index}]' must be an object, got {_describe(sample)}")
        name = _field(sample, "name", str, where)
        if not _is_unicode(name):
            raise _Invalid(f"'{where}name' {_short(ascii(name))} is not valid Unicode")
        shard = _count(sample, "shard", where, high=max(len(per_shard) - 1, 0))
        if not per_shard:
            raise _Invalid(f"'{where}shard' is {shard} but there are no shards")
        if shard < previous:
            raise _Invalid(f"'{where}shard' is {shard} after a sample of shard {previous}: samples are not in shard order")
        previous = shard
        counts[shard] += 1
        height = _count(sample, "height", where, low=1, high=_MAX_SIDE)
        width = _count(sample, "width", where, low=1, high=_MAX_SIDE)
        image = _field(sample, "image", dict, where)
        fmt = _field(image, "format", str, f"{where}image.")
        if fmt not in ("jpeg", "png"):
            raise _Invalid(f"'{where}image.format' is {_short(fmt)!r}, not jpeg or png")
        _sha256(image, f"{where}image.")
        _sha256(_field(sample, "label", dict, where), f"{where}label.")
        _check_histogram(_field(sample, "histogram", dict, where), height * width, where)
    for index, (found, listed) in enumerate(zip(counts, per_shard)):
        if found != listed:
            raise _Invalid(f"'shards[{index}].records' is {listed} but {found} sample(s) name shard {index}")


def _is_unicode(text: str) -> bool:
    """False for a string with lone surrogates (JSON's \\ud800 escapes), which no record name can hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _sha256(document: dict[str, Any], where: str) -> None:
    digest = _field(document, "sha256", str, where)
    if not _SHA256.fullmatch(digest):
        raise _Invalid(f"'{where}sha256' is {_short(digest)!r}, not a sha256 hex digest")


def _check_histogram(histogram: dict[str, Any], pixels: int, where: str) -> None:
    """{label value: pixel count}; the counts add up to the label's size."""
    total = 0
    for key, count in histogram.items():
        if not (_LABEL_VALUE.fullmatch(key) and int(key) <= 255):
            raise _Invalid(f"'{where}histogram' has key {_short(key)!r}, not a label value 0-255")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise _Invalid(f"'{where}histogram' counts {_describe(count)} pixels of value {key}")
        total += count
    if total != pixels:
        raise _Invalid(f"'{where}histogram' counts {total} pixels, but the label is {pixels} pixels (height x width)")


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
        handle.write(json_line(entry))
