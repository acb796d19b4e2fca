"""Poison is refused before it is stored: JPEG scans decoded, every PNG chunk CRC checked, --decode-images.

Each damaged file here passes the structural check that was all segprep ran before (shown in the
test), so only the payload checks stand between it and a shard that crashes training later.
"""

from __future__ import annotations

import dataclasses
import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import png_bytes
from faultkit import assert_refused, assert_unchanged, error_lines, finished_looking, snapshot
from PIL import Image, ImageFile

from segprep.formats.images import ImageFormatError, read_image_info
from segprep.formats.payload import (
    JPEG_FULL_DECODE,
    JPEG_SCAN_DECODE,
    PNG_INFLATE,
    PayloadChecks,
    check_image_payload,
    check_jpeg_scans,
    check_png_image_data,
    jpeg_scan_layout,
)
from segprep.ops.labels import LabelError, decode_label

# --------------------------------------------------------------------------- building damaged files


def natural_image(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """Gradients plus noise: JPEG data with many Huffman codes and some stuffed 0xFF bytes."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], -1)
    return np.clip(base + rng.integers(-40, 40, (height, width, 3)), 0, 255).astype(np.uint8)


def encode_jpeg(array: np.ndarray, **options) -> bytes:  # type: ignore[no-untyped-def]
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", **{"quality": 90, **options})
    return buffer.getvalue()


def scan_bounds(data: bytes) -> tuple[int, int]:
    """[start, end) of the entropy-coded data of a single-scan JPEG."""
    sos = data.index(b"\xff\xda")
    (length,) = struct.unpack_from(">H", data, sos + 2)
    return sos + 2 + length, jpeg_scan_layout(data).segment_ends[-1]


def garble_stuffed_byte(data: bytes) -> bytes:
    """Flip the 0x00 after a 0xFF in the middle of the scan: libjpeg (and TensorFlow) fail outright."""
    start, end = scan_bounds(data)
    stuffed = [i for i in range(start, end - 1) if data[i] == 0xFF and data[i + 1] == 0]
    assert stuffed, "test image has no stuffed byte"
    middle = min(stuffed, key=lambda i: abs(i - (start + end) // 2))
    garbled = bytearray(data)
    garbled[middle + 1] = 0x5A
    return bytes(garbled)


def garble_zero_run(data: bytes) -> bytes:
    """Zero a quarter of the scan in its middle; markers and EOI stay. libjpeg only warns about this."""
    start, end = scan_bounds(data)
    at, length = start + (end - start) // 3, (end - start) // 4
    return data[:at] + bytes(length) + data[at + length :]


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, pos = [], 8
    while pos < len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        chunks.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


def build_png(chunks: list[tuple[bytes, bytes]]) -> bytes:
    """A PNG from (type, payload) chunks, each with a correct CRC."""
    body = b"".join(struct.pack(">I", len(p)) + k + p + struct.pack(">I", zlib.crc32(k + p)) for k, p in chunks)
    return b"\x89PNG\r\n\x1a\n" + body


def with_image_data(data: bytes, compressed: bytes) -> bytes:
    """The PNG with its IDAT chunks replaced by one IDAT of `compressed` (valid CRCs everywhere)."""
    chunks = png_chunks(data)
    first = next(i for i, (k, _) in enumerate(chunks) if k == b"IDAT")
    rest = [c for c in chunks[first:] if c[0] != b"IDAT"]
    return build_png(chunks[:first] + [(b"IDAT", compressed)] + rest)


def raw_image_data(data: bytes) -> bytes:
    return zlib.decompress(b"".join(p for k, p in png_chunks(data) if k == b"IDAT"))


def broken_zlib_stream(data: bytes) -> bytes:
    """Flip bits in the middle of the zlib stream, then recompute the CRCs: chunk checks see nothing."""
    compressed = bytearray(b"".join(p for k, p in png_chunks(data) if k == b"IDAT"))
    for i in range(len(compressed) // 2, len(compressed) // 2 + 8):
        compressed[i] ^= 0xA5
    return with_image_data(data, bytes(compressed))


def break_crc(data: bytes, kind: bytes = b"IDAT") -> bytes:
    """Flip one bit of the stored CRC of the first `kind` chunk."""
    pos = 8
    while True:
        length, found = struct.unpack_from(">I4s", data, pos)
        if found == kind:
            crc_at = pos + 8 + length
            return data[:crc_at] + bytes([data[crc_at] ^ 0x01]) + data[crc_at + 1 :]
        pos += 12 + length


# --------------------------------------------------------------------------- the folder dataset


def convert(run_cli, root: Path, out: Path, *extra: str):  # type: ignore[no-untyped-def]
    return run_cli("convert", "folder", "--root", root, "--out", out, "--name", "toy", "--split", "train=1", "--num-shards", "2", *extra)


def replace_sample(root: Path, stem: str, image: bytes, suffix: str) -> Path:
    """Put `image` in place of the sample's image, with an all-zero index label of the same size."""
    for old in (root / "images").glob(stem + ".*"):
        old.unlink()
    info = read_image_info(image)
    (root / "labels" / f"{stem}.png").write_bytes(png_bytes(np.zeros((info.height, info.width), np.uint8), "L"))
    path = root / "images" / f"{stem}{suffix}"
    path.write_bytes(image)
    return path


def manifest(out: Path, split: str = "train") -> dict:
    return json.loads((out / f"{split}.manifest.json").read_text())


def assert_refused_cleanly(result, out: Path, before, root: Path, path: Path, reason: str) -> None:  # type: ignore[no-untyped-def]
    """Exit 1, one error line naming the file and the reason, nothing finished-looking, inputs unchanged."""
    assert_refused(result, path)
    lines = [line for line in error_lines(result) if str(path) in line]
    assert any(reason in line for line in lines), lines
    assert finished_looking(out) == []
    assert_unchanged(before, root)


# --------------------------------------------------------------------------- JPEG scans


GARBLES = [garble_stuffed_byte, garble_zero_run]


@pytest.mark.fault("poison", "convert")
@pytest.mark.parametrize("garble", GARBLES, ids=lambda f: f.__name__)
def test_a_garbled_jpeg_scan_is_refused(run_cli, folder_dataset, tmp_path, garble):
    garbled = garble(encode_jpeg(natural_image()))
    read_image_info(garbled)  # the structural check alone would have stored it
    path = replace_sample(folder_dataset, "s003", garbled, ".jpg")
    before = snapshot(folder_dataset)
    out = tmp_path / "out"
    result = convert(run_cli, folder_dataset, out)
    assert_refused_cleanly(result, out, before, folder_dataset, path, "corrupt JPEG data")


@pytest.mark.fault("poison", "convert", "tfrecord")
def test_what_tensorflow_rejects_is_refused(folder_dataset):
    """The garbled scan that made `segtrain fit` crash in tf.io.decode_jpeg."""
    tf = pytest.importorskip("tensorflow")
    garbled = garble_stuffed_byte(encode_jpeg(natural_image()))
    read_image_info(garbled)
    with pytest.raises(tf.errors.InvalidArgumentError):
        tf.io.decode_jpeg(garbled, channels=3)
    with pytest.raises(ImageFormatError, match=r"corrupt JPEG data \(bytes ff 5a are neither a stuffed byte nor a marker\)"):
        check_jpeg_scans(garbled)


@pytest.mark.fault("poison", "convert", "tfrecord")
@pytest.mark.parametrize("full_size", [False, True], ids=["default", "decode-images"])
def test_damage_libjpeg_only_warns_about_is_refused(full_size):
    """A plain decode (Pillow, TensorFlow) gives grey garbage without an error; the scan-end checks refuse it."""
    garbled = garble_zero_run(encode_jpeg(natural_image()))
    with Image.open(io.BytesIO(garbled)) as image:
        image.load()  # libjpeg's warning is silent: a plain decode "succeeds"
    with pytest.raises(ImageFormatError, match=r"corrupt JPEG data \(.*(extraneous bytes|premature end)"):
        check_jpeg_scans(garbled, full_size=full_size)


@pytest.mark.fault("poison", "convert", "tfrecord")
def test_a_scan_that_runs_past_its_data_is_refused():
    """The scan's last third is missing, EOI is there: libjpeg pads with grey and warns 'premature end of data segment'."""
    data = encode_jpeg(natural_image())
    start, end = scan_bounds(data)
    cut = data[: end - (end - start) // 3] + data[end:]
    read_image_info(cut)
    with Image.open(io.BytesIO(cut)) as image:
        image.load()  # a plain decode "succeeds"
    with pytest.raises(ImageFormatError, match=r"premature end of data segment"):
        check_jpeg_scans(cut)


VALID_JPEGS = {
    "baseline 4:2:0": lambda: encode_jpeg(natural_image()),
    "4:4:4 quality 100": lambda: encode_jpeg(natural_image(), subsampling=0, quality=100),
    "quality 5": lambda: encode_jpeg(natural_image(), quality=5),
    "optimized tables": lambda: encode_jpeg(natural_image(), optimize=True),
    "progressive": lambda: encode_jpeg(natural_image(), progressive=True),
    "restart markers": lambda: encode_jpeg(natural_image(), restart_marker_blocks=2),
    "greyscale": lambda: encode_jpeg(natural_image()[..., 0]),
    "1x1": lambda: encode_jpeg(natural_image(1, 1)),
    "17x9": lambda: encode_jpeg(natural_image(9, 17)),
    "bytes after the end-of-image marker": lambda: encode_jpeg(natural_image()) + b"trailer\x00\x00",
    "MPO (two frames)": lambda: mpo_bytes(),
}


def mpo_bytes() -> bytes:
    """A multi-picture file as some cameras write: a JPEG whose first frame decoders read."""
    buffer = io.BytesIO()
    first, second = Image.fromarray(natural_image()), Image.fromarray(natural_image(seed=1))
    first.save(buffer, "MPO", save_all=True, append_images=[second])
    return buffer.getvalue()


@pytest.mark.parametrize("full_size", [False, True], ids=["default", "decode-images"])
@pytest.mark.parametrize("kind", VALID_JPEGS)
def test_valid_jpegs_of_every_kind_pass(kind, full_size):
    check_jpeg_scans(VALID_JPEGS[kind](), full_size=full_size)


@pytest.mark.fault("poison", "convert", "tfrecord")
def test_a_12_bit_jpeg_is_refused_as_unsupported():
    data = encode_jpeg(natural_image())
    info = dataclasses.replace(read_image_info(data), bit_depth=12)  # as the frame header of a 12-bit JPEG says
    with pytest.raises(ImageFormatError, match=r"unsupported JPEG \(12-bit samples"):
        check_image_payload(data, info, PayloadChecks())


@pytest.mark.fault("poison", "convert")
def test_skip_invalid_writes_the_rest_and_records_the_reason(run_cli, folder_dataset, tmp_path):
    path = replace_sample(folder_dataset, "s005", garble_zero_run(encode_jpeg(natural_image())), ".jpg")
    out = tmp_path / "out"
    result = convert(run_cli, folder_dataset, out, "--skip-invalid")
    assert result.exit_code == 0, result.output
    written = manifest(out)
    assert written["num_records"] == 9
    assert [(s["path"], s["reason"].split(" (")[0]) for s in written["skipped"]] == [(str(path), "corrupt JPEG data")]
    assert str(path) not in {s["image"]["path"] for s in written["samples"]}


# --------------------------------------------------------------------------- PNG chunk CRCs, images and labels


@pytest.mark.fault("poison", "convert")
def test_a_bad_crc_in_an_image_is_refused(run_cli, folder_dataset, tmp_path):
    path = folder_dataset / "images" / "s002.png"
    path.write_bytes(break_crc(path.read_bytes()))
    before = snapshot(folder_dataset)
    out = tmp_path / "out"
    result = convert(run_cli, folder_dataset, out)
    assert_refused_cleanly(result, out, before, folder_dataset, path, "corrupt PNG (bad CRC in chunk 'IDAT')")


@pytest.mark.fault("poison", "convert")
def test_a_bad_idat_crc_in_a_label_is_refused(run_cli, folder_dataset, tmp_path):
    """An index label is stored byte for byte, and Pillow never checks IDAT CRCs: the chunk walk must."""
    path = folder_dataset / "labels" / "s004.png"  # a single-channel index PNG: stored unchanged if accepted
    damaged = break_crc(path.read_bytes())
    with Image.open(io.BytesIO(damaged)) as image:
        image.load()  # Pillow decodes it without a word
    path.write_bytes(damaged)
    before = snapshot(folder_dataset)
    out = tmp_path / "out"
    result = convert(run_cli, folder_dataset, out)
    assert_refused_cleanly(result, out, before, folder_dataset, path, "bad CRC in chunk 'IDAT'")


@pytest.mark.fault("poison", "convert")
def test_a_bad_crc_in_an_ancillary_label_chunk_is_refused():
    label = png_bytes(np.zeros((4, 5), np.uint8), "L")
    chunks = png_chunks(label)
    with_text = build_png(chunks[:1] + [(b"tEXt", b"Comment\x00hello")] + chunks[1:])
    with pytest.raises(LabelError, match=r"bad CRC in chunk 'tEXt'"):
        decode_label(break_crc(with_text, b"tEXt"))


@pytest.mark.fault("poison", "convert")
def test_a_label_cut_short_inside_its_zlib_stream_is_refused_even_if_pillow_is_lenient(monkeypatch):
    """Another library may set ImageFile.LOAD_TRUNCATED_IMAGES; a short label must not be padded with zeros."""
    label = png_bytes(np.full((12, 10), 3, np.uint8), "L")
    short = with_image_data(label, zlib.compress(raw_image_data(label)[: 11 * 6]))  # 6 of 12 rows
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(LabelError, match="cannot decode label PNG"):
        decode_label(short)


# --------------------------------------------------------------------------- --decode-images


@pytest.mark.fault("poison", "convert")
def test_a_broken_zlib_stream_passes_by_default_and_is_refused_with_decode_images(run_cli, folder_dataset, tmp_path):
    path = folder_dataset / "images" / "s002.png"
    path.write_bytes(broken_zlib_stream(path.read_bytes()))
    read_image_info(path.read_bytes())  # every CRC is valid
    before = snapshot(folder_dataset)

    default_out = tmp_path / "default"
    result = convert(run_cli, folder_dataset, default_out)
    assert result.exit_code == 0, result.output  # the documented trade-off of the default checks
    assert str(path) in {s["image"]["path"] for s in manifest(default_out)["samples"]}

    out = tmp_path / "decoded"
    result = convert(run_cli, folder_dataset, out, "--decode-images")
    assert_refused_cleanly(result, out, before, folder_dataset, path, "corrupt PNG image data")


@pytest.mark.fault("poison", "tfrecord")
def test_tfrecord_decode_images_refuses_a_broken_zlib_stream(run_cli, folder_dataset, tmp_path):
    path = folder_dataset / "images" / "s000.png"
    path.write_bytes(broken_zlib_stream(path.read_bytes()))
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "train.txt").write_text("".join(f"images/s{i:03d}.{'jpg' if i % 2 else 'png'} labels/s{i:03d}.png\n" for i in range(4)))
    before = snapshot(folder_dataset, lists)
    out = tmp_path / "out"
    result = run_cli("tfrecord", lists / "train.txt", "--dataset", "pascal_voc_seg", "--root", folder_dataset, "--out", out, "--decode-images")
    assert_refused(result, path)
    assert any("corrupt PNG image data" in line for line in error_lines(result))
    assert finished_looking(out) == []
    assert_unchanged(before, folder_dataset, lists)


@pytest.mark.fault("poison", "convert")
def test_the_manifest_records_the_checks_and_other_checks_rewrite(run_cli, folder_dataset, tmp_path):
    out = tmp_path / "out"
    assert convert(run_cli, folder_dataset, out).exit_code == 0
    first = manifest(out)
    assert first["parameters"]["checks"] == PayloadChecks().manifest_entry()
    assert JPEG_SCAN_DECODE in first["parameters"]["checks"]["image"]
    assert "png-chunk-crc" in first["parameters"]["checks"]["label"]

    assert convert(run_cli, folder_dataset, out).exit_code == 0
    assert manifest(out)["fingerprint"] == first["fingerprint"]  # same checks: up to date

    assert convert(run_cli, folder_dataset, out, "--decode-images").exit_code == 0
    second = manifest(out)
    assert second["parameters"]["checks"] == PayloadChecks(decode_images=True).manifest_entry()
    assert {PNG_INFLATE, JPEG_FULL_DECODE} <= set(second["parameters"]["checks"]["image"])
    assert second["fingerprint"] != first["fingerprint"]
    assert second["num_records"] == first["num_records"] == 10


def png_image(array: np.ndarray, **options) -> bytes:  # type: ignore[no-untyped-def]
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG", **options)
    return buffer.getvalue()


def too_much_data(data: bytes) -> bytes:
    raw = raw_image_data(data)
    return with_image_data(data, zlib.compress(raw + raw[:20]))


def too_little_data(data: bytes) -> bytes:
    return with_image_data(data, zlib.compress(raw_image_data(data)[:-20]))


def cut_stream(data: bytes) -> bytes:
    compressed = zlib.compress(raw_image_data(data))
    return with_image_data(data, compressed[: len(compressed) // 2])


def data_after_stream(data: bytes) -> bytes:
    return with_image_data(data, zlib.compress(raw_image_data(data)) + b"junk")


def bad_filter_type(data: bytes) -> bytes:
    raw = bytearray(raw_image_data(data))
    raw[0] = 9  # the first row's filter type
    return with_image_data(data, zlib.compress(bytes(raw)))


STREAM_DAMAGE = {
    broken_zlib_stream: "corrupt PNG image data (Error",
    too_much_data: "more than the",
    too_little_data: "corrupt PNG image data (",
    cut_stream: "zlib stream cut short",
    data_after_stream: "4 bytes after the end of the zlib stream",
    bad_filter_type: "unknown filter type 9 on row 0",
}


@pytest.mark.fault("poison", "convert", "tfrecord")
@pytest.mark.parametrize("damage", STREAM_DAMAGE, ids=lambda f: f.__name__)
def test_decode_images_sees_inside_the_zlib_stream(damage):
    damaged = damage(png_image(natural_image(20, 30)))
    info = read_image_info(damaged)  # chunks and CRCs are fine
    with pytest.raises(ImageFormatError, match=STREAM_DAMAGE[damage].replace("(", r"\(")):
        check_png_image_data(damaged, info)


VALID_PNGS = {
    "rgb": lambda: png_image(natural_image(20, 30)),
    "interlaced rgb": lambda: interlaced_png(),
    "rgba": lambda: png_image(np.dstack([natural_image(5, 9), np.full((5, 9), 200, np.uint8)])),
    "grey 16-bit": lambda: png_image(np.arange(35, dtype=np.uint16).reshape(5, 7) * 1000),
    "1-bit": lambda: png_bytes_mode(np.arange(35).reshape(5, 7) % 2 == 0, "1"),
    "palette": lambda: png_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4), "P"),
}


def png_bytes_mode(array: np.ndarray, mode: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).convert(mode).save(buffer, "PNG")
    return buffer.getvalue()


def interlaced_png() -> bytes:
    """An Adam7 PNG built by hand (Pillow does not write interlaced PNGs): 13x7 RGB, filter 0 rows."""
    width, height = 13, 7
    image = natural_image(height, width)
    passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
    raw = b"".join(
        b"\x00" + image[y, x0::dx].tobytes() for x0, y0, dx, dy in passes if x0 < width for y in range(y0, height, dy)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 1)
    return build_png([(b"IHDR", header), (b"IDAT", zlib.compress(raw)), (b"IEND", b"")])


@pytest.mark.parametrize("kind", VALID_PNGS)
def test_decode_images_passes_valid_pngs_of_every_kind(kind):
    data = VALID_PNGS[kind]()
    check_png_image_data(data, read_image_info(data))


def test_the_interlaced_test_png_is_what_pillow_decodes():
    with Image.open(io.BytesIO(interlaced_png())) as image:
        assert np.array_equal(np.asarray(image), natural_image(7, 13))
