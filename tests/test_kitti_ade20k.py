"""KITTI road (colour ground truth, seeded per-category split) and ADE20K (ignore 0) through `segprep convert`."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import jpeg_bytes, png_bytes, random_image, read_records
from PIL import Image

from segprep.registry import load_registry
from segprep import schema

ROAD, BACKGROUND, DONT_CARE = (255, 0, 255), (255, 0, 0), (0, 0, 0)


def make_kitti_road(root, counts, seed=0, size=(40, 12)):
    """data_road/training/{image_2,gt_image_2} with road, lane (to be ignored) and an index label for each image."""
    training = root / "data_road" / "training"
    (training / "image_2").mkdir(parents=True)
    (training / "gt_image_2").mkdir()
    rng = np.random.default_rng(seed)
    truth = {}
    width, height = size
    for category, count in counts.items():
        for i in range(count):
            name = f"{category}_{i:06d}"
            (training / "image_2" / f"{name}.png").write_bytes(png_bytes(random_image(rng, width, height)))
            index = rng.integers(0, 3, (height, width), dtype=np.uint8)  # 0 background, 1 road, 2 don't care
            colours = np.array([BACKGROUND, ROAD, DONT_CARE], dtype=np.uint8)[index]
            (training / "gt_image_2" / f"{category}_road_{i:06d}.png").write_bytes(png_bytes(colours))
            if category == "um":
                (training / "gt_image_2" / f"um_lane_{i:06d}.png").write_bytes(png_bytes(colours[::-1].copy()))
            truth[name] = np.where(index == 2, 255, index).astype(np.uint8)
    return root / "data_road", truth


def decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "L"
        return np.asarray(image)


def test_kitti_road_colours_and_seeded_split(run_cli, tmp_path, registry):
    root, truth = make_kitti_road(tmp_path, {"um": 34, "umm": 33, "uu": 32}, size=(16, 6))
    out = tmp_path / "out"
    result = run_cli("convert", "kitti_road", "--root", root, "--out", out, "--quiet")
    assert result.exit_code == 0, result.output
    entry = load_registry(registry).get("kitti_road")
    assert entry.splits == {"train": 99 - 48, "val": 48, "trainval": 99}
    records = {s: read_records(out, s) for s in ("train", "val", "trainval")}
    val_names = [r[schema.FILENAME].decode() for r in records["val"]]
    for category in ("um", "umm", "uu"):
        assert sum(n.startswith(category + "_") for n in val_names) == 16
    train_names = {r[schema.FILENAME].decode() for r in records["train"]}
    assert train_names.isdisjoint(val_names) and train_names | set(val_names) == set(truth)
    for record in records["trainval"]:
        name = record[schema.FILENAME].decode()
        assert np.array_equal(decode(record[schema.LABEL]), truth[name])
        assert record[schema.IMAGE] == (root / "training" / "image_2" / f"{name}.png").read_bytes()
    # The split is reproducible and depends on the seed.
    again = tmp_path / "again"
    assert run_cli("convert", "kitti_road", "--root", root, "--out", again, "--quiet", "--splits", "val").exit_code == 0
    assert [r[schema.FILENAME].decode() for r in read_records(again, "val")] == val_names
    other = tmp_path / "other"
    assert run_cli("convert", "kitti_road", "--root", root, "--out", other, "--quiet", "--splits", "val", "--seed", "3").exit_code == 0
    assert [r[schema.FILENAME].decode() for r in read_records(other, "val")] != val_names


def test_kitti_road_full_size_split_is_241_plus_48(tmp_path):
    from segprep.datasets.kitti_road import load_kitti_road

    training = tmp_path / "training"
    (training / "image_2").mkdir(parents=True)
    (training / "gt_image_2").mkdir()
    for category, count in {"um": 95, "umm": 96, "uu": 98}.items():
        for i in range(count):
            (training / "image_2" / f"{category}_{i:06d}.png").touch()
            (training / "gt_image_2" / f"{category}_road_{i:06d}.png").touch()
    layout = load_kitti_road(tmp_path)
    assert {s: len(v) for s, v in layout.splits.items()} == {"train": 241, "val": 48, "trainval": 289}


def test_kitti_road_unknown_colour_is_named(run_cli, tmp_path):
    root, _ = make_kitti_road(tmp_path, {"um": 3, "umm": 2, "uu": 2})
    for name in ("um_road_000001.png", "uu_road_000000.png"):
        path = root / "training" / "gt_image_2" / name
        with Image.open(path) as image:
            array = np.array(image)
        array[2, 3] = (0, 255, 0)
        path.write_bytes(png_bytes(array))
    out = tmp_path / "out"
    result = run_cli("convert", "kitti_road", "--root", root, "--out", out)
    assert result.exit_code == 1
    for name in ("um_road_000001.png", "uu_road_000000.png"):
        assert name in result.stderr
    assert "rgb(0, 255, 0) (1 px)" in result.stderr
    assert not list(out.glob("trainval-*"))


def test_kitti_road_missing_ground_truth_is_named(run_cli, tmp_path):
    root, _ = make_kitti_road(tmp_path, {"um": 3, "umm": 2, "uu": 2})
    (root / "training" / "gt_image_2" / "umm_road_000001.png").unlink()
    result = run_cli("convert", "kitti_road", "--root", root, "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert "umm_000001.png: image has no road ground truth" in result.stderr


def make_ade20k(root, counts, seed=0):
    ade = root / "ADEChallengeData2016"
    rng = np.random.default_rng(seed)
    labels = {}
    for split, folder in (("train", "training"), ("val", "validation")):
        (ade / "images" / folder).mkdir(parents=True)
        (ade / "annotations" / folder).mkdir(parents=True)
        for i in range(counts[split]):
            name = f"ADE_{split}_{i + 1:08d}"
            (ade / "images" / folder / f"{name}.jpg").write_bytes(jpeg_bytes(random_image(rng, 26, 18)))
            label = rng.integers(0, 151, (18, 26), dtype=np.uint8)
            (ade / "annotations" / folder / f"{name}.png").write_bytes(png_bytes(label, "L"))
            labels[name] = label
    return ade, labels


def test_ade20k_labels_kept_with_ignore_zero(run_cli, tmp_path, registry):
    ade, labels = make_ade20k(tmp_path / "src", {"train": 7, "val": 3})
    out = tmp_path / "out"
    result = run_cli("convert", "ade20k", "--root", tmp_path / "src", "--out", out, "--quiet", "--splits", "train,val,trainval")
    assert result.exit_code == 0, result.output
    entry = load_registry(registry).get("ade20k")
    assert entry.splits == {"train": 7, "val": 3, "trainval": 10}
    assert entry.ignore_label == 0 and entry.num_classes == 151
    for split, folder in (("train", "training"), ("val", "validation")):
        for record in read_records(out, split):
            name = record[schema.FILENAME].decode()
            assert record[schema.LABEL] == (ade / "annotations" / folder / f"{name}.png").read_bytes()
            assert np.array_equal(decode(record[schema.LABEL]), labels[name])


def test_ade20k_value_above_150_is_refused(run_cli, tmp_path):
    ade, labels = make_ade20k(tmp_path, {"train": 3, "val": 1})
    label = labels["ADE_train_00000002"].copy()
    label[0, 0] = 151
    (ade / "annotations" / "training" / "ADE_train_00000002.png").write_bytes(png_bytes(label, "L"))
    result = run_cli("convert", "ade20k", "--root", ade, "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert "ADE_train_00000002.png" in result.stderr and "151 (1 px)" in result.stderr


@pytest.mark.parametrize("split", ["test"])
def test_ade20k_unknown_split_is_usage_error(run_cli, tmp_path, split):
    make_ade20k(tmp_path / "src", {"train": 1, "val": 1})
    result = run_cli("convert", "ade20k", "--root", tmp_path / "src", "--out", tmp_path / "out", "--splits", split)
    assert result.exit_code == 1
    assert "ADE20K has splits train, val" in result.stderr
