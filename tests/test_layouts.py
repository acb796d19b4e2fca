"""Layout adapters through the CLI: PASCAL VOC, CamVid (SegNet lists with foreign absolute paths), lists, tfrecord."""

from __future__ import annotations

import io

import numpy as np
from conftest import (
    jpeg_bytes,
    make_camvid_layout,
    png_bytes,
    random_image,
    read_records,
)
from PIL import Image

from segprep.colormaps import builtin_colormap, palette_for_png
from segprep.registry import load_registry
from segprep.splits import seeded_split
from segprep import schema


def make_voc(root, names_by_split):
    voc = root / "VOCdevkit" / "VOC2012"
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / folder).mkdir(parents=True)
    rng = np.random.default_rng(7)
    palette = palette_for_png(builtin_colormap("pascal"))
    labels = {}
    for names in names_by_split.values():
        for name in names:
            (voc / "JPEGImages" / f"{name}.jpg").write_bytes(jpeg_bytes(random_image(rng, 30, 20)))
            label = rng.integers(0, 21, (20, 30), dtype=np.uint8)
            label[0], label[:, 0] = 255, 255  # VOC's void border
            (voc / "SegmentationClass" / f"{name}.png").write_bytes(png_bytes(label, "P", palette))
            labels[name] = label
    for split, names in names_by_split.items():
        (voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(n + "\n" for n in names))
    return voc, labels


def test_pascal_voc_palette_labels_become_indices(run_cli, tmp_path, registry):
    splits = {"train": ["2007_000032", "2007_000039", "2007_000063"], "val": ["2007_000033", "2007_000042"]}
    splits["trainval"] = splits["train"] + splits["val"]
    voc, labels = make_voc(tmp_path / "src", splits)
    out = tmp_path / "out"
    result = run_cli("convert", "pascal_voc_seg", "--root", tmp_path / "src", "--out", out)
    assert result.exit_code == 0, result.output
    assert load_registry(registry).get("pascal_voc_seg").splits == {"train": 3, "trainval": 5, "val": 2}
    for split, names in splits.items():
        records = read_records(out, split)
        assert [r[schema.FILENAME].decode() for r in records] == names
        for record in records:
            name = record[schema.FILENAME].decode()
            assert record[schema.IMAGE_FORMAT] == b"jpeg"
            assert record[schema.IMAGE] == (voc / "JPEGImages" / f"{name}.jpg").read_bytes()
            stored = np.asarray(Image.open(io.BytesIO(record[schema.LABEL])))
            np.testing.assert_array_equal(stored, labels[name])


def test_pascal_voc_unknown_stem_names_the_missing_file(run_cli, tmp_path):
    voc, _ = make_voc(tmp_path, {"train": ["a", "b"]})
    (voc / "ImageSets" / "Segmentation" / "train.txt").write_text("a\nb\nghost\n")
    result = run_cli("convert", "pascal_voc_seg", "--root", voc, "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert f"{voc / 'JPEGImages' / 'ghost.jpg'}: missing image file" in result.stderr
    assert f"{voc / 'SegmentationClass' / 'ghost.png'}: missing label file" in result.stderr


def test_camvid_layout_resolves_foreign_paths_and_maps_void(run_cli, tmp_path, registry):
    root = make_camvid_layout(tmp_path / "CamVid", {"train": 5, "val": 3, "test": 4})
    out = tmp_path / "out"
    result = run_cli("convert", "camvid", "--root", root, "--out", out, "--splits", "train,val,test,trainval")
    assert result.exit_code == 0, result.output
    assert load_registry(registry).get("camvid").splits == {"train": 5, "val": 3, "test": 4, "trainval": 8}
    for split in ("train", "val", "test"):
        for record in read_records(out, split):
            name = record[schema.FILENAME].decode()
            assert record[schema.IMAGE] == (root / split / f"{name}.png").read_bytes()
            source = np.asarray(Image.open(root / f"{split}annot" / f"{name}.png"))
            stored = np.asarray(Image.open(io.BytesIO(record[schema.LABEL])))
            np.testing.assert_array_equal(stored, np.where(source == 11, 255, source))
    names = [r[schema.FILENAME].decode() for r in read_records(out, "trainval")]
    assert names == [r[schema.FILENAME].decode() for s in ("train", "val") for r in read_records(out, s)]


def test_lists_random_split_matches_convert_folder_and_from_folders(run_cli, folder_dataset, tmp_path):
    result = run_cli("lists", folder_dataset, "--split", "train=0.6", "--split", "val=0.2", "--split", "test=0.2", "--seed", "3")
    assert result.exit_code == 0, result.output
    stems = sorted(p.stem for p in (folder_dataset / "images").iterdir())
    expected = seeded_split(stems, {"train": 0.6, "val": 0.2, "test": 0.2}, 3)
    for split, names in expected.items():
        assert (folder_dataset / f"{split}.txt").read_text().split() == names
    assert (folder_dataset / "trainval.txt").read_text().split() == expected["train"] + expected["val"]
    assert sorted(sum(expected.values(), [])) == stems

    ade = tmp_path / "ade"
    for split, count in (("training", 3), ("validation", 2)):
        (ade / "images" / split).mkdir(parents=True)
        (ade / "annotations" / split).mkdir(parents=True)
        for i in range(count):
            (ade / "images" / split / f"ADE_{split}_{i}.jpg").write_bytes(b"x")
            (ade / "annotations" / split / f"ADE_{split}_{i}.png").write_bytes(b"x")
    assert run_cli("lists", ade, "--images", "images", "--labels", "annotations", "--from-folders").exit_code == 0
    assert (ade / "validation.txt").read_text().splitlines() == [
        f"images/validation/ADE_validation_{i}.jpg annotations/validation/ADE_validation_{i}.png" for i in range(2)
    ]


def test_lists_refuses_unpaired_files_and_writes_nothing(run_cli, folder_dataset):
    (folder_dataset / "labels" / "s002.png").unlink()
    result = run_cli("lists", folder_dataset)
    assert result.exit_code == 1
    assert f"error: {folder_dataset / 'images' / 's002.png'}: image has no label in {folder_dataset / 'labels'}" in result.stderr
    assert [p.name for p in folder_dataset.glob("*.txt")] == ["class_names.txt"]


def test_tfrecord_from_pair_lists(run_cli, tmp_path, registry):
    root = make_camvid_layout(tmp_path / "cv", {"train": 3})
    lst = tmp_path / "lists" / "mytrain.txt"
    lst.parent.mkdir()
    lst.write_text("".join(f"train/{p.name} trainannot/{p.name}\n" for p in sorted((root / "train").iterdir())))
    out = tmp_path / "out"
    result = run_cli("tfrecord", lst, "--dataset", "camvid", "--root", root, "--out", out, "--skip-invalid")
    # the synthetic labels hold 11 (CamVid void): the generic list adapter has no remap, so they are refused
    assert result.exit_code == 0 and "label values outside [0, 11) ∪ {255}: 11" in result.stderr
    assert load_registry(registry).get("camvid").splits == {"mytrain": 0}
