"""`convert folder --label-colors/--void-color/--lists` (the runway case): colour ground truth and list files in,
shards and a registered dataset out; the same KITTI road files give the same label bytes as `convert kitti_road`."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import png_bytes, random_image, read_records
from test_kitti_ade20k import DONT_CARE, ROAD, decode, make_kitti_road

from segprep import schema
from segprep.registry import load_registry


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def kitti_as_folder(data_road: Path, folder: Path) -> Path:
    """The KITTI road training files as a folder layout (labels renamed to their image's stem) with list files
    making the split `convert kitti_road` draws; val.txt holds paths under ROOT, train.txt stems."""
    from segprep.datasets.kitti_road import load_kitti_road

    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    (folder / "lists").mkdir()
    layout = load_kitti_road(data_road)
    for sample in layout.splits["trainval"]:
        shutil.copyfile(sample.image, folder / "images" / sample.image.name)
        shutil.copyfile(sample.label, folder / "labels" / f"{sample.name}.png")
    (folder / "lists" / "train.txt").write_text("".join(f"{s.name}\n" for s in layout.splits["train"]))
    (folder / "lists" / "val.txt").write_text("".join(f"images/{s.name}.png\n" for s in layout.splits["val"]))
    return folder


@pytest.fixture
def runway(tmp_path: Path) -> tuple[Path, Path]:
    data_road, _ = make_kitti_road(tmp_path / "kitti", {"um": 4, "umm": 4, "uu": 4}, size=(16, 6))
    return data_road, kitti_as_folder(data_road, tmp_path / "runway")


def convert_runway(run_cli, root: Path, out: Path, *extra: object):
    return run_cli("convert", "folder", "--root", root, "--out", out, "--name", "runway", "--label-colors", "kitti_road", "--quiet", *extra)


def test_folder_of_kitti_colours_stores_the_label_bytes_of_convert_kitti_road(run_cli, runway, tmp_path, registry):
    data_road, folder = runway
    kitti_out, folder_out = tmp_path / "kitti_out", tmp_path / "folder_out"
    assert run_cli("convert", "kitti_road", "--root", data_road, "--out", kitti_out, "--quiet").exit_code == 0
    result = convert_runway(run_cli, folder, folder_out, "--void-color", "0,0,0", "--lists", folder / "lists")
    assert result.exit_code == 0, result.output
    for split in ("train", "val", "trainval"):
        kitti = {r[schema.FILENAME]: r[schema.LABEL] for r in read_records(kitti_out, split)}
        mine = {r[schema.FILENAME]: r[schema.LABEL] for r in read_records(folder_out, split)}
        assert len(kitti) == {"train": 6, "val": 6, "trainval": 12}[split]
        assert mine == kitti
    entry = load_registry(registry).get("runway")
    assert (entry.num_classes, entry.ignore_label, entry.colormap, entry.class_names) == (2, 255, "kitti_road", ["background", "road"])
    assert entry.splits == {"train": 6, "val": 6, "trainval": 12}
    # A rerun into the registered dataset is up to date; another colour map for it is refused.
    assert convert_runway(run_cli, folder, folder_out, "--void-color", "0,0,0", "--lists", folder / "lists").exit_code == 0
    other = run_cli("convert", "folder", "--root", folder, "--out", folder_out, "--name", "runway", "--label-colors", "camvid", "--lists", folder / "lists")
    assert other.exit_code == 2 and "not how dataset 'runway' is registered" in other.stderr


def test_unknown_colour_is_refused_with_its_pixel_count_unless_it_is_a_void_color(run_cli, runway, tmp_path):
    _, folder = runway
    label = folder / "labels" / "umm_000001.png"
    black = int((decode_rgb(label) == DONT_CARE).all(axis=-1).sum())
    refused = convert_runway(run_cli, folder, tmp_path / "out", "--lists", folder / "lists")
    assert refused.exit_code == 1
    assert f"error: {label}: colours not in the colormap: rgb(0, 0, 0) ({black} px)" in refused.stderr
    # A second unknown colour: --void-color takes black and white, green stays refused.
    array = decode_rgb(label)
    array[0, :2] = (255, 255, 255)
    array[1, 0] = (0, 255, 0)
    label.write_bytes(png_bytes(array))
    refused = convert_runway(run_cli, folder, tmp_path / "out", "--lists", folder / "lists", "--void-color", "0,0,0", "--void-color", "255,255,255")
    assert refused.exit_code == 1
    assert [line for line in error_lines(refused.stderr) if str(label) in line] == [f"error: {label}: colours not in the colormap: rgb(0, 255, 0) (1 px)"]
    array[1, 0] = ROAD
    label.write_bytes(png_bytes(array))
    result = convert_runway(run_cli, folder, tmp_path / "out", "--lists", folder / "lists", "--void-color", "0,0,0", "--void-color", "255,255,255")
    assert result.exit_code == 0, result.output
    stored = next(decode(r[schema.LABEL]) for r in read_records(tmp_path / "out", "val") + read_records(tmp_path / "out", "train") if r[schema.FILENAME] == b"umm_000001")
    assert (stored[0, :2] == 255).all() and stored[1, 0] == 1


def decode_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.array(image.convert("RGB"))


def test_colour_map_file_registers_its_names_and_colours(run_cli, tmp_path, registry):
    root = tmp_path / "strip"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    colours = np.array([(10, 20, 30), (200, 100, 0), (0, 0, 255), (255, 255, 255)], np.uint8)  # the last one is void
    rng = np.random.default_rng(1)
    truth = {}
    for i in range(3):
        index = rng.integers(0, 4, (5, 7), dtype=np.uint8)
        (root / "images" / f"a{i}.png").write_bytes(png_bytes(random_image(rng, 7, 5)))
        (root / "labels" / f"a{i}.png").write_bytes(png_bytes(colours[index]))
        truth[f"a{i}"] = np.where(index == 3, 7, index)
    (root / "class_names.txt").write_text("not\nused\n")  # the map's names win over the default names file
    cmap = tmp_path / "runway.colors"
    cmap.write_text("# R G B name\n10 20 30 tarmac\n200,100,0 grass verge\n\n0 0 255 marking\n")
    out = tmp_path / "out"
    result = run_cli("convert", "folder", "--root", root, "--out", out, "--name", "strip", "--label-colors", cmap,
                     "--void-color", "255,255,255", "--ignore-label", "7", "--split", "all=1.0", "--quiet")
    assert result.exit_code == 0, result.output
    entry = load_registry(registry).get("strip")
    assert entry.class_names == ["tarmac", "grass verge", "marking"] and entry.num_classes == 3 and entry.ignore_label == 7
    assert entry.colormap == [[10, 20, 30], [200, 100, 0], [0, 0, 255]]
    for record in read_records(out, "all"):
        assert np.array_equal(decode(record[schema.LABEL]), truth[record[schema.FILENAME].decode()])
    # --class-names beside a map that names the classes, a void colour that is a class colour, a bad map line.
    clash = run_cli("convert", "folder", "--root", root, "--out", tmp_path / "o2", "--name", "s2", "--label-colors", cmap, "--class-names", root / "class_names.txt")
    assert clash.exit_code == 2 and "names the classes already" in clash.stderr
    void = run_cli("convert", "folder", "--root", root, "--out", tmp_path / "o2", "--name", "s2", "--label-colors", cmap, "--void-color", "0,0,255")
    assert void.exit_code == 2 and "is the colour of class 2 (marking)" in void.stderr
    cmap.write_text("10 20 30 tarmac\n300 0 0 hot\n")
    bad = run_cli("convert", "folder", "--root", root, "--out", tmp_path / "o2", "--name", "s2", "--label-colors", cmap)
    assert bad.exit_code == 1 and f"error: {cmap}:2: expected 'R G B name'" in bad.stderr
    alone = run_cli("convert", "folder", "--root", root, "--out", tmp_path / "o2", "--name", "s2", "--void-color", "0,0,0")
    assert alone.exit_code == 2 and "--void-color needs --label-colors" in alone.stderr


def test_list_errors_name_file_and_line(run_cli, runway, tmp_path):
    _, folder = runway
    lists = folder / "lists"
    both = convert_runway(run_cli, folder, tmp_path / "out", "--lists", lists, "--split", "train=1.0")
    assert both.exit_code == 2 and "--lists and --split exclude each other" in both.stderr
    val = (lists / "val.txt").read_text().splitlines()
    (lists / "val.txt").write_text("\n".join([val[0], "um_999999", val[1], val[0], *val[2:]]) + "\n")
    result = convert_runway(run_cli, folder, tmp_path / "out", "--lists", lists, "--void-color", "0,0,0")
    assert result.exit_code == 1
    lines = error_lines(result.stderr)
    assert f"error: {lists / 'val.txt'}:2: 'um_999999' names no image in {folder / 'images'}" in "\n".join(lines)
    assert f"error: {lists / 'val.txt'}:4: {val[0]!r}: image {Path(val[0]).stem!r} is already on line 1" in lines
    assert not list((tmp_path / "out").glob("val-*"))
    # A user's trainval.txt is kept, not replaced by train + val; images in no list are counted in a note.
    (lists / "val.txt").write_text("\n".join(val[:2]) + "\n")
    (lists / "trainval.txt").write_text("uu_000000\n")
    result = convert_runway(run_cli, folder, tmp_path / "out", "--lists", lists, "--void-color", "0,0,0")
    assert result.exit_code == 0, result.output
    assert [r[schema.FILENAME] for r in read_records(tmp_path / "out", "trainval")] == [b"uu_000000"]
    assert f"note: 4 of 12 samples are in no list of {lists}" in result.stderr


def test_a_file_name_with_a_line_break_is_refused_by_name(run_cli, runway, tmp_path):
    _, folder = runway
    name = "um_000000\nx.png"
    shutil.copyfile(folder / "images" / "um_000000.png", folder / "images" / name)
    shutil.copyfile(folder / "labels" / "um_000000.png", folder / "labels" / "um\r1.png")
    expected = [
        f"error: {folder / 'images'}: image file name {name!r} holds a line break, so it cannot be a list line: rename it",
        f"error: {folder / 'labels'}: label file name 'um\\r1.png' holds a line break, so it cannot be a list line: rename it",
    ]
    converted = convert_runway(run_cli, folder, tmp_path / "out", "--void-color", "0,0,0")
    assert converted.exit_code == 1
    lines = error_lines(converted.stderr)
    assert lines[:2] == expected and len(lines) == 3, lines
    listed = run_cli("lists", folder, "--out", tmp_path / "lists")
    assert listed.exit_code == 1
    assert error_lines(listed.stderr)[:2] == expected and not (tmp_path / "lists").exists()
