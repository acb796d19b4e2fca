"""segprep.schema against SPEC §2: the one test that spells the contract out literally.

Every other module and test takes the keys and shard names from segprep.schema; here they are
compared with the SPEC's text, so a change to the schema module cannot go unnoticed.
"""

from __future__ import annotations

import subprocess
import sys

from segprep import schema

SPEC_KEYS = (
    "image/encoded",
    "image/filename",
    "image/format",
    "image/height",
    "image/width",
    "image/channels",
    "image/segmentation/class/encoded",
    "image/segmentation/class/format",
)


def test_feature_keys_are_the_specs_in_writing_order():
    assert schema.FEATURE_KEYS == SPEC_KEYS
    assert schema.INT_KEYS == {"image/height", "image/width", "image/channels"}
    features = schema.example_features("a", b"IMG", "jpeg", 4, 5, b"LBL")
    assert features == [
        ("image/encoded", b"IMG"),
        ("image/filename", b"a"),
        ("image/format", b"jpeg"),
        ("image/height", 4),
        ("image/width", 5),
        ("image/channels", 3),
        ("image/segmentation/class/encoded", b"LBL"),
        ("image/segmentation/class/format", b"png"),
    ]


def test_shard_names_follow_deeplab():
    assert schema.shard_name("train", 3, 12) == "train-00003-of-00012.tfrecord"
    assert schema.shard_pattern("train").fullmatch("train-00003-of-00012.tfrecord")
    assert not schema.shard_pattern("train").fullmatch("train-extra-00000-of-00001.tfrecord")
    assert not schema.shard_pattern("train").fullmatch("train-0003-of-00012.tfrecord")
    match = schema.ANY_SHARD.fullmatch("train_extra-00000-of-00001.tfrecord")
    assert match is not None and match["split"] == "train_extra"
    assert schema.split_glob("val") == "val-*.tfrecord"


def test_shard_files_take_only_the_splits_own_shards(tmp_path):
    names = ["train-00001-of-00002.tfrecord", "train-00000-of-00002.tfrecord", "train-extra-00000-of-00001.tfrecord",
             "train.manifest.json", ".tmp-train-00000-of-00002.tfrecord", "train-notes.tfrecord"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in schema.shard_files(tmp_path, "train")] == ["train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
    assert [p.name for p in schema.shard_files(tmp_path, "train-extra")] == ["train-extra-00000-of-00001.tfrecord"]


def test_schema_loads_without_tensorflow():
    code = "import sys, segprep.schema; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
