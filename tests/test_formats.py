"""Byte formats against the reference decoders: PIL for images and PNGs, TensorFlow for Examples and TFRecords."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import jpeg_bytes, png_bytes, random_image
from PIL import Image

from segprep.formats.example import decode_example, encode_example
from segprep.formats.images import ImageFormatError, read_image_info, sniff_format
from segprep.formats.png import encode_index_png
from segprep.formats.tfrecord import CorruptRecordError, frame_record, iter_records
from segprep import schema


@pytest.mark.parametrize("size", [(1, 1), (37, 23), (480, 360)])
def test_image_info_matches_pil_for_png_and_jpeg(size):
    rng = np.random.default_rng(1)
    image = random_image(rng, *size)
    for data, fmt in ((png_bytes(image), "png"), (jpeg_bytes(image), "jpeg")):
        info = read_image_info(data)
        assert info.format == fmt == sniff_format(data)
        assert (info.width, info.height) == Image.open(io.BytesIO(data)).size == size
        assert info.channels == 3


def test_image_info_progressive_and_grey_jpeg():
    rng = np.random.default_rng(2)
    buffer = io.BytesIO()
    Image.fromarray(random_image(rng, 40, 30)).save(buffer, "JPEG", progressive=True)
    assert (read_image_info(buffer.getvalue()).width, read_image_info(buffer.getvalue()).height) == (40, 30)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (30, 40), dtype=np.uint8)).save(buffer, "JPEG")
    assert read_image_info(buffer.getvalue()).channels == 1


@pytest.mark.parametrize("maker", [png_bytes, jpeg_bytes])
def test_truncated_images_are_refused(maker):
    data = maker(random_image(np.random.default_rng(3), 64, 48))
    for cut in (len(data) // 2, len(data) - 3, 20):
        with pytest.raises(ImageFormatError, match="truncated|corrupt"):
            read_image_info(data[:cut])


def test_corrupt_png_chunk_fails_crc():
    data = bytearray(png_bytes(random_image(np.random.default_rng(4), 32, 32)))
    data[60] ^= 0xFF  # inside the IDAT payload
    with pytest.raises(ImageFormatError, match="bad CRC"):
        read_image_info(bytes(data))


def test_non_image_is_refused_with_its_first_bytes():
    with pytest.raises(ImageFormatError, match="not a JPEG or PNG .*47 49 46 38"):
        read_image_info(b"GIF89a....")
    with pytest.raises(ImageFormatError, match="empty file"):
        read_image_info(b"")


def test_index_png_decodes_identically_with_pil_and_tensorflow():
    import tensorflow as tf

    rng = np.random.default_rng(5)
    labels = rng.integers(0, 256, (33, 47), dtype=np.uint8)
    labels[:10] = 7  # long runs, as in real labels
    data = encode_index_png(labels)
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "L"
        np.testing.assert_array_equal(np.asarray(image), labels)
    np.testing.assert_array_equal(tf.io.decode_png(data, channels=1).numpy()[..., 0], labels)
    assert read_image_info(data).channels == 1


def test_index_png_rejects_wrong_arrays():
    with pytest.raises(ValueError):
        encode_index_png(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError):
        encode_index_png(np.zeros((4, 4), np.uint16))


FEATURES = [
    (schema.IMAGE, b"\x00\x01binary\xff"),
    (schema.FILENAME, b"aachen_000000_000019"),
    (schema.IMAGE_FORMAT, b"png"),
    (schema.HEIGHT, 360),
    (schema.WIDTH, 480),
    (schema.CHANNELS, 3),
    (schema.LABEL, b"\x89PNG..."),
    (schema.LABEL_FORMAT, b"png"),
]


def test_example_parsed_by_tensorflow_field_by_field():
    import tensorflow as tf

    payload = encode_example(FEATURES + [("big", 2**40), ("negative", -5)])
    spec = {k: tf.io.FixedLenFeature((), tf.string if isinstance(v, bytes) else tf.int64) for k, v in FEATURES}
    spec["big"] = spec["negative"] = tf.io.FixedLenFeature((), tf.int64)
    parsed = tf.io.parse_single_example(payload, spec)
    for key, value in FEATURES + [("big", 2**40), ("negative", -5)]:
        assert parsed[key].numpy() == value, key
    # On the wire the keys come in the order given (protobuf maps do not keep order once parsed).
    assert list(decode_example(payload))[:8] == [k for k, _ in FEATURES]
    assert set(tf.train.Example.FromString(payload).features.feature) == {k for k, _ in FEATURES} | {"big", "negative"}


def test_decode_example_reads_tensorflow_serialisation():
    import tensorflow as tf

    feature = {
        "b": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"x", b"yz"])),
        "i": tf.train.Feature(int64_list=tf.train.Int64List(value=[1, -2, 2**50])),
        "f": tf.train.Feature(float_list=tf.train.FloatList(value=[0.5, -1.25])),
    }
    data = tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
    decoded = decode_example(data)
    assert decoded["b"] == [b"x", b"yz"]
    assert decoded["i"] == [1, -2, 2**50]
    assert decoded["f"] == [0.5, -1.25]
    assert decode_example(encode_example(FEATURES)) == {k: [v] for k, v in FEATURES}


def test_tfrecord_framing_read_by_tensorflow_and_back(tmp_path):
    import tensorflow as tf

    payloads = [b"", b"a", bytes(range(256)) * 300]
    path = tmp_path / "x.tfrecord"
    path.write_bytes(b"".join(frame_record(p) for p in payloads))
    assert [r.numpy() for r in tf.data.TFRecordDataset(str(path))] == payloads
    theirs = tmp_path / "tf.tfrecord"
    with tf.io.TFRecordWriter(str(theirs)) as writer:
        for p in payloads:
            writer.write(p)
    assert theirs.read_bytes() == path.read_bytes()
    assert list(iter_records(theirs)) == payloads


def test_corrupt_tfrecord_is_reported_with_offset(tmp_path):
    path = tmp_path / "x.tfrecord"
    data = bytearray(frame_record(b"hello") + frame_record(b"world"))
    data[len(frame_record(b"hello")) + 14] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptRecordError, match="bad data CRC in record at byte 21"):
        list(iter_records(path))
    path.write_bytes(frame_record(b"hello")[:-2])
    with pytest.raises(CorruptRecordError, match="truncated"):
        list(iter_records(path))


def test_index_png_lookup_is_applied():
    labels = np.arange(60, dtype=np.uint8).reshape(6, 10) % 13
    table = np.arange(256, dtype=np.uint8)
    table[11] = 255
    with Image.open(io.BytesIO(encode_index_png(labels, table))) as image:
        np.testing.assert_array_equal(np.asarray(image), np.where(labels == 11, 255, labels))
