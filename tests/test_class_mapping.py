"""Class subsets, merges and drops on every layout (segprep convert --classes/--merge/--drop) and
`segtrain score --merge` as a merge of the confusion matrix."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import make_camvid_layout, make_folder_dataset, png_bytes, segtrain_runner
from PIL import Image

from segprep import schema
from segprep.colormaps import resolve_colormap
from segprep.formats.example import decode_example
from segprep.formats.tfrecord import iter_records
from segprep.manifest import manifest_path
from segprep.ops.class_mapping import ClassMappingError, build_mapping, merge_confusion, parse_merge
from segprep.registry import load_registry

CAMVID = ["sky", "building", "pole", "road", "pavement", "tree", "signsymbol", "fence", "car", "pedestrian", "bicyclist"]


def records(out: Path, split: str) -> list[dict]:
    return [decode_example(r) for path in schema.shard_files(out, split) for r in iter_records(path)]


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_camvid_merged_into_five_classes(run_cli, registry, tmp_path):
    root = make_camvid_layout(tmp_path / "CamVid", {"train": 4, "val": 2})
    out5 = tmp_path / "out5"
    merge = ["--merge", "flat=road,pavement", "--merge", "vehicle=car,bicyclist", "--merge", "nature=tree,sky", "--merge", "stuff=pole,signsymbol,fence"]
    run = run_cli("convert", "camvid", "--root", root, "--out", out5, "--name", "camvid_five", "--splits", "train,val", *merge, "--drop", "pedestrian", "--quiet")
    assert run.exit_code == 0, run.output
    camvid_colors = resolve_colormap("camvid")
    entry = load_registry(registry).get("camvid_five")
    assert (entry.num_classes, entry.class_names) == (5, ["flat", "vehicle", "nature", "stuff", "building"])
    assert entry.colormap == [list(map(int, camvid_colors[CAMVID.index(c)])) for c in ("road", "car", "tree", "pole", "building")]
    assert entry.class_weights is None and entry.splits == {"train": 4, "val": 2}
    assert load_registry(registry).get("camvid").splits == {}
    ids = {"road": 0, "pavement": 0, "car": 1, "bicyclist": 1, "tree": 2, "sky": 2, "pole": 3, "signsymbol": 3, "fence": 3, "building": 4, "pedestrian": 255}
    table = np.full(256, 255, np.uint8)
    for name, new in ids.items():
        table[CAMVID.index(name)] = new
    for split in ("train", "val"):
        document = json.loads(manifest_path(out5, split).read_text())
        mapping = document["parameters"]["class_mapping"]
        assert mapping["from"] == "camvid" and mapping["dropped"] == ["pedestrian"]
        assert mapping["groups"]["flat"] == ["road", "pavement"] and mapping["groups"]["building"] == ["building"]
        assert mapping["ids"] == [int(table[i]) for i in range(11)]
        for record in records(out5, split):
            name = record[schema.FILENAME][0].decode()
            original = decode((root / f"{split}annot" / f"{name}.png").read_bytes())
            np.testing.assert_array_equal(decode(record[schema.LABEL][0]), table[original])  # void 11 -> 255 too

    weights = run_cli("inspect", "camvid_five", "--class-weights")
    assert weights.exit_code == 0, weights.output
    assert len(load_registry(registry).get("camvid_five").class_weights) == 5


def test_drop_and_default_name(run_cli, registry, tmp_path):
    root = make_camvid_layout(tmp_path / "CamVid", {"train": 2})
    out = tmp_path / "out"
    result = run_cli("convert", "camvid", "--root", root, "--out", out, "--splits", "train", "--drop", "car,sky", "--quiet")
    assert result.exit_code == 0, result.output
    entry = load_registry(registry).get("camvid_merged")
    assert entry.class_names == [c for c in CAMVID if c not in ("car", "sky")]
    for record in records(out, "train"):
        name = record[schema.FILENAME][0].decode()
        original = decode((root / "trainannot" / f"{name}.png").read_bytes())
        label = decode(record[schema.LABEL][0])
        assert (label[(original == CAMVID.index("car")) | (original == CAMVID.index("sky"))] == 255).all()
        assert (label[original == CAMVID.index("building")] == 0).all()


def test_classes_on_folder_layout(run_cli, registry, tmp_path):
    root = make_folder_dataset(tmp_path / "data", count=6, num_classes=4)
    out = tmp_path / "out"
    result = run_cli("convert", "folder", "--root", root, "--out", out, "--name", "toy", "--classes", "class2,class0", "--split", "train=1", "--quiet")
    assert result.exit_code == 0, result.output
    reg = load_registry(registry)
    assert "toy" not in reg.datasets
    entry = reg.get("toy_class2_class0")
    pascal = resolve_colormap("pascal")
    assert (entry.class_names, entry.colormap) == (["background", "class2", "class0"], [[0, 0, 0], list(map(int, pascal[2])), list(map(int, pascal[0]))])
    table = np.arange(256, dtype=np.uint8)
    table[:4] = [2, 0, 1, 0]
    for record in records(out, "train"):
        name = record[schema.FILENAME][0].decode()
        original = np.asarray(Image.open(root / "labels" / f"{name}.png"))
        np.testing.assert_array_equal(decode(record[schema.LABEL][0]), table[original])


def test_usage_errors_name_the_class(run_cli, registry, tmp_path):
    root = make_camvid_layout(tmp_path / "CamVid", {"train": 1})
    cases = [
        (["--merge", "flat=road,dragon"], "dragon"),
        (["--merge", "flat=road,pavement", "--merge", "hard=road,car"], "road"),
        (["--classes", "car", "--merge", "flat=road,pavement"], "--classes and --merge"),
        (["--classes", "car,unicorn"], "unicorn"),
        (["--drop", "car", "--merge", "v=car,bicyclist"], "car"),
        (["--merge", "flat"], "NEW=CLASS"),
    ]
    for args, text in cases:
        result = run_cli("convert", "camvid", "--root", root, "--out", tmp_path / "x", "--splits", "train", *args)
        assert result.exit_code == 2 and text in result.output, (args, result.output)
        assert not (tmp_path / "x").exists()
    plain = run_cli("convert", "camvid", "--root", root, "--out", tmp_path / "x", "--splits", "train", "--name", "mine")
    assert plain.exit_code == 2 and "--name" in plain.output
    taken = run_cli("convert", "camvid", "--root", root, "--out", tmp_path / "x", "--splits", "train", "--name", "cityscapes", "--drop", "car")
    assert taken.exit_code == 2 and "cityscapes" in taken.output


def test_build_mapping_and_merge_confusion_units():
    mapping = build_mapping("d", ["a", "b", "c", "traffic light"], [(1, 1, 1), (2, 2, 2), (3, 3, 3), (4, 4, 4)], 255, merges=parse_merge(["x=c,a"]))
    assert (mapping.names, mapping.ids, mapping.colors[0]) == (("x", "b", "traffic light"), (0, 1, 0, 2), (3, 3, 3))
    assert build_mapping("d", ["a", "traffic light"], [(1, 1, 1), (2, 2, 2)], 255, classes=["traffic_light"]).ids == (0, 1)
    with pytest.raises(ClassMappingError, match="'a'"):
        build_mapping("d", ["a", "b"], [(1, 1, 1), (2, 2, 2)], 255, merges=parse_merge(["x=a", "y=a,b"]))
    confusion = np.arange(16).reshape(4, 4)
    merged = merge_confusion(confusion, [0, 1, 0, 2], 3)
    assert merged[0, 0] == confusion[np.ix_([0, 2], [0, 2])].sum() and merged.sum() == confusion.sum()


def miou(confusion: np.ndarray) -> float:
    tp = np.diag(confusion).astype(float)
    union = confusion.sum(0) + confusion.sum(1) - tp
    present = union > 0
    return float((tp[present] / union[present]).mean())


def test_score_merge_equals_merged_confusion(registry, tmp_path):
    rng = np.random.default_rng(3)
    pred, gt, gt_merged = tmp_path / "pred", tmp_path / "gt", tmp_path / "gt5"
    for folder in (pred, gt, gt_merged):
        folder.mkdir()
    groups = {"flat": ["road", "pavement"], "vehicle": ["car", "bicyclist"], "nature": ["tree", "sky"], "object": ["pole", "signsymbol", "fence"]}
    ids = np.zeros(256, np.uint8)
    ids[255] = 255
    names = list(groups) + ["building", "pedestrian"]
    for i, c in enumerate(CAMVID):
        ids[i] = next((k for k, (g, m) in enumerate(groups.items()) if c in m), None) if any(c in m for m in groups.values()) else names.index(c)
    full = np.zeros((11, 11), np.int64)
    for i in range(5):
        truth = rng.integers(0, 11, (9, 13)).astype(np.uint8)
        truth[0, :3] = 255
        guess = np.where(rng.random((9, 13)) < 0.6, truth, rng.integers(0, 11, (9, 13))).astype(np.uint8)
        guess[truth == 255] = rng.integers(0, 11, 3).astype(np.uint8)
        (pred / f"f{i}.png").write_bytes(png_bytes(guess, "L"))
        (gt / f"f{i}.png").write_bytes(png_bytes(truth, "L"))
        (gt_merged / f"f{i}.png").write_bytes(png_bytes(ids[truth], "L"))
        keep = truth != 255
        np.add.at(full, (truth[keep].astype(int), guess[keep].astype(int)), 1)
    member = np.zeros((11, 6), np.int64)
    member[np.arange(11), ids[:11]] = 1
    expected = member.T @ full @ member
    run = segtrain_runner(registry)
    merge = [a for name, members in groups.items() for a in ("--merge", f"{name}={','.join(members)}")]
    for folder, extra in ((gt, []), (gt_merged, ["--merged-truth"])):
        result = run("score", pred, folder, "--dataset", "camvid", *merge, *extra, "--json", tmp_path / f"{folder.name}.json")
        assert result.exit_code == 0, result.output
        report = json.loads((tmp_path / f"{folder.name}.json").read_text())
        assert list(report["per_class_iou"]) == names
        assert report["miou"] == pytest.approx(miou(expected))
        assert report["pixel_accuracy"] == pytest.approx(np.trace(expected) / expected.sum())
        assert report["num_images"] == 5
    bad = run("score", pred, gt, "--dataset", "camvid", "--merge", "x=road,dragon")
    assert bad.exit_code == 2 and "dragon" in bad.output
    wrong = run("score", pred, gt, "--dataset", "camvid", *merge, "--merged-truth")
    assert wrong.exit_code == 1
