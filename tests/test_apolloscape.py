"""ApolloScape scene parsing: *_bin.png ids stored as trainIds by the dataset's table, splits by record."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, jpeg_bytes, png_bytes, random_image
from PIL import Image

from segprep import schema
from segprep.formats.example import decode_example
from segprep.formats.tfrecord import iter_records
from segprep.ops.apolloscape_labels import ID_TO_TRAIN_ID, LABEL_IDS, LABELS, TRAIN_CLASS_NAMES, TRAIN_COLORS
from segprep.registry import load_registry

ROADS = ("road01_ins", "road02_seg")
RECORDS = ("Record001", "Record002", "Record003")
CAMERAS = ("Camera 5", "Camera 6")
WIDTH, HEIGHT = 16, 12
TABLE = np.frombuffer(ID_TO_TRAIN_ID, dtype=np.uint8)


def make_apolloscape(root: Path, frames_per_camera: int = 2, seed: int = 0) -> dict[str, Path]:
    """The real layout, every label holding every id of the table; returns {sample name: label path}."""
    rng = np.random.default_rng(seed)
    ids = np.array(LABEL_IDS, dtype=np.uint8)
    labels: dict[str, Path] = {}
    for r, road in enumerate(ROADS):
        for k, record in enumerate(RECORDS):
            for camera in CAMERAS:
                images_dir = root / road / "ColorImage" / record / camera
                labels_dir = root / road / "Label" / record / camera
                images_dir.mkdir(parents=True)
                labels_dir.mkdir(parents=True)
                for i in range(frames_per_camera):
                    stem = f"1709{r:02d}_06{k:02d}{i:02d}408_{camera.replace(' ', '_')}"
                    (images_dir / f"{stem}.jpg").write_bytes(jpeg_bytes(random_image(rng, WIDTH, HEIGHT)))
                    label = rng.permutation(np.resize(ids, WIDTH * HEIGHT)).reshape(HEIGHT, WIDTH)  # 192 px: every id
                    (labels_dir / f"{stem}_bin.png").write_bytes(png_bytes(label))
                    (labels_dir / f"{stem}_instanceIds.png").write_bytes(png_bytes(np.zeros((HEIGHT, WIDTH), np.uint8)))  # not a label
                    labels[f"{road}/{record}/{stem}"] = labels_dir / f"{stem}_bin.png"
    return labels


def stored_labels(out: Path, split: str) -> dict[str, np.ndarray]:
    """{image/filename: label array} read back from the split's shards with segprep's own reader."""
    found = {}
    for shard in schema.shard_files(out, split):
        for payload in iter_records(shard):
            example = decode_example(payload)
            found[example[schema.FILENAME][0].decode()] = np.asarray(Image.open(io.BytesIO(example[schema.LABEL][0])))
    return found


def manifest_names(out: Path, split: str) -> list[str]:
    return [s["name"] for s in json.loads((out / f"{split}.manifest.json").read_text())["samples"]]


def record_of(name: str) -> str:
    return name.rsplit("/", 1)[0]


def test_registry_entry_is_the_label_table():
    entry = load_registry(REPO / "dataset_registry.yaml").get("apolloscape")
    assert (entry.num_classes, entry.ignore_label) == (22, 255)
    assert entry.class_names == list(TRAIN_CLASS_NAMES)
    assert [tuple(c) for c in entry.colormap] == list(TRAIN_COLORS)
    # Each class is its own label's trainId, its *_group the same; the rest are ignored.
    by_name = {label.name: label for label in LABELS}
    for train_id, name in enumerate(TRAIN_CLASS_NAMES):
        assert by_name[name].train_id == train_id
    groups = {label.name: label for label in LABELS if label.name.endswith(("_group", "_groups"))}
    assert len(groups) == 8 and by_name["car_groups"].train_id == by_name["car"].train_id
    for group in groups.values():
        own = by_name[group.name.rsplit("_", 1)[0]]
        assert (group.train_id, group.color, group.id) == (own.train_id, own.color, own.id + 128)
    ignored = {label.name for label in LABELS if label.train_id == 255}
    assert ignored == {"others", "rover", "bridge", "tunnel", "overpass", "unlabeled"}
    assert len(LABELS) == 36 and len(set(LABEL_IDS)) == 36
    assert all(TABLE[v] == 255 for v in range(256) if v not in LABEL_IDS)


def test_convert_stores_every_id_as_its_train_id_and_splits_by_record(run_cli, tmp_path, registry):
    root = tmp_path / "apollo"
    labels = make_apolloscape(root)
    out = tmp_path / "out"
    result = run_cli("convert", "apolloscape", "--root", root, "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    entry = load_registry(registry).get("apolloscape")
    assert entry.splits == {"train": 20, "val": 4, "trainval": 24}
    names = {split: manifest_names(out, split) for split in ("train", "val", "trainval")}
    assert names["trainval"] == names["train"] + names["val"]
    assert sorted(names["trainval"]) == sorted(labels)
    records = {split: {record_of(n) for n in names[split]} for split in ("train", "val")}
    assert not records["train"] & records["val"], "a record in two splits"
    assert len(records["val"]) == 1 and len(records["train"]) == 5
    for split in ("train", "val"):
        stored = stored_labels(out, split)
        assert sorted(stored) == sorted(names[split])
        for name, label in stored.items():
            ids = np.asarray(Image.open(labels[name]))
            np.testing.assert_array_equal(label, TABLE[ids])
            assert set(np.unique(label)) == set(range(22)) | {255}
    assert run_cli("verify", out).exit_code == 0
    # Another seed draws other records, still whole.
    other = tmp_path / "out_seed"
    result = run_cli("convert", "apolloscape", "--root", root, "--out", other, "--quiet", "--seed", "3", "--split", "train=0.5", "--split", "val=0.5", "--splits", "train,val")
    assert result.exit_code == 0, result.output
    halves = [{record_of(n) for n in manifest_names(other, split)} for split in ("train", "val")]
    assert len(halves[0]) == len(halves[1]) == 3 and not halves[0] & halves[1]


@pytest.mark.parametrize("unknown", [250, 5])  # 5 < 22: must not pass for a class either
def test_an_id_not_in_the_table_is_refused_by_file_id_and_count(run_cli, tmp_path, unknown):
    root = tmp_path / "apollo"
    labels = make_apolloscape(root, frames_per_camera=1)
    bad = labels["road02_seg/Record002/170901_060100408_Camera_6"]
    ids = np.asarray(Image.open(bad)).copy()
    ids[0, :3] = unknown
    bad.write_bytes(png_bytes(ids))
    result = run_cli("convert", "apolloscape", "--root", root, "--out", tmp_path / "out", "--quiet")
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert lines[0] == f"error: {bad}: label values that are no id of the dataset's label table: {unknown} (3 px)", result.stderr
    assert len(lines) == 2 and lines[1].startswith("error: 1 bad file(s); nothing written"), result.stderr  # one line per bad file, then the summary
    assert not list((tmp_path / "out").glob("train-*")) and not list((tmp_path / "out").glob("trainval-*"))  # nothing for the bad splits


def test_official_lists_give_the_splits(run_cli, tmp_path, registry):
    root = tmp_path / "apollo"
    labels = make_apolloscape(root, frames_per_camera=1)
    lists = root / "public_image_lists"
    lists.mkdir()
    road01 = sorted(n for n in labels if n.startswith("road01_ins/"))
    lines = {"train": road01[:4], "val": road01[4:]}
    for split, chosen in lines.items():
        text = "".join(
            f"road01_ins/ColorImage/{n.split('/')[1]}/Camera {n[-1]}/{n.split('/')[2]}.jpg\troad01_ins/Label/{n.split('/')[1]}/Camera {n[-1]}/{n.split('/')[2]}_bin.png\n"
            for n in chosen
        )
        (lists / f"road01_ins_{split}.lst").write_text(text)
    out = tmp_path / "out"
    result = run_cli("convert", "apolloscape", "--root", root, "--out", out)
    assert result.exit_code == 0, result.output
    assert "note: 6 frames of road02_seg are in no official list" in result.stderr
    assert {split: manifest_names(out, split) for split in ("train", "val")} == lines
    assert load_registry(registry).get("apolloscape").splits == {"train": 4, "val": 2, "trainval": 6}
    # --split draws the split by record instead, of every road.
    result = run_cli("convert", "apolloscape", "--root", root, "--out", tmp_path / "out2", "--quiet", "--split", "train=0.5", "--split", "val=0.5")
    assert result.exit_code == 0, result.output
    assert load_registry(registry).get("apolloscape").splits == {"train": 6, "val": 6, "trainval": 12}


def test_an_image_without_label_is_named(run_cli, tmp_path):
    root = tmp_path / "apollo"
    labels = make_apolloscape(root, frames_per_camera=1)
    missing = labels["road01_ins/Record003/170900_060200408_Camera_5"]
    missing.unlink()
    result = run_cli("convert", "apolloscape", "--root", root, "--out", tmp_path / "out", "--quiet")
    assert result.exit_code == 1
    assert f"170900_060200408_Camera_5.jpg: image has no label {missing}" in result.stderr


def test_a_label_table_is_checked_before_the_remap_and_recorded_only_where_set():
    from segprep.ops.labels import LabelError, LabelPolicy, prepare_label

    policy = LabelPolicy(2, remap=((7, 0), (9, 1)), accept_palette=False, known_values=(7, 9, 255))
    prepared = prepare_label(png_bytes(np.array([[7, 9], [255, 9]], np.uint8)), policy)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(prepared.png))), [[0, 1], [255, 1]])
    with pytest.raises(LabelError, match=r"no id of the dataset's label table: 1 \(2 px\)"):
        prepare_label(png_bytes(np.array([[7, 1], [1, 9]], np.uint8)), policy)  # 1 is a class id after the remap, not an id
    assert policy.manifest_entry()["known_values"] == (7, 9, 255)
    assert "known_values" not in LabelPolicy(2).manifest_entry()  # other datasets' fingerprints stay what they were


def test_one_road_as_root_and_too_few_records_for_the_fractions(tmp_path):
    from segprep.datasets.apolloscape import load_apolloscape
    from segprep.datasets.base import LayoutError

    make_apolloscape(tmp_path / "apollo", frames_per_camera=1)
    road = tmp_path / "apollo" / "road01_ins"
    layout = load_apolloscape(road)  # 3 records: 0.1 of them rounds to none, so val takes one whole record
    assert {split: len(samples) for split, samples in layout.splits.items()} == {"train": 4, "val": 2, "trainval": 6}
    assert {s.name.rsplit("/", 1)[0] for s in layout.splits["val"]} == {"road01_ins/Record003"}
    assert layout.notes == ["val: 1 of 3 records (road01_ins/Record003), taken from train: val=0.1 of the records rounds to none"]
    with pytest.raises(LayoutError, match=r"road01_ins: 3 record\(s\) are too few to split by record into a=0.25, b=0.25, c=0.25, d=0.25"):
        load_apolloscape(road, ["a=0.25", "b=0.25", "c=0.25", "d=0.25"])
