"""Every kind of bad input: exit 1, each bad file named with its reason, no finished-looking shard of the split."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import jpeg_bytes, png_bytes


def convert(run_cli, root, out, *extra):
    return run_cli("convert", "folder", "--root", root, "--out", out, "--name", "toy", "--split", "train=1", "--num-shards", "2", *extra)


def corrupt_truncate(root, stem):
    path = next((root / "images").glob(stem + ".*"))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path, "truncated"


def corrupt_rgb_label(root, stem):
    path = root / "labels" / f"{stem}.png"
    path.write_bytes(png_bytes(np.zeros((16, 24, 3), np.uint8)))
    return path, "RGB label"


def corrupt_16bit_label(root, stem):
    path = root / "labels" / f"{stem}.png"
    path.write_bytes(png_bytes(np.full((16, 24), 3, np.uint16)))
    return path, "16-bit label"


def corrupt_values(root, stem):
    from PIL import Image

    path = root / "labels" / f"{stem}.png"
    array = np.asarray(Image.open(path)).copy()
    array[1, :2] = 9
    array[2, 0] = 200
    path.write_bytes(png_bytes(array, "L"))
    return path, "label values outside [0, 4) ∪ {255}: 9 (2 px), 200 (1 px)"


def corrupt_size(root, stem):
    path = root / "labels" / f"{stem}.png"
    path.write_bytes(png_bytes(np.zeros((5, 7), np.uint8), "L"))
    return path, "label is 7x5 but image"


def corrupt_missing_label(root, stem):
    path = root / "labels" / f"{stem}.png"
    path.unlink()
    image = next((root / "images").glob(stem + ".*"))
    return image, "image has no label"


def corrupt_missing_image(root, stem):
    image = next((root / "images").glob(stem + ".*"))
    image.unlink()
    return root / "labels" / f"{stem}.png", "label has no image"


def corrupt_jpeg_label(root, stem):
    path = root / "labels" / f"{stem}.png"
    path.write_bytes(jpeg_bytes(np.zeros((16, 24, 3), np.uint8)))
    return path, "label is not a PNG"


CORRUPTIONS = [corrupt_truncate, corrupt_rgb_label, corrupt_16bit_label, corrupt_values, corrupt_size,
               corrupt_missing_label, corrupt_missing_image, corrupt_jpeg_label]


@pytest.mark.parametrize("corrupt", CORRUPTIONS, ids=lambda f: f.__name__)
def test_bad_files_are_all_named_and_nothing_is_left(run_cli, folder_dataset, tmp_path, corrupt):
    bad = [corrupt(folder_dataset, "s003"), corrupt(folder_dataset, "s006")]
    out = tmp_path / "out"
    result = convert(run_cli, folder_dataset, out)
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    for path, reason in bad:
        assert any(str(path) in line and reason in line for line in errors), (path, reason, result.stderr)
    assert "nothing written for split(s) train (2 bad)" in errors[-1]
    assert not list(out.glob("train-*")) and not list(out.glob("*.manifest.json")) and not list(out.glob(".*"))


def test_skip_invalid_writes_the_rest_and_records_why(run_cli, folder_dataset, tmp_path, registry):
    from segprep.registry import load_registry

    path, reason = corrupt_values(folder_dataset, "s004")
    out = tmp_path / "out"
    result = convert(run_cli, folder_dataset, out, "--skip-invalid")
    assert result.exit_code == 0, result.output
    assert f"warning: skipped {path}" in result.stderr
    manifest = json.loads((out / "train.manifest.json").read_text())
    assert manifest["num_records"] == 9 and "s004" not in [s["name"] for s in manifest["samples"]]
    assert manifest["skipped"] == [{"name": "s004", "path": str(path), "reason": reason}]
    assert load_registry(registry).get("toy").splits["train"] == 9
    assert run_cli("verify", out).exit_code == 0


def test_a_failing_split_does_not_stop_the_others(run_cli, folder_dataset, tmp_path):
    from segprep.splits import seeded_split

    names = sorted(p.stem for p in (folder_dataset / "images").iterdir())
    val_name = seeded_split(names, {"train": 0.7, "val": 0.3}, 0)["val"][0]
    corrupt_values(folder_dataset, val_name)
    out = tmp_path / "out"
    result = run_cli("convert", "folder", "--root", folder_dataset, "--out", out, "--name", "toy",
                     "--split", "train=0.7", "--split", "val=0.3")
    assert result.exit_code == 1
    assert (out / "train.manifest.json").exists()
    assert not list(out.glob("val-*")) and not list(out.glob("trainval-*"))


def test_list_with_blank_line_and_unknown_stem(run_cli, folder_dataset, tmp_path):
    lst = tmp_path / "train.txt"
    lst.write_text("s000\n\ns001\nnope\n\n")
    out = tmp_path / "out"
    result = run_cli("tfrecord", lst, "--dataset", "pascal_voc_seg", "--out", out,
                     "--image-dir", folder_dataset / "images", "--label-dir", folder_dataset / "labels")
    assert result.exit_code == 1
    assert f"{lst}:2: blank line in list" in result.stderr
    assert f"{lst}:4: unknown stem 'nope'" in result.stderr
    assert not list(out.glob("train-*"))


def test_bad_registry_is_a_clear_error(run_cli, registry, folder_dataset, tmp_path):
    registry.write_text("datasets:\n  x: {num_classes: 2}\n")
    result = convert(run_cli, folder_dataset, tmp_path / "out")
    assert result.exit_code == 1 and "missing key 'ignore_label'" in result.stderr


def test_usage_errors_exit_2(run_cli, folder_dataset, tmp_path):
    assert run_cli("convert", "nope", "--root", folder_dataset, "--out", tmp_path).exit_code == 2
    assert run_cli("convert", "folder", "--root", folder_dataset, "--out", tmp_path / "out").exit_code == 2  # no --name
