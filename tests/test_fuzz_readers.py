"""Issue 8: the readers of user files, fuzzed with hypothesis.

Every input either parses or raises the project's own error type (a SegprepError): TFRecord
framing, tf.train.Example decoding, the strict manifest reader (and verify/inspect behind it)
and the labelme JSON reader. Each bug the fuzzing found has its input pinned as an @example.
Bounded: 200 examples a test, no example database written into the tree.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import REPO, make_folder_dataset
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from segprep.errors import SegprepError
from segprep.formats.example import ExampleDecodeError, decode_example, encode_example
from segprep.formats.labelme_json import POINT_COUNTS, LabelmeFile, LabelmeFormatError, parse_labelme
from segprep.formats.tfrecord import CorruptRecordError, frame_record, iter_framed
from segprep.manifest import ManifestError, parse_manifest
from segprep.ops.rasterize_labelme import rasterize_shapes

FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_error_types_are_the_projects_own():
    for error in (CorruptRecordError, ExampleDecodeError, ManifestError, LabelmeFormatError):
        assert issubclass(error, SegprepError) and issubclass(error, ValueError)


# --- TFRecord framing ------------------------------------------------------------------------

payload_lists = st.lists(st.binary(max_size=40), min_size=1, max_size=4)


@pytest.mark.fault("traceback", "tfrecord reader")
@FUZZ
@given(st.binary(max_size=200))
@example(b"")
@example(b"\xff" * 12)  # a length of 2**64 - 1 with a wrong CRC
@example(frame_record(b"abc")[:-1])
def test_framing_of_random_bytes(data):
    try:
        list(iter_framed(data, "shard"))
    except CorruptRecordError as exc:
        assert str(exc).startswith("shard: ") and "\n" not in str(exc)


@pytest.mark.fault("traceback", "tfrecord reader")
@FUZZ
@given(payload_lists, st.data())
def test_every_flipped_byte_is_caught(payloads, data):
    framed = b"".join(frame_record(p) for p in payloads)
    assert list(iter_framed(framed, "shard")) == payloads
    damaged = bytearray(framed)
    damaged[data.draw(st.integers(0, len(framed) - 1))] ^= data.draw(st.integers(1, 255))
    with pytest.raises(CorruptRecordError):  # CRC-32C catches every burst of up to 32 bits
        list(iter_framed(bytes(damaged), "shard"))


@pytest.mark.fault("traceback", "tfrecord reader")
@FUZZ
@given(payload_lists, st.data())
def test_truncation_is_caught_unless_at_a_record_boundary(payloads, data):
    frames = [frame_record(p) for p in payloads]
    framed = b"".join(frames)
    cut = data.draw(st.integers(0, len(framed)))
    boundaries = {sum(len(f) for f in frames[:k]): k for k in range(len(frames) + 1)}
    if cut in boundaries:
        assert list(iter_framed(framed[:cut], "shard")) == payloads[: boundaries[cut]]
    else:
        with pytest.raises(CorruptRecordError, match="truncated"):
            list(iter_framed(framed[:cut], "shard"))


# --- tf.train.Example --------------------------------------------------------------------------

feature_dicts = st.dictionaries(
    st.text(max_size=12),
    st.binary(max_size=24) | st.integers(-(2**63), 2**63 - 1),
    max_size=5,
)


def _mutated_bytes(data: bytes, draw: st.DataObject) -> bytes:
    """data with 1-3 bytes flipped, cut or inserted."""
    out = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 3))):
        action = draw.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = draw.draw(st.integers(0, len(out)))
        if action == "flip" and pos < len(out):
            out[pos] ^= draw.draw(st.integers(1, 255))
        elif action == "cut":
            del out[pos : pos + draw.draw(st.integers(1, 64))]
        else:
            out[pos:pos] = draw.draw(st.binary(min_size=1, max_size=4))
    return bytes(out)


def _decodes_or_refuses(data: bytes) -> None:
    try:
        decoded = decode_example(data)
    except ExampleDecodeError as exc:
        assert "\n" not in str(exc)
        return
    assert all(isinstance(k, str) and isinstance(v, list) for k, v in decoded.items())


@pytest.mark.fault("traceback", "decode_example")
@FUZZ
@given(st.binary(max_size=200))
@example(b"\x08\x01")  # Example.features sent as a varint: was a TypeError
@example(b"\x0a\x02\x08\x01")  # a Features entry sent as a varint: was a TypeError
@example(b"\x0a\x05\x0a\x03\x0a\x01\xff")  # a feature key that is not UTF-8: was a UnicodeDecodeError
@example(b"\x0a\x08\x0a\x06\x12\x04\x12\x02\x0d\x00")  # a float32 value cut short: was a struct.error
@example(b"\x0a\x09\x0a\x07\x12\x05\x12\x03\x0a\x01\x00")  # a packed FloatList of 1 byte: was a struct.error
@example(b"\x0a\x08\x0a\x06\x12\x04\x0a\x02\x08\x01")  # a BytesList holding an int: crashed verify later
def test_decode_example_of_random_bytes(data):
    _decodes_or_refuses(data)


@pytest.mark.fault("traceback", "decode_example")
@FUZZ
@given(feature_dicts)
def test_decode_example_round_trip(features):
    assert decode_example(encode_example(features.items())) == {k: [v] for k, v in features.items()}


@pytest.mark.fault("traceback", "decode_example")
@FUZZ
@given(feature_dicts, st.data())
def test_decode_example_of_mutated_examples(features, data):
    _decodes_or_refuses(_mutated_bytes(encode_example(features.items()), data))


# --- manifests, and verify / inspect behind them -----------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
# Values a hand edit or a bit rot could leave where a manifest holds another type.
odd_values = json_values | st.sampled_from([10**400, -1, 2**64, float("nan"), float("inf"), "", "0" * 64, [], {}, True])


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A real output folder (made by segprep convert folder) and its train manifest as a document."""
    from segprep.cli.main import main

    base = tmp_path_factory.mktemp("fuzz-manifest")
    registry = base / "registry.yaml"
    shutil.copy(REPO / "dataset_registry.yaml", registry)
    data = make_folder_dataset(base / "data", count=6)
    out = base / "out"
    args = ["convert", "folder", "--root", str(data), "--out", str(out), "--name", "fuzz", "--workers", "1", "-q"]
    result = CliRunner().invoke(main, args, env={"SEGPREP_REGISTRY": str(registry)}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out, json.loads((out / "train.manifest.json").read_text())


def _parses_or_refuses(data: bytes) -> dict[str, Any] | None:
    try:
        return parse_manifest(data, "m.manifest.json")
    except ManifestError as exc:
        assert str(exc).startswith("m.manifest.json: ") and "\n" not in str(exc)
        return None


@pytest.mark.fault("traceback", "manifest reader")
@FUZZ
@given(st.binary(max_size=200))
@example(b"[" * 100_000)  # absurd nesting: RecursionError
@example(b'{"format": "segprep-manifest/1", "split": "x", "num_records": ' + b"9" * 5000 + b"}")  # over Python's int limit
@example(b'{"format": "segprep-manifest/1", "split": "\\n"}')  # a line break in the split: was a two-line message
def test_manifest_of_random_bytes(data):
    _parses_or_refuses(data)


@pytest.mark.fault("traceback", "manifest reader")
@FUZZ
@given(odd_values)
def test_manifest_of_random_json(value):
    _parses_or_refuses(json.dumps(value).encode())
    _parses_or_refuses(json.dumps({"format": "segprep-manifest/1", "split": "train", "x": value}).encode())


def _similar(value: Any, data: st.DataObject) -> Any:
    """A value of the same JSON type, so that a mutated document often stays well-formed."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return data.draw(st.integers(-2, 64) | st.integers())
    if isinstance(value, str):
        return data.draw(st.sampled_from(["0" * 64, "png", "jpeg", "train", "val", "\ud800"]) | st.text(max_size=8))
    return data.draw(odd_values)


def _mutate(document: Any, data: st.DataObject) -> Any:
    """The document with one value somewhere inside it replaced (often by one of the same type) or deleted."""
    if not isinstance(document, dict | list) or not document or data.draw(st.integers(0, 5)) == 0:
        return _similar(document, data) if data.draw(st.booleans()) else data.draw(odd_values)
    keys = list(document) if isinstance(document, dict) else list(range(len(document)))
    key = data.draw(st.sampled_from(keys))
    copy = dict(document) if isinstance(document, dict) else list(document)
    if data.draw(st.integers(0, 7)) == 0:
        del copy[key]
    else:
        copy[key] = _mutate(document[key], data)
    return copy


@pytest.mark.fault("traceback", "manifest reader", "verify", "inspect")
@FUZZ
@given(st.data())
def test_verify_and_inspect_survive_any_mutated_manifest(converted, data):
    """Whatever a manifest holds, verify and inspect end with their report, never an exception."""
    from segprep.inspect import inspect_folder
    from segprep.parallel import OrderedPool
    from segprep.verify import verify_output

    out, pristine = converted
    document = pristine
    for _ in range(data.draw(st.integers(1, 3))):
        document = _mutate(document, data)
    text = json.dumps(document)
    if data.draw(st.booleans()):
        text = text[: data.draw(st.integers(0, len(text)))]
    manifest = out / "train.manifest.json"
    try:
        manifest.write_text(text)
        parsed = _parses_or_refuses(text.encode())
        with OrderedPool(1) as pool:
            report = verify_output(out, pool)
        assert parsed is not None or report.problems  # a manifest the reader refuses fails verify
        assert all("\n" not in p for p in report.problems)
        inspected = inspect_folder(out)
        assert "train" in inspected.splits
    finally:
        manifest.write_text(json.dumps(pristine))


@pytest.mark.fault("traceback", "verify", "inspect")
@FUZZ
@given(st.data())
def test_verify_and_inspect_survive_records_with_valid_crcs(converted, data):
    """A shard whose records were altered and re-framed (CRCs right, contents wrong) is reported, not a crash."""
    from segprep.formats.tfrecord import iter_records
    from segprep.inspect import scan_split
    from segprep.parallel import OrderedPool
    from segprep.verify import verify_output

    out, _ = converted
    shard = out / "train-00000-of-00004.tfrecord"
    original = shard.read_bytes()
    records = list(iter_records(shard))
    index = data.draw(st.integers(0, len(records) - 1))
    before = records[index]
    records[index] = _mutated_bytes(before, data)
    try:
        same_content = decode_example(records[index]) == decode_example(before)  # e.g. an unknown field added
    except ExampleDecodeError:
        same_content = False
    try:
        shard.write_bytes(b"".join(frame_record(r) for r in records))
        with OrderedPool(1) as pool:
            report = verify_output(out, pool)
        assert all("\n" not in p for p in report.problems)
        if records[index] == before:
            assert not report.problems, report.problems
        elif not same_content:
            assert report.problems
        stats = scan_split("train", [shard])
        assert stats.records + len(stats.problems) >= 1
    finally:
        shard.write_bytes(original)


# --- labelme JSON --------------------------------------------------------------------------------


def _png_b64(mode: str, size: tuple[int, int]) -> str:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


IMAGE_B64 = _png_b64("RGB", (6, 4))
MASK_B64 = _png_b64("1", (3, 2))

weird_numbers = (
    st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([10**400, -(10**400), 0, -1, 1e308, -0.0])
)
# Mostly coordinates on or near the 6x4 image, now and then anything at all.
numbers = st.integers(0, 9).flatmap(lambda k: weird_numbers if k == 0 else st.integers(-3, 9) | st.floats(-3, 9))
masks = (
    st.sampled_from([MASK_B64, IMAGE_B64, "", "not base64!", "ü", base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()])
    | st.binary(max_size=60).map(lambda b: base64.b64encode(b).decode())
    | st.binary(min_size=1, max_size=30).map(lambda b: base64.b64encode(base64.b64decode(MASK_B64)[:20] + b).decode())
)
image_data = st.integers(0, 3).flatmap(
    lambda k: st.just(IMAGE_B64)
    if k
    else st.sampled_from([_png_b64("I;16", (3, 3)), _png_b64("RGBA", (2, 2)), _png_b64("P", (6, 4)), "", "é", "AAAA"])
    | st.binary(max_size=80).map(lambda b: base64.b64encode(b).decode())
    | st.binary(min_size=8, max_size=60).map(lambda b: base64.b64encode(base64.b64decode(IMAGE_B64)[:16] + b).decode())
)
image_paths = st.sampled_from(["img.png", "img.png", "missing.png", "sub", "fifo", "sub\\..\\img.png", "", "/dev/zero", "a\x00b.png"]) | st.text(max_size=12)


@st.composite
def labelme_shapes(draw: Any) -> dict[str, Any]:
    """A shape labelme could have written (right point count for its type), before any mutation."""
    shape_type = draw(st.sampled_from(sorted(POINT_COUNTS)))
    low, high = POINT_COUNTS[shape_type]
    count = draw(st.integers(low, high if high is not None else low + 3))
    shape = {
        "label": draw(st.sampled_from(["a", "b", "_background_"]) | st.text(max_size=6)),
        "points": draw(st.lists(st.lists(numbers, min_size=2, max_size=2), min_size=count, max_size=count)),
        "group_id": draw(st.none() | st.integers(0, 3)),
        "description": "",
        "shape_type": shape_type,
        "flags": draw(st.dictionaries(st.text(max_size=3), st.booleans(), max_size=2)),
    }
    if shape_type == "mask" or draw(st.integers(0, 9)) == 0:
        shape["mask"] = draw(masks)
    return shape


@st.composite
def labelme_documents(draw: Any) -> dict[str, Any]:
    """A labelme document (embedded image or a path next to the JSON), then a few random mutations."""
    document: dict[str, Any] = {"version": "5.5.0", "flags": {}, "shapes": draw(st.lists(labelme_shapes(), max_size=4))}
    document["imagePath"] = draw(image_paths)
    document["imageData"] = draw(st.none() | image_data)
    if draw(st.booleans()):
        document["imageHeight"], document["imageWidth"] = draw(st.sampled_from([(4, 6), (4.0, 6.0), (6, 4)]) | st.tuples(numbers, numbers))
    data = draw(st.data())
    for _ in range(draw(st.integers(0, 3))):
        document = _mutate(document, data)
    return document


@pytest.fixture(scope="module")
def labelme_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with an image, a subfolder and a FIFO that imagePath may name."""
    folder = tmp_path_factory.mktemp("fuzz-labelme")
    (folder / "img.png").write_bytes(base64.b64decode(IMAGE_B64))
    (folder / "sub").mkdir()
    os.mkfifo(folder / "fifo")
    return folder


def _labelme_parses_or_refuses(data: bytes, folder: Path) -> LabelmeFile | None:
    try:
        return parse_labelme(data, folder / "a.json")
    except LabelmeFormatError as exc:
        assert "\n" not in str(exc), str(exc)
        return None


@pytest.mark.fault("traceback", "labelme reader")
@FUZZ
@given(st.binary(max_size=200))
@example(b"[" * 100_000)  # absurd nesting: was a RecursionError
@example(b'{"shapes": [], "imageHeight": ' + b"1" * 5000 + b"}")  # over Python's int limit: was a ValueError
def test_labelme_of_random_bytes(labelme_dir, data):
    _labelme_parses_or_refuses(data, labelme_dir)


@pytest.mark.fault("traceback", "labelme reader")
@FUZZ
@given(labelme_documents())
@example({"shapes": [{"label": "a", "shape_type": "point", "points": [[10**400, 1]]}], "imageData": IMAGE_B64})  # was OverflowError
@example({"shapes": [], "imageData": IMAGE_B64, "imageHeight": 10**400})  # '{:g}' of a huge int: was OverflowError
@example({"shapes": [], "imageData": "é"})  # non-ASCII base64: was ValueError
@example({"shapes": [], "imagePath": "a\x00b.png"})  # NUL in the path: was ValueError
@example({"shapes": [], "imagePath": "fifo"})  # a FIFO: the read hung forever
@example({"shapes": [], "imagePath": "/dev/zero"})  # an endless device: the read never ended
@example({"shapes": [], "imageData": base64.b64encode(base64.b64decode(IMAGE_B64)[:40]).decode()})  # a truncated PNG (was refused)
def test_labelme_of_random_documents(labelme_dir, document):
    parsed = _labelme_parses_or_refuses(json.dumps(document).encode(), labelme_dir)
    if parsed is None:
        return
    assert parsed.image.format in ("png", "jpeg") and parsed.image.width > 0
    assert all(shape.shape_type in POINT_COUNTS for shape in parsed.shapes)
    # What `segprep labelme` does next; its per-file guard turns these error types into a reason.
    try:
        rasterize_shapes(parsed.shapes, {s.label: 1 for s in parsed.shapes}, parsed.image.height, parsed.image.width)
    except (ValueError, OverflowError):
        pass
