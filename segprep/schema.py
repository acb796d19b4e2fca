"""The TFRecord contract (docs/tfrecord.md), stated once: DeepLab's feature keys and its shard file names.

Everything that writes, checks or reads records takes the keys and names from here: segprep's
writer, verify, inspect and preview, segtrain's input pipeline, the benchmarks and the tests.
It imports nothing heavy (no TensorFlow), because every segprep command loads it.
"""

from __future__ import annotations

import re
from pathlib import Path

# DeepLab's build_data.py feature keys.
IMAGE = "image/encoded"
FILENAME = "image/filename"
IMAGE_FORMAT = "image/format"
HEIGHT = "image/height"
WIDTH = "image/width"
CHANNELS = "image/channels"
LABEL = "image/segmentation/class/encoded"
LABEL_FORMAT = "image/segmentation/class/format"

# Every key segprep writes, in the order it writes them, and those whose single value is an int64.
FEATURE_KEYS = (IMAGE, FILENAME, IMAGE_FORMAT, HEIGHT, WIDTH, CHANNELS, LABEL, LABEL_FORMAT)
INT_KEYS = frozenset({HEIGHT, WIDTH, CHANNELS})

SHARD_SUFFIX = ".tfrecord"
MAX_SHARDS = 99_999  # five digits in DeepLab's shard names
_SHARD_TAIL = r"-\d{5}-of-\d{5}" + re.escape(SHARD_SUFFIX)
# Any shard name, whatever its split; the split is the group `split`.
ANY_SHARD = re.compile(r"(?P<split>.+)" + _SHARD_TAIL)


def example_features(name: str, image: bytes, image_format: str, height: int, width: int, label_png: bytes) -> list[tuple[str, bytes | int]]:
    """One record's (key, value) pairs in writing order: a 3-channel image and its index-PNG label."""
    return [
        (IMAGE, image),
        (FILENAME, name.encode()),
        (IMAGE_FORMAT, image_format.encode()),
        (HEIGHT, height),
        (WIDTH, width),
        (CHANNELS, 3),
        (LABEL, label_png),
        (LABEL_FORMAT, b"png"),
    ]


def shard_name(split: str, index: int, count: int) -> str:
    """DeepLab's shard naming, so that its `{split}-*` pattern and segtrain read the same files."""
    return f"{split}-{index:05d}-of-{count:05d}{SHARD_SUFFIX}"


def shard_pattern(split: str) -> re.Pattern[str]:
    """Matches (fullmatch) the shard names of exactly this split."""
    return re.compile(re.escape(split) + _SHARD_TAIL)


def split_glob(split: str) -> str:
    """The glob DeepLab's readers use for a split; it may also match another split's shards
    (`train-*` matches split `train-extra`), so filter with shard_pattern."""
    return f"{split}-*{SHARD_SUFFIX}"


def shard_files(folder: str | Path, split: str) -> list[Path]:
    """The shards of one split in a local folder, in name (= record) order."""
    pattern = shard_pattern(split)
    return sorted(p for p in Path(folder).glob(split_glob(split)) if pattern.fullmatch(p.name))
