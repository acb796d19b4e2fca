"""tf.data pipelines over segprep's (or DeepLab's) TFRecords, with DeepLab's training augmentation.

Records follow docs/tfrecord.md: image/encoded (JPEG or PNG, decoded by content), image/filename and
image/segmentation/class/encoded (a single-channel PNG of class ids). Training samples are
randomly scaled (0.5-2.0 in steps of 0.25: bilinear image, nearest label), padded to the crop
size (image with the model's mean pixel, label with the ignore label), randomly cropped and
flipped, as DeepLab's input_preprocess does. Evaluation keeps full resolution: images are only
padded (never cropped) so that every ground-truth pixel is scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

from segprep import schema

from segtrain.errors import EmptySplitError, SegtrainError, tf_message

# DeepLab's own records carry the same keys, so both parse; the other keys are not needed to train.
_FEATURES = {
    schema.IMAGE: tf.io.FixedLenFeature((), tf.string),
    schema.FILENAME: tf.io.FixedLenFeature((), tf.string, default_value=""),
    schema.LABEL: tf.io.FixedLenFeature((), tf.string),
}


@dataclass(frozen=True)
class AugmentConfig:
    """DeepLab's training augmentation; the defaults are DeepLab's."""

    crop_height: int = 513
    crop_width: int = 513
    min_scale: float = 0.5
    max_scale: float = 2.0
    scale_step: float = 0.25
    flip: bool = True
    ignore_label: int = 255
    mean_pixel: tuple[float, float, float] = (127.5, 127.5, 127.5)


def record_files(data_dir: str | Path, split: str) -> list[str]:
    """The shards of a split, in order; an error that names the folder when there are none, or the
    shard that is not a regular file (TensorFlow would wait forever on a FIFO)."""
    from segtrain.files import require_all_regular

    files = [str(p) for p in schema.shard_files(data_dir, split)]
    if not files:
        raise FileNotFoundError(f"{data_dir}: no {schema.split_glob(split)} shards")
    require_all_regular(files)
    return files


def require_records(files: list[str], data_dir: str | Path, split: str) -> None:
    """EmptySplitError when the shards hold no record at all (a repeated empty dataset never ends).

    Reads shards only until the first record, so it costs one record, not a pass over the split;
    a shard that cannot even be framed is an error naming that shard.
    """
    for name in files:
        try:
            for _ in tf.data.TFRecordDataset(name).take(1):
                return
        except tf.errors.OpError as exc:
            raise SegtrainError(f"{name}: damaged shard ({tf_message(exc)}); check the split with `segprep verify {data_dir}`") from None
    raise EmptySplitError(f"{data_dir}: split {split!r} is empty: its {len(files)} {schema.split_glob(split)} shard(s) hold no record")


def parse_record(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """image uint8 [H, W, 3], label uint8 [H, W, 1], name string."""
    features = tf.io.parse_single_example(serialized, _FEATURES)
    image = tf.io.decode_image(features[schema.IMAGE], channels=3, expand_animations=False)
    label = tf.io.decode_png(features[schema.LABEL], channels=1)
    image.set_shape([None, None, 3])
    label.set_shape([None, None, 1])
    return {"image": image, "label": label, "name": features[schema.FILENAME]}


def random_scale(image: tf.Tensor, label: tf.Tensor, config: AugmentConfig) -> tuple[tf.Tensor, tf.Tensor]:
    """Scale by one of min..max in scale_step steps (uniform in [min, max] when the step is 0)."""
    if config.scale_step > 0:
        count = int((config.max_scale - config.min_scale) / config.scale_step + 1e-6) + 1  # never past max
        index = tf.random.uniform((), 0, count, dtype=tf.int32)
        scale = config.min_scale + tf.cast(index, tf.float32) * config.scale_step
    else:
        scale = tf.random.uniform((), config.min_scale, config.max_scale)
    size = tf.cast(tf.cast(tf.shape(image)[:2], tf.float32) * scale, tf.int32)
    image = tf.image.resize(tf.cast(image, tf.float32), size, method="bilinear")
    label = tf.image.resize(label, size, method="nearest")
    return image, label


def pad_to_at_least(image: tf.Tensor, label: tf.Tensor, height: int, width: int, config: AugmentConfig) -> tuple[tf.Tensor, tf.Tensor]:
    """Pad bottom/right to at least height x width: image with the mean pixel, label with the ignore label."""
    shape = tf.shape(image)
    pad_h = tf.maximum(height - shape[0], 0)
    pad_w = tf.maximum(width - shape[1], 0)
    paddings = [[0, pad_h], [0, pad_w], [0, 0]]
    mean = tf.constant(config.mean_pixel, tf.float32)
    image = tf.pad(tf.cast(image, tf.float32) - mean, paddings) + mean
    label = tf.pad(tf.cast(label, tf.int32) - config.ignore_label, paddings) + config.ignore_label
    return image, tf.cast(label, tf.uint8)


def augment(image: tf.Tensor, label: tf.Tensor, config: AugmentConfig) -> tuple[tf.Tensor, tf.Tensor]:
    """Random scale, pad, random crop (one offset for both), random left-right flip."""
    image, label = random_scale(image, label, config)
    image, label = pad_to_at_least(image, label, config.crop_height, config.crop_width, config)
    stacked = tf.concat([image, tf.cast(label, tf.float32)], axis=-1)
    stacked = tf.image.random_crop(stacked, [config.crop_height, config.crop_width, 4])
    if config.flip:
        stacked = tf.image.random_flip_left_right(stacked)
    return stacked[..., :3], tf.cast(stacked[..., 3:], tf.uint8)


def train_dataset(files: list[str], config: AugmentConfig, batch_size: int, shuffle_buffer: int = 256, seed: int | None = None) -> tf.data.Dataset:
    """Endless shuffled, augmented batches of (float32 image [B, h, w, 3] in 0..255, uint8 label [B, h, w, 1])."""
    dataset = tf.data.Dataset.from_tensor_slices(files).shuffle(len(files), seed=seed).repeat()
    dataset = dataset.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 8), num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    dataset = dataset.shuffle(shuffle_buffer, seed=seed)
    dataset = dataset.map(lambda s: augment(*_image_label(parse_record(s)), config), num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def eval_dataset(files: list[str]) -> tf.data.Dataset:
    """One full-resolution record at a time, in shard order: dicts of image, label and name."""
    dataset = tf.data.TFRecordDataset(files, num_parallel_reads=1)
    return dataset.map(parse_record, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def first_images(files: list[str], count: int) -> list:
    """The first `count` images of the records (uint8 RGB arrays, in shard order): int8 calibration's sample."""
    images = []
    for example in eval_dataset(files).take(count):
        images.append(example["image"].numpy())
    return images


def _image_label(example: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
    return example["image"], example["label"]
