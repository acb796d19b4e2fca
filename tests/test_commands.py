"""remove-colormap, inspect, verify and the CLI's start-up cost."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from conftest import png_bytes
from PIL import Image

from segprep.colormaps import builtin_colormap, palette_for_png
from segprep import schema


def test_remove_colormap_folder(run_cli, tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    rng = np.random.default_rng(1)
    labels = {f"x{i}.png": rng.integers(0, 21, (6, 9), dtype=np.uint8) for i in range(4)}
    for name, label in labels.items():
        label[0, 0] = 255
        (src / name).write_bytes(png_bytes(label, "P", palette_for_png(builtin_colormap("pascal"))))
    result = run_cli("remove-colormap", src, out)
    assert result.exit_code == 0, result.output
    for name, label in labels.items():
        with Image.open(out / name) as image:
            assert image.mode == "L"
            np.testing.assert_array_equal(np.asarray(image), label)


def test_remove_colormap_rgb_needs_a_colormap_and_writes_nothing_on_error(run_cli, tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    kitti = builtin_colormap("kitti_road")
    good = kitti[np.array([[0, 1], [1, 0]])]
    (src / "a.png").write_bytes(png_bytes(good))
    bad = good.copy()
    bad[0, 0] = (10, 20, 30)
    (src / "b.png").write_bytes(png_bytes(bad))
    result = run_cli("remove-colormap", src, out)
    assert result.exit_code == 1 and "needs --colormap" in result.stderr
    result = run_cli("remove-colormap", src, out, "--colormap", "kitti_road")
    assert result.exit_code == 1 and f"{src / 'b.png'}: colours not in the colormap: rgb(10, 20, 30) (1 px)" in result.stderr
    assert not out.exists()
    result = run_cli("remove-colormap", src, out, "--colormap", "kitti_road", "--unknown", "ignore")
    assert result.exit_code == 0
    assert np.asarray(Image.open(out / "b.png")).tolist() == [[255, 1], [1, 0]]


def test_inspect_json_from_manifests(run_cli, folder_dataset, tmp_path):
    out = tmp_path / "out"
    assert run_cli("convert", "folder", "--root", folder_dataset, "--out", out, "--name", "toy").exit_code == 0
    result = run_cli("inspect", out, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    total = 0
    ignore = 0
    for path in sorted((folder_dataset / "labels").iterdir()):
        array = np.asarray(Image.open(path))
        total += array.size
        ignore += int((array == 255).sum())
    trainval = report["splits"]["trainval"]
    assert trainval["records"] == 10 and sum(trainval["class_pixels"].values()) == total
    assert abs(trainval["ignore_fraction"] - ignore / total) < 1e-12
    assert report["duplicates"] == []  # trainval contains train and val: not a duplicate
    by_name = run_cli("inspect", "toy", "--json")
    assert json.loads(by_name.output)["splits"]["train"] == report["splits"]["train"]


def test_inspect_scans_records_without_manifest_and_flags_bad_values(run_cli, tmp_path):
    import tensorflow as tf

    out = tmp_path / "deeplab"
    out.mkdir()
    label = np.zeros((4, 5), np.uint8)
    label[0, 0] = 30
    image = np.zeros((4, 5, 3), np.uint8)

    def example(name: str, lab: np.ndarray) -> bytes:
        feature = {
            schema.IMAGE: tf.train.Feature(bytes_list=tf.train.BytesList(value=[png_bytes(image)])),
            schema.FILENAME: tf.train.Feature(bytes_list=tf.train.BytesList(value=[name.encode()])),
            schema.LABEL: tf.train.Feature(bytes_list=tf.train.BytesList(value=[png_bytes(lab, "L")])),
        }
        return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()

    for split, names in (("train", ["a", "b"]), ("val", ["b"])):
        with tf.io.TFRecordWriter(str(out / f"{split}-00000-of-00001.tfrecord")) as writer:
            for name in names:
                writer.write(example(name, label if name == "a" else np.ones((4, 5), np.uint8)))
    result = run_cli("inspect", out, "--dataset", "kitti_road", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["splits"]["train"]["class_pixels"] == {"background": 19, "30": 1, "road": 20}
    assert report["splits"]["train"]["out_of_range_values"] == {"30": 1}
    assert report["duplicates"] == [{"name": "b", "splits": ["train", "val"]}]


def test_verify_finds_tampering(run_cli, folder_dataset, tmp_path):
    out = tmp_path / "out"
    assert run_cli("convert", "folder", "--root", folder_dataset, "--out", out, "--name", "toy", "--split", "train=1", "--num-shards", "2").exit_code == 0
    assert run_cli("verify", out).exit_code == 0
    shard = out / "train-00001-of-00002.tfrecord"
    data = bytearray(shard.read_bytes())
    data[40] ^= 0xFF
    shard.write_bytes(bytes(data))
    result = run_cli("verify", out)
    assert result.exit_code == 1 and f"{shard}: bad data CRC" in result.stderr
    shard.unlink()
    (out / "train-00000-of-00009.tfrecord").write_bytes(b"")
    result = run_cli("verify", out)
    assert "shard listed in train.manifest.json is missing" in result.stderr
    assert "train-00000-of-00009.tfrecord: shard not listed" in result.stderr


def test_help_is_cheap_and_shows_examples(run_cli):
    code = "import sys, segprep.cli.main; print(sorted(m for m in ('numpy', 'PIL', 'tensorflow', 'rich', 'ruamel') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]", "segprep --help must not import heavy modules"
    for command in ("convert", "tfrecord", "remove-colormap", "lists", "inspect", "verify"):
        result = run_cli(command, "--help")
        assert result.exit_code == 0 and "Example" in result.output, command


def test_preview_panels_are_the_records_image_colour_label_and_overlay(run_cli, folder_dataset, tmp_path):
    from segprep.colormaps import colorize
    from segprep.preview import first_records, render_preview

    out = tmp_path / "out"
    assert run_cli("convert", "folder", "--root", folder_dataset, "--out", out, "--name", "toy", "--split", "train=1").exit_code == 0
    examples = first_records(sorted(out.glob("train-*")), 1)
    name = examples[0][schema.FILENAME][0].decode()
    label = np.asarray(Image.open(folder_dataset / "labels" / f"{name}.png"))
    image = np.asarray(Image.open(next((folder_dataset / "images").glob(name + ".*"))).convert("RGB"))
    height, width = label.shape
    sheet = np.asarray(render_preview(examples, builtin_colormap("pascal"), 255, row_height=height))
    colour = colorize(label, builtin_colormap("pascal"), 255)
    np.testing.assert_array_equal(sheet[:height, :width], image)
    np.testing.assert_array_equal(sheet[:height, width : 2 * width], colour)
    blended = np.where((label == 255)[..., None], image, np.floor(0.5 * image + 0.5 * colour + 0.5)).astype(np.uint8)
    np.testing.assert_array_equal(sheet[:height, 2 * width : 3 * width], blended)  # ignored pixels show the image
    target = tmp_path / "sheet.png"
    result = run_cli("inspect", out, "--preview", target, "--preview-count", "3")
    assert result.exit_code == 0 and Image.open(target).size[1] == 3 * (160 + 4)
