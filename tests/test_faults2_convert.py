"""Faults, round two (convert, lists, inspect): no hang, no stale split, no silent drop, no foreign file replaced.

Hangs run in a subprocess with a timeout: a regression fails the test instead of blocking CI.
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import make_camvid_layout, make_folder_dataset, png_bytes
from segprep.registry import load_registry

HANG_TIMEOUT = 60  # seconds; a conversion of a handful of tiny files takes about one


def segprep_subprocess(*args: object, registry: Path, timeout: float = HANG_TIMEOUT) -> subprocess.CompletedProcess:
    """segprep in its own process, so that a hang is a timeout here, not a blocked test run."""
    code = "import sys; from segprep.cli.main import main; sys.argv[0] = 'segprep'; main()"
    env = {**os.environ, "SEGPREP_REGISTRY": str(registry)}
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


# --------------------------------------------------------------------------- non-regular files


def test_fifo_image_in_a_camvid_list_is_refused_not_waited_for(tmp_path: Path, registry: Path) -> None:
    root = make_camvid_layout(tmp_path / "camvid", {"train": 3, "val": 2, "test": 1})
    victim = next((root / "train").iterdir())
    victim.unlink()
    os.mkfifo(victim)
    result = segprep_subprocess("convert", "camvid", "--root", root, "--out", tmp_path / "out", "--quiet", registry=registry)
    assert result.returncode == 1, result.stderr
    assert f"error: {victim}: image path is not a regular file (a FIFO)" in result.stderr
    assert "Traceback" not in result.stderr
    # The lock was released: a second run is not told that another run is writing.
    again = segprep_subprocess("convert", "camvid", "--root", root, "--out", tmp_path / "out", "--quiet", registry=registry)
    assert "another" not in again.stderr and again.returncode == 1


def test_fifo_list_file_is_refused(tmp_path: Path, registry: Path) -> None:
    root = make_camvid_layout(tmp_path / "camvid", {"train": 2, "val": 1, "test": 1})
    (root / "val.txt").unlink()
    os.mkfifo(root / "val.txt")
    result = segprep_subprocess("convert", "camvid", "--root", root, "--out", tmp_path / "out", "--quiet", registry=registry)
    assert result.returncode == 1
    assert error_lines(result.stderr) == [f"error: {root / 'val.txt'}: not a regular file (a FIFO)"]


def test_list_path_that_is_a_folder_says_so(tmp_path: Path, registry: Path, run_cli) -> None:
    (tmp_path / "train.txt").mkdir()
    result = run_cli("tfrecord", tmp_path / "train.txt", "--dataset", "camvid", "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert f"{tmp_path / 'train.txt'}: list path is a folder, not a file" in result.stderr
    assert "not found" not in result.stderr


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_folder_layout_names_non_regular_entries(tmp_path: Path, registry: Path, kind: str) -> None:
    root = make_folder_dataset(tmp_path / "data", count=4)
    image = root / "images" / "s000.png"
    image.unlink()
    os.mkfifo(image) if kind == "fifo" else image.mkdir()
    result = segprep_subprocess("convert", "folder", "--root", root, "--out", tmp_path / "out", "--name", "toy", "--quiet", registry=registry)
    assert result.returncode == 1
    reason = "image is not a regular file (a FIFO)" if kind == "fifo" else "image is a folder, not a file"
    assert f"error: {image}: {reason}" in result.stderr
    assert "label has no image" not in result.stderr  # its label is not blamed for it


# --------------------------------------------------------------------------- silent drops


def test_two_images_with_one_stem_are_an_error_naming_both(tmp_path: Path, registry: Path, run_cli) -> None:
    root = make_folder_dataset(tmp_path / "data", count=4)
    (root / "images" / "s000.jpg").write_bytes((root / "images" / "s001.jpg").read_bytes())  # s000.png exists too
    result = run_cli("convert", "folder", "--root", root, "--out", tmp_path / "out", "--name", "toy", "--quiet")
    assert result.exit_code == 1
    lines = error_lines(result.stderr)
    assert lines[0] == f"error: {root / 'images' / 's000.jpg'}: 2 images with the stem 's000' (s000.jpg, s000.png): rename or remove all but one"
    assert lines.count(lines[0]) == 1  # reported once, not once for each split and trainval
    assert "1 bad file(s)" in lines[-1]
    listed = run_cli("lists", root)
    assert listed.exit_code == 1 and "2 images with the stem 's000'" in listed.stderr
    assert not (root / "train.txt").exists()


def test_each_bad_file_is_reported_once(tmp_path: Path, registry: Path, run_cli) -> None:
    root = make_folder_dataset(tmp_path / "data", count=6)
    bad = root / "labels" / "s002.png"
    bad.write_bytes(png_bytes(np.full((16, 24), 9, np.uint8), "L"))  # value 9 of 4 classes
    result = run_cli("convert", "folder", "--root", root, "--out", tmp_path / "out", "--name", "toy", "--quiet", "--seed", "3")
    assert result.exit_code == 1
    lines = error_lines(result.stderr)
    assert len([line for line in lines if str(bad) in line]) == 1, lines
    assert lines[-1].startswith("error: 1 bad file(s);")


def test_fractions_below_one_say_how_many_images_are_left_out(tmp_path: Path, registry: Path, run_cli) -> None:
    root = make_folder_dataset(tmp_path / "data", count=8)
    result = run_cli("convert", "folder", "--root", root, "--out", tmp_path / "out", "--name", "toy", "--quiet", "--split", "train=0.5", "--split", "val=0.25")
    assert result.exit_code == 0, result.output
    assert "note: 2 of 8 samples are in no split: the fractions add up to 0.75 (train=0.5 + val=0.25), not 1" in result.stderr
    assert load_registry(registry).get("toy").splits == {"train": 4, "val": 2, "trainval": 6}
    listed = run_cli("lists", root, "--out", tmp_path / "lists", "--split", "train=0.5")
    assert listed.exit_code == 0 and "note: 4 of 8 samples are in no split" in listed.stderr


# --------------------------------------------------------------------------- stale splits


def test_fewer_splits_into_the_same_out_are_refused_then_pruned(tmp_path: Path, registry: Path, run_cli) -> None:
    root = make_folder_dataset(tmp_path / "data", count=8)
    out = tmp_path / "out"
    first = run_cli("convert", "folder", "--root", root, "--out", out, "--name", "toy", "--quiet", "--split", "train=0.75", "--split", "val=0.25")
    assert first.exit_code == 0
    before = sorted(p.name for p in out.iterdir())
    refused = run_cli("convert", "folder", "--root", root, "--out", out, "--name", "toy", "--quiet", "--split", "train=1.0")
    assert refused.exit_code == 1
    assert error_lines(refused.stderr) == [
        f"error: {out}: holds split(s) trainval, val of an earlier run that this run does not write and that may no longer match "
        "the dataset: add --prune to remove them, or name them in --splits to write them again (a split whose inputs did not change is kept as it is)"
    ]
    assert sorted(p.name for p in out.iterdir()) == before  # nothing touched
    pruned = run_cli("convert", "folder", "--root", root, "--out", out, "--name", "toy", "--quiet", "--split", "train=1.0", "--prune")
    assert pruned.exit_code == 0, pruned.output
    assert {p.name.split("-")[0].split(".")[0] for p in out.iterdir() if not p.name.startswith(".")} == {"train"}
    assert load_registry(registry).get("toy").splits == {"train": 8}
    assert run_cli("verify", out).exit_code == 0


def test_the_registry_records_exactly_the_splits_of_the_last_out(tmp_path: Path, registry: Path, run_cli) -> None:
    root = make_folder_dataset(tmp_path / "data", count=8)
    assert run_cli("convert", "folder", "--root", root, "--out", tmp_path / "a", "--name", "toy", "--quiet").exit_code == 0
    assert set(load_registry(registry).get("toy").splits) == {"train", "val", "trainval"}
    assert run_cli("convert", "folder", "--root", root, "--out", tmp_path / "b", "--name", "toy", "--quiet", "--split", "all=1.0").exit_code == 0
    entry = load_registry(registry).get("toy")
    assert entry.splits == {"all": 8} and entry.data_dir == str((tmp_path / "b").resolve())
    # A built-in dataset too: camvid converted with two splits records those two, not the others of an earlier run.
    camvid = make_camvid_layout(tmp_path / "camvid", {"train": 2, "val": 1, "test": 1})
    assert run_cli("convert", "camvid", "--root", camvid, "--out", tmp_path / "c1", "--quiet").exit_code == 0
    assert run_cli("convert", "camvid", "--root", camvid, "--out", tmp_path / "c2", "--quiet", "--splits", "train,val").exit_code == 0
    assert load_registry(registry).get("camvid").splits == {"train": 2, "val": 1}
    assert "test" not in yaml.safe_load(registry.read_text())["datasets"]["camvid"]["splits"]


def test_unchanged_splits_named_again_are_kept_not_rewritten(tmp_path: Path, registry: Path, run_cli) -> None:
    camvid = make_camvid_layout(tmp_path / "camvid", {"train": 2, "val": 1, "test": 1})
    out = tmp_path / "out"
    assert run_cli("convert", "camvid", "--root", camvid, "--out", out, "--quiet").exit_code == 0
    refused = run_cli("convert", "camvid", "--root", camvid, "--out", out, "--splits", "val")
    assert refused.exit_code == 1 and "holds split(s) test, train of an earlier run" in refused.stderr
    again = run_cli("convert", "camvid", "--root", camvid, "--out", out, "--splits", "train,val,test")
    assert again.exit_code == 0 and again.stdout.count("up to date") == 3


# --------------------------------------------------------------------------- outputs of inspect


def test_preview_never_replaces_a_manifest_shard_or_foreign_file(tmp_path: Path, registry: Path, run_cli) -> None:
    root = make_folder_dataset(tmp_path / "data", count=6)
    out = tmp_path / "out"
    assert run_cli("convert", "folder", "--root", root, "--out", out, "--name", "toy", "--quiet").exit_code == 0
    manifest = out / "train.manifest.json"
    shard = next(out.glob("train-*.tfrecord"))
    for target in (manifest, shard):
        data = target.read_bytes()
        result = run_cli("inspect", out, "--preview", target)
        assert result.exit_code == 1 and f"error: {target}" in result.stderr
        assert target.read_bytes() == data
    foreign = tmp_path / "notes.png"
    foreign.write_bytes(b"the user's own file")
    result = run_cli("inspect", out, "--preview", foreign)
    assert result.exit_code == 1 and "was not written by segprep" in result.stderr
    assert foreign.read_bytes() == b"the user's own file"
    # Its own earlier preview is replaced.
    sheet = tmp_path / "sheet.png"
    assert run_cli("inspect", out, "--preview", sheet, "--preview-count", "4").exit_code == 0
    tall = Image.open(sheet).size[1]
    assert run_cli("inspect", out, "--preview", sheet, "--preview-count", "2").exit_code == 0
    assert Image.open(sheet).size[1] < tall
    assert run_cli("verify", out).exit_code == 0


# --------------------------------------------------------------------------- colormap files, palette PNGs


def test_colormap_errors_name_the_colormap_file(tmp_path: Path, registry: Path, run_cli) -> None:
    root = make_folder_dataset(tmp_path / "data", count=4)
    short = tmp_path / "colors.txt"
    short.write_text("0 0 0\n255 0 0\n")
    result = run_cli("convert", "folder", "--root", root, "--out", tmp_path / "out", "--name", "toy", "--colormap", short)
    assert result.exit_code == 1
    assert error_lines(result.stderr) == [f"error: {short}: 2 colour(s) for 4 classes (one 'r g b' line per class)"]
    fifo = tmp_path / "fifo.txt"
    os.mkfifo(fifo)
    result = segprep_subprocess("register", "mine", "--class-names", "a,b", "--colormap", fifo, registry=registry)
    assert result.returncode == 2 and f"{fifo}: cannot read the colormap file (not a regular file (a FIFO))" in result.stderr
    assert str(registry) not in result.stderr


def _without_chunk(data: bytes, kind: bytes) -> bytes:
    out, pos = data[:8], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        if data[pos + 4 : pos + 8] != kind:
            out += data[pos : pos + 12 + length]
        pos += 12 + length
    return out


def test_palette_image_without_plte_is_refused_at_convert(tmp_path: Path, registry: Path, run_cli) -> None:
    root = make_folder_dataset(tmp_path / "data", count=4)
    image = root / "images" / "s000.png"
    palette_image = Image.fromarray(np.arange(16 * 24, dtype=np.uint8).reshape(16, 24) % 7, "P")
    palette_image.putpalette([v for i in range(256) for v in (i, 255 - i, i // 2)])
    buffer = io.BytesIO()
    palette_image.save(buffer, "PNG")
    image.write_bytes(_without_chunk(buffer.getvalue(), b"PLTE"))
    result = run_cli("convert", "folder", "--root", root, "--out", tmp_path / "out", "--name", "toy", "--quiet")
    assert result.exit_code == 1
    assert f"error: {image}: corrupt PNG (palette image without PLTE chunk)" in result.stderr


def test_low_bit_depth_grey_label_is_stored_as_8_bit(tmp_path: Path, registry: Path, run_cli) -> None:
    """A 4-bit grey label is stored as the 8-bit values every decoder reads (3 reads as 51), so verify's
    8-bit check holds for what convert wrote."""
    import zlib

    from segprep.formats.images import read_image_info

    root = make_folder_dataset(tmp_path / "data", count=2, num_classes=4, size=(4, 2))
    width, height = Image.open(root / "images" / "s000.png").size
    rows = b"".join(b"\x00" + bytes(((v % 2) << 4) | (v % 2) for v in range((width + 1) // 2)) for _ in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 4, 0, 0, 0, 0)
    (root / "labels" / "s000.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    (root / "class_names.txt").write_text("".join(f"c{i}\n" for i in range(20)))
    result = run_cli("convert", "folder", "--root", root, "--out", tmp_path / "out", "--name", "grey4", "--quiet", "--split", "all=1.0")
    assert result.exit_code == 0, result.output
    from conftest import read_records

    stored = {r["image/filename"].decode(): r["image/segmentation/class/encoded"] for r in read_records(tmp_path / "out", "all")}
    assert read_image_info(stored["s000"]).bit_depth == 8
    assert set(np.unique(np.asarray(Image.open(io.BytesIO(stored["s000"]))))) <= {0, 17}
    assert run_cli("verify", tmp_path / "out").exit_code == 0
