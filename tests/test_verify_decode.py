"""`segprep verify` decodes every label (and, with --decode-images, every image) and checks it against the contract.

The sha256 in a manifest proves only that a record holds what the manifest says; a record whose
label was replaced, with the manifest's sha256 (and histogram) rewritten to match, passed the old
verify and `segtrain fit` then trained on it (TensorFlow decodes a 16-bit label as other class
ids). Each case here converts a tiny dataset once (dataset `tiny`: 3 classes, ignore 255, train 6
records in 4 shards), copies it, replaces one record's payloads with a forged one while keeping
every manifest field consistent (sha256, shard bytes, and histogram/size where the case says so),
and requires exit 1 with one `error:` line naming the shard, record number, sample name and reason.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import convert_tiny_records, png_bytes
from faultkit import assert_refused, error_lines
from PIL import Image

from segprep import schema
from segprep.formats.example import decode_example, encode_example
from segprep.formats.tfrecord import frame_record, iter_records

TRAIN = "train.manifest.json"
SHARD0 = "train-00000-of-00004.tfrecord"


def _invoke(*args: object) -> Any:
    from segprep.cli.main import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the converted output folder, the registry it was registered in), made once and never changed."""
    base = tmp_path_factory.mktemp("verify-decode")
    registry = base / "registry.yaml"
    registry.write_text("datasets:\n")
    out = convert_tiny_records(base, registry)
    return out, registry


@pytest.fixture
def copy(pristine: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the output and of its registry for one test to damage."""
    out, registry = tmp_path / "out", tmp_path / "registry-copy.yaml"
    shutil.copytree(pristine[0], out)
    shutil.copy(pristine[1], registry)
    return out, registry


def _verify(out: Path, registry: Path, *extra: object) -> Any:
    return _invoke("verify", out, "--registry", registry, "--workers", "1", "-q", *extra)


# --- forging a record whose manifest agrees with it -------------------------------------------


def _forge(out: Path, number: int, change: Callable[[dict[str, Any], dict[str, Any]], None], split: str = "train") -> str:
    """Rewrite sample `number` of a split through change(values, entry), then fix every manifest field the
    sha256 check and the shard sizes rely on. Returns the problem prefix verify must print for it:
    '{shard}: record {n} ({name})'."""
    manifest_path = out / f"{split}.manifest.json"
    document = json.loads(manifest_path.read_text())
    entry = document["samples"][number]
    shard_index = entry["shard"]
    position = sum(1 for s in document["samples"][:number] if s["shard"] == shard_index)
    shard = out / document["shards"][shard_index]["file"]
    records = list(iter_records(shard))
    values = {key: found[0] for key, found in decode_example(records[position]).items()}
    change(values, entry)
    records[position] = encode_example([(key, values[key]) for key in schema.FEATURE_KEYS])
    shard.write_bytes(b"".join(frame_record(r) for r in records))
    entry["image"]["sha256"] = hashlib.sha256(values[schema.IMAGE]).hexdigest()
    entry["label"]["sha256"] = hashlib.sha256(values[schema.LABEL]).hexdigest()
    document["shards"][shard_index]["bytes"] = shard.stat().st_size
    manifest_path.write_text(json.dumps(document))
    return f"{shard}: record {position + 1} ({entry['name']})"


def _label(values: dict[str, Any]) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(values[schema.LABEL])))


def _histogram(label: np.ndarray) -> dict[str, int]:
    counts = np.bincount(label.ravel(), minlength=256)
    return {str(v): int(counts[v]) for v in np.flatnonzero(counts)}


def _sixteen_bit(values: dict[str, Any], entry: dict[str, Any]) -> None:
    """The same class ids in a 16-bit greyscale PNG: the histogram is unchanged, TensorFlow reads other ids."""
    values[schema.LABEL] = png_bytes(_label(values).astype(np.uint16))


def _palette(values: dict[str, Any], entry: dict[str, Any]) -> None:
    """The same class ids as a palette PNG: segprep never stores one (palette labels become index PNGs)."""
    values[schema.LABEL] = png_bytes(_label(values), "P")


def _rgb(values: dict[str, Any], entry: dict[str, Any]) -> None:
    label = _label(values)
    values[schema.LABEL] = png_bytes(np.stack([label] * 3, axis=-1))


def _four_bit(values: dict[str, Any], entry: dict[str, Any]) -> None:
    """The same class ids packed as a 4-bit greyscale PNG: decoders scale them (1 -> 17, 2 -> 34)."""
    label = _label(values)
    packed = label.astype(np.uint8) & 0x0F
    if packed.shape[1] % 2:
        packed = np.concatenate([packed, np.zeros((packed.shape[0], 1), np.uint8)], axis=1)
    rows = b"".join(b"\x00" + ((row[0::2] << 4) | row[1::2]).astype(np.uint8).tobytes() for row in packed)
    header = struct.pack(">IIBBBBB", label.shape[1], label.shape[0], 4, 0, 0, 0, 0)
    values[schema.LABEL] = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b"")


def _outside_classes(values: dict[str, Any], entry: dict[str, Any]) -> None:
    """Values 7 and 254 in an 8-bit label of 3 classes, the histogram rewritten to count them."""
    label = _label(values).copy()
    label[1, :5] = 7
    label[2, :3] = 254
    values[schema.LABEL] = png_bytes(label, "L")
    entry["histogram"] = _histogram(label)


def _one_pixel_wider(values: dict[str, Any], entry: dict[str, Any]) -> None:
    """A label one column wider than its image; record and manifest still give the image's size."""
    label = _label(values)
    values[schema.LABEL] = png_bytes(np.concatenate([label, label[:, :1]], axis=1), "L")


def _record_says_wider(values: dict[str, Any], entry: dict[str, Any]) -> None:
    """Label, record and manifest all one column wider: only the image itself still says otherwise."""
    label = _label(values)
    wider = np.concatenate([label, label[:, :1]], axis=1)
    values[schema.LABEL] = png_bytes(wider, "L")
    values[schema.WIDTH] += 1
    entry["width"] += 1
    entry["histogram"] = _histogram(wider)


def _histogram_swapped(values: dict[str, Any], entry: dict[str, Any]) -> None:
    """The label is untouched; the manifest's counts of classes 0 and 1 are moved by 5 px (total unchanged)."""
    entry["histogram"]["0"] += 5
    entry["histogram"]["1"] -= 5


def _label_jpeg(values: dict[str, Any], entry: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    Image.fromarray(_label(values)).save(buffer, "JPEG")
    values[schema.LABEL] = buffer.getvalue()


def _label_garbled(values: dict[str, Any], entry: dict[str, Any]) -> None:
    values[schema.LABEL] = values[schema.LABEL][:-30]


@pytest.mark.fault("verify", "verify")
@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        (_sixteen_bit, "label PNG is 16-bit greyscale, not 8-bit single-channel"),
        (_palette, "label PNG is 8-bit palette, not 8-bit single-channel"),
        (_four_bit, "label PNG is 4-bit greyscale, not 8-bit single-channel"),
        (_rgb, "label PNG is 8-bit RGB, not 8-bit single-channel"),
        (_outside_classes, "label values outside [0, 3) ∪ {255}: 7 (5 px), 254 (3 px)"),
        (_one_pixel_wider, "label is 41x28 but the record's image/width x image/height is 40x28"),
        (_record_says_wider, "image is 40x28 but the record's image/width x image/height is 41x28"),
        (_histogram_swapped, "label histogram differs from the manifest's: value 0:"),
        (_label_jpeg, "label is a JPEG, not a PNG"),
        (_label_garbled, "label is not a readable PNG (truncated PNG"),
    ],
    ids=lambda v: getattr(v, "__name__", None),
)
def test_forged_label_with_a_matching_manifest_is_an_error(copy, forge, reason):
    out, registry = copy
    where = _forge(out, 0, forge)
    assert where.startswith(f"{out / SHARD0}: record 1 (s")
    result = _verify(out, registry)
    assert_refused(result, f"{where}: {reason}")
    # One line per problem, the shard, record and sample named on it; nothing but this record is reported.
    lines = error_lines(result)
    assert all(line.startswith("error: ") for line in result.stderr.splitlines()), result.stderr
    assert all(where in line for line in lines[:-1]), lines
    assert lines[-1].startswith("error: ") and "problem(s) in" in lines[-1]


def test_histogram_difference_names_each_value(copy):
    out, registry = copy
    document = json.loads((out / TRAIN).read_text())
    histogram = document["samples"][0]["histogram"]
    where = _forge(out, 0, _histogram_swapped)
    result = _verify(out, registry)
    assert_refused(result, f"{where}: label histogram differs from the manifest's: "
                           f"value 0: {histogram['0']} px, manifest says {histogram['0'] + 5}; "
                           f"value 1: {histogram['1']} px, manifest says {histogram['1'] - 5}")


def test_a_forged_record_in_a_later_shard_is_named_by_its_place(copy):
    out, registry = copy
    where = _forge(out, 3, _outside_classes)  # train: 2 records a shard, so sample 3 is record 2 of shard 1
    assert where.startswith(f"{out / 'train-00001-of-00004.tfrecord'}: record 2 (s")
    result = _invoke("verify", out, "--registry", registry, "--workers", "2", "-q")  # checked in the worker pool
    assert_refused(result, f"{where}: label values outside [0, 3) ∪ {{255}}: 7 (5 px), 254 (3 px)")


# --- clean output ------------------------------------------------------------------------------


@pytest.mark.fault("verify", "verify")
@pytest.mark.parametrize("extra", [(), ("--decode-images",)], ids=["labels", "decode-images"])
def test_clean_output_passes(copy, extra):
    out, registry = copy
    result = _verify(out, registry, *extra)
    assert result.exit_code == 0, result.output
    assert "ok: 16 records in 3 split(s) match their manifests" in result.stdout
    assert ("labels and images decoded" in result.stdout) == bool(extra)


def test_a_registry_without_the_dataset_is_not_compared(copy, tmp_path):
    out, _ = copy
    empty = tmp_path / "empty.yaml"
    empty.write_text("datasets:\n")
    result = _verify(out, empty)
    assert result.exit_code == 0, result.output


# --- --decode-images ---------------------------------------------------------------------------


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _idat_cut_short(values: dict[str, Any], entry: dict[str, Any]) -> None:
    """The PNG image's zlib stream loses its last 8 bytes; the IDAT chunk's length and CRC are made to fit."""
    image = values[schema.IMAGE]
    assert entry["image"]["format"] == "png"
    pos, chunks = 8, []
    while pos < len(image):
        (length,) = struct.unpack_from(">I", image, pos)
        kind, payload = image[pos + 4 : pos + 8], image[pos + 8 : pos + 8 + length]
        chunks.append(_chunk(kind, payload[:-8] if kind == b"IDAT" else payload))
        pos += 12 + length
    values[schema.IMAGE] = image[:8] + b"".join(chunks)


@pytest.mark.fault("verify", "verify")
def test_decode_images_finds_damage_inside_the_image_data(copy):
    out, registry = copy
    where = _forge(out, 0, _idat_cut_short)
    assert _verify(out, registry).exit_code == 0  # chunk CRCs and header are sound: only a decode sees it
    result = _verify(out, registry, "--decode-images")
    assert_refused(result, f"{where}: image does not decode: corrupt PNG image data")


# --- the registry ------------------------------------------------------------------------------


@pytest.mark.fault("verify", "verify")
def test_registry_that_disagrees_with_the_manifests(copy):
    out, registry = copy
    text = registry.read_text()
    assert "num_classes: 3" in text and "      - class2\n" in text
    registry.write_text(text.replace("num_classes: 3", "num_classes: 4").replace("      - class2\n", "      - class2\n      - class3\n"))
    result = _verify(out, registry)
    reason = f"written with num_classes 3, ignore_label 255 (parameters.registry_entry), but dataset 'tiny' in the registry {registry} has num_classes 4, ignore_label 255"
    assert_refused(result, *(f"{out / name}: {reason}" for name in (TRAIN, "val.manifest.json", "trainval.manifest.json")))
    assert len(error_lines(result)) == 4  # one line per manifest, and the summary: the records themselves are fine


def test_broken_registry_is_reported_and_the_records_still_checked(copy, tmp_path):
    out, _ = copy
    broken = tmp_path / "broken.yaml"
    broken.write_text("datasets: [\n")
    where = _forge(out, 0, _sixteen_bit)
    result = _verify(out, broken)
    assert_refused(result, broken, f"{where}: label PNG is 16-bit greyscale")


# --- the benchmark's "before" arm --------------------------------------------------------------


def test_without_label_decoding_verify_compares_sha256_only(copy):
    """verify_output(decode_labels=False) is the verify of before the label decoding (benchmarks/convert_speed.py)."""
    from segprep.parallel import OrderedPool
    from segprep.verify import verify_output

    out, _ = copy
    where = _forge(out, 0, _sixteen_bit)
    with OrderedPool(1) as pool:
        assert verify_output(out, pool, decode_labels=False).problems == []
        problems = verify_output(out, pool).problems
    assert problems == [f"{where}: label PNG is 16-bit greyscale, not 8-bit single-channel (DeepLab and segtrain would read other class ids)"]
