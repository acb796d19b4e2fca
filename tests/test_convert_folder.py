"""`segprep convert folder`: records equal to the sources field by field (read with TensorFlow), shards, manifest, registry."""

from __future__ import annotations

import io
import json
import math

import numpy as np
from conftest import read_records
from PIL import Image

from segprep.registry import load_registry
from segprep.splits import seeded_split
from segprep.writer import shard_ranges
from segprep import schema


def test_shard_ranges_follow_deeplab_ceil_chunking():
    assert [len(r) for r in shard_ranges(10, 4)] == [3, 3, 3, 1]
    assert [len(r) for r in shard_ranges(5, 4)] == [2, 2, 1, 0]
    assert [len(r) for r in shard_ranges(0, 2)] == [0, 0]
    assert [list(r) for r in shard_ranges(7, 3)] == [[0, 1, 2], [3, 4, 5], [6]]


def test_convert_folder_records_match_sources(run_cli, folder_dataset, registry, tmp_path):
    out = tmp_path / "out"
    result = run_cli("convert", "folder", "--root", folder_dataset, "--out", out, "--name", "toy",
                     "--split", "train=0.7", "--split", "val=0.3", "--num-shards", "3", "--workers", "2")
    assert result.exit_code == 0, result.output
    entry = load_registry(registry).get("toy")
    assert entry.num_classes == 4 and entry.class_names == ["class0", "class1", "class2", "class3"]
    assert entry.splits == {"train": 7, "val": 3, "trainval": 10}
    assert entry.data_dir == str(out.resolve())

    stems = sorted(p.stem for p in (folder_dataset / "images").iterdir())
    expected = seeded_split(stems, {"train": 0.7, "val": 0.3}, 0)
    expected["trainval"] = expected["train"] + expected["val"]
    for split, names in expected.items():
        shards = sorted(out.glob(f"{split}-*.tfrecord"))
        assert [p.name for p in shards] == [f"{split}-{i:05d}-of-00003.tfrecord" for i in range(3)]
        records = read_records(out, split)
        assert [r[schema.FILENAME].decode() for r in records] == names
        for record in records:
            stem = record[schema.FILENAME].decode()
            image_path = next((folder_dataset / "images").glob(stem + ".*"))
            assert record[schema.IMAGE] == image_path.read_bytes()
            assert record[schema.IMAGE_FORMAT] == (b"jpeg" if image_path.suffix == ".jpg" else b"png")
            with Image.open(image_path) as image:
                assert (record[schema.WIDTH], record[schema.HEIGHT]) == image.size
            assert record[schema.CHANNELS] == 3
            assert record[schema.LABEL_FORMAT] == b"png"
            with Image.open(folder_dataset / "labels" / f"{stem}.png") as source:
                source_values = np.asarray(source)
            with Image.open(io.BytesIO(record[schema.LABEL])) as stored:
                assert stored.mode == "L"
                np.testing.assert_array_equal(np.asarray(stored), source_values)

        manifest = json.loads((out / f"{split}.manifest.json").read_text())
        assert manifest["num_records"] == len(names) and manifest["dataset"] == "toy"
        per_shard = math.ceil(len(names) / 3)
        assert [s["records"] for s in manifest["shards"]] == [len(r) for r in shard_ranges(len(names), 3)]
        assert [s["shard"] for s in manifest["samples"]] == [i // per_shard for i in range(len(names))]
        for sample in manifest["samples"]:
            assert sum(sample["histogram"].values()) == sample["height"] * sample["width"]


def test_rerun_is_up_to_date_and_a_changed_input_is_rewritten(run_cli, folder_dataset, tmp_path):
    out = tmp_path / "out"
    args = ("convert", "folder", "--root", folder_dataset, "--out", out, "--name", "toy", "--num-shards", "2")
    assert run_cli(*args).exit_code == 0
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    second = run_cli(*args)
    assert second.exit_code == 0 and second.output.count("up to date") == 3
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before

    label = folder_dataset / "labels" / "s000.png"
    array = np.asarray(Image.open(label)).copy()
    array[:] = 2
    Image.fromarray(array).save(label)
    third = run_cli(*args)
    assert third.exit_code == 0
    statuses = {line.split()[0]: line.split()[1] for line in third.output.splitlines()[2:]}
    assert statuses["trainval"] == "written" and "written" in (statuses["train"], statuses["val"])
    records = {r[schema.FILENAME].decode(): r for split in ("train", "val") for r in read_records(out, split)}
    stored = np.asarray(Image.open(io.BytesIO(records["s000"][schema.LABEL])))
    assert (stored == 2).all()


def test_changing_the_shard_count_removes_the_old_shards(run_cli, folder_dataset, tmp_path):
    out = tmp_path / "out"
    base = ("convert", "folder", "--root", folder_dataset, "--out", out, "--name", "toy", "--split", "train=1")
    assert run_cli(*base, "--num-shards", "4").exit_code == 0
    assert run_cli(*base, "--num-shards", "2").exit_code == 0
    assert sorted(p.name for p in out.glob("train-*")) == ["train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
    assert len(read_records(out, "train")) == 10
    assert run_cli("verify", out).exit_code == 0
