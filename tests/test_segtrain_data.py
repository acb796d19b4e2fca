"""segtrain.data: records parsed by content, and augmentation that keeps image and label aligned."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from conftest import make_folder_dataset

from segtrain.data import (
    AugmentConfig,
    augment,
    eval_dataset,
    record_files,
    train_dataset,
)
from segprep import schema

BLOCK = 16


def coordinate_pair(height: int, width: int):
    """An image whose red/green channels encode the 16x16 block a pixel is in, and a label that is a function of the block."""
    ys, xs = np.mgrid[0:height, 0:width]
    by, bx = ys // BLOCK, xs // BLOCK
    image = np.stack([bx * 20 + 5, by * 20 + 5, np.full_like(bx, 50)], axis=-1).astype(np.uint8)
    label = ((bx + 3 * by) % 7).astype(np.uint8)
    return image, label


def label_from_image(image: np.ndarray) -> np.ndarray:
    bx = np.round((image[..., 0] - 5) / 20).astype(int)
    by = np.round((image[..., 1] - 5) / 20).astype(int)
    return (bx + 3 * by) % 7


def test_augmentation_keeps_image_and_label_aligned():
    tf.random.set_seed(0)
    image, label = coordinate_pair(96, 128)
    config = AugmentConfig(crop_height=80, crop_width=112, ignore_label=255)
    saw_padding = saw_flip_or_scale = False
    for _ in range(24):
        out_image, out_label = augment(tf.constant(image), tf.constant(label[..., None]), config)
        out_image, out_label = out_image.numpy(), out_label.numpy()[..., 0]
        assert out_image.shape == (80, 112, 3) and out_label.shape == (80, 112)
        padded = out_label == 255
        saw_padding |= bool(padded.any())
        # Padding: mean pixel in the image wherever the label is ignore.
        assert np.allclose(out_image[padded], 127.5)
        # Inside blocks (label constant over the 3x3 neighbourhood) the image says the same class.
        window = np.lib.stride_tricks.sliding_window_view(np.pad(out_label, 1, mode="edge"), (3, 3))
        interior = (window.min(axis=(-1, -2)) == window.max(axis=(-1, -2))) & ~padded
        assert interior.sum() > 0.3 * (~padded).sum()
        assert np.array_equal(label_from_image(out_image)[interior], out_label[interior])
        saw_flip_or_scale |= not np.array_equal(out_label[:BLOCK, :BLOCK], label[:BLOCK, :BLOCK])
    assert saw_padding and saw_flip_or_scale


def test_scales_are_deepLab_steps():
    config = AugmentConfig(crop_height=8, crop_width=8)
    from segtrain.data import random_scale

    tf.random.set_seed(1)
    seen = set()
    for _ in range(200):
        scaled, _ = random_scale(tf.zeros((40, 40, 3), tf.uint8), tf.zeros((40, 40, 1), tf.uint8), config)
        seen.add(int(scaled.shape[0]))
    assert seen == {20, 30, 40, 50, 60, 70, 80}  # 0.5, 0.75, ..., 2.0


@pytest.mark.parametrize(("low", "high", "step", "sizes"), [(1.0, 1.0, 0.25, {40}), (0.5, 1.0, 0.3, {20, 32}), (0.75, 1.25, 0.0, set(range(30, 51)))])
def test_scale_range_options(low, high, step, sizes):
    """--min-scale/--max-scale/--scale-step: never past max, even when the step does not divide the range."""
    from segtrain.data import random_scale

    config = AugmentConfig(crop_height=8, crop_width=8, min_scale=low, max_scale=high, scale_step=step)
    tf.random.set_seed(2)
    seen = {int(random_scale(tf.zeros((40, 40, 3), tf.uint8), tf.zeros((40, 40, 1), tf.uint8), config)[0].shape[0]) for _ in range(150)}
    assert seen <= sizes and (len(seen) > 5 if step == 0 else seen == sizes)


def test_records_from_segprep_decode_to_source_pixels(run_cli, tmp_path):
    from PIL import Image

    root = make_folder_dataset(tmp_path / "data", count=6, num_classes=4)
    out = tmp_path / "out"
    assert run_cli("convert", "folder", "--root", root, "--out", out, "--name", "tiny", "--quiet", "--split", "train=1.0").exit_code == 0
    examples = list(eval_dataset(record_files(out, "train")))
    assert len(examples) == 6
    for example in examples:
        name = example["name"].numpy().decode()
        with Image.open(root / "labels" / f"{name}.png") as label:
            assert np.array_equal(example["label"].numpy()[..., 0], np.asarray(label))
        image_path = next((root / "images").glob(f"{name}.*"))
        if image_path.suffix == ".png":
            with Image.open(image_path) as image:
                assert np.array_equal(example["image"].numpy(), np.asarray(image.convert("RGB")))
    batch_image, batch_label = next(iter(train_dataset(record_files(out, "train"), AugmentConfig(crop_height=12, crop_width=20), batch_size=4)))
    assert batch_image.shape == (4, 12, 20, 3) and batch_label.shape == (4, 12, 20, 1)
    assert set(np.unique(batch_label.numpy())) <= {0, 1, 2, 3, 255}


def test_missing_split_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no val-"):
        record_files(tmp_path, "val")


def test_records_written_the_way_deeplab_converters_write_them(tmp_path):
    """DeepLab's build_voc2012_data.py layout: tf.train.Example via TF's own writer, JPEG images, raw label PNGs."""
    import io

    from PIL import Image

    rng = np.random.default_rng(5)
    expected = {}
    with tf.io.TFRecordWriter(str(tmp_path / "val-00000-of-00002.tfrecord")) as first, tf.io.TFRecordWriter(str(tmp_path / "val-00001-of-00002.tfrecord")) as second:
        for i in range(4):
            height, width = 20 + i, 30
            image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            label = rng.integers(0, 21, (height, width), dtype=np.uint8)
            label[0] = 255
            jpeg, png = io.BytesIO(), io.BytesIO()
            Image.fromarray(image).save(jpeg, "JPEG")
            Image.fromarray(label, "L").save(png, "PNG")

            def feature(value):
                if isinstance(value, int):
                    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
                return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

            example = tf.train.Example(features=tf.train.Features(feature={
                schema.IMAGE: feature(jpeg.getvalue()), schema.FILENAME: feature(f"2007_{i:06d}".encode()),
                schema.IMAGE_FORMAT: feature(b"jpeg"), schema.HEIGHT: feature(height), schema.WIDTH: feature(width),
                schema.CHANNELS: feature(3), schema.LABEL: feature(png.getvalue()),
                schema.LABEL_FORMAT: feature(b"png"),
            }))
            (first if i < 2 else second).write(example.SerializeToString())
            expected[f"2007_{i:06d}"] = (tf.io.decode_jpeg(jpeg.getvalue()).numpy(), label)
    examples = list(eval_dataset(record_files(tmp_path, "val")))
    assert [e["name"].numpy().decode() for e in examples] == list(expected)
    for example in examples:
        image, label = expected[example["name"].numpy().decode()]
        assert np.array_equal(example["label"].numpy()[..., 0], label)
        assert np.array_equal(example["image"].numpy(), image)
