"""`segprep register` for custom datasets and `segprep inspect --class-weights` against direct computations."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_folder_dataset, png_bytes

from segprep.class_weights import class_weights
from segprep.registry import load_registry


def test_register_new_dataset_then_update_one_field(run_cli, registry, tmp_path):
    colors = tmp_path / "colors.txt"
    colors.write_text("# r g b\n0 0 0\n128,64,128\n250 170 30\n")
    result = run_cli("register", "roads", "--class-names", "background,road,sign", "--colormap", colors, "--ignore-label", "200")
    assert result.exit_code == 0, result.output
    entry = load_registry(registry).get("roads")
    assert (entry.num_classes, entry.ignore_label, entry.class_names) == (3, 200, ["background", "road", "sign"])
    assert entry.colormap == [[0, 0, 0], [128, 64, 128], [250, 170, 30]]
    assert entry.splits == {} and entry.class_weights is None
    result = run_cli("register", "roads", "--data-dir", tmp_path / "tf", "--class-weights", "0.5,1,2")
    assert result.exit_code == 0, result.output
    entry = load_registry(registry).get("roads")
    assert entry.data_dir == str((tmp_path / "tf").resolve()) and entry.class_weights == [0.5, 1.0, 2.0]
    assert entry.ignore_label == 200 and entry.colormap[1] == [128, 64, 128]
    # The built-in entries and the file's comments are untouched.
    text = registry.read_text()
    assert text.startswith("#") and load_registry(registry).get("camvid").num_classes == 11


@pytest.mark.parametrize(
    "args, message",
    [
        (["new1"], "give its classes"),
        (["new2", "--class-names", "a,b", "--num-classes", "3"], "--num-classes 3 but 2 class names"),
        (["new3", "--class-names", "a,a"], "duplicate class name(s): a"),
        (["new4", "--class-names", "a,b", "--class-weights", "1,x"], "expected comma-separated numbers"),
    ],
)
def test_register_usage_errors(run_cli, args, message):
    result = run_cli("register", *args)
    assert result.exit_code == 2 and message in result.output


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["bad1", "--class-names", "a,b", "--class-weights", "1,2,3"], 1, "class_weights must be null or a list of 2 numbers"),
        (["bad2", "--class-names", "a,b,c", "--colormap", "nosuchmap"], 2, "nosuchmap: --colormap is neither a built-in colormap"),
    ],
)
def test_register_invalid_entry_is_refused_and_registry_unchanged(run_cli, registry, args, code, message):
    before = registry.read_bytes()
    result = run_cli("register", *args)
    assert result.exit_code == code and message in result.stderr
    assert registry.read_bytes() == before


def test_register_class_count_change_clears_weights(run_cli, registry):
    assert run_cli("register", "w", "--class-names", "a,b", "--class-weights", "1,2").exit_code == 0
    result = run_cli("register", "w", "--class-names", "a,b,c")
    assert result.exit_code == 0 and "class_weights are cleared" in result.stderr
    assert load_registry(registry).get("w").class_weights is None


def brute_force_weights(labels: list[np.ndarray], num_classes: int, ignore: int, method: str) -> list[float]:
    """Eigen & Fergus median frequency / inverse frequency, straight from the definitions, pixel by pixel."""
    counts = [sum(int((lab == c).sum()) for lab in labels) for c in range(num_classes)]
    labelled = [int((lab != ignore).sum()) for lab in labels]
    if method == "inverse":
        present = [c for c in range(num_classes) if counts[c]]
        total = sum(counts)
        return [total / (len(present) * counts[c]) if counts[c] else 0.0 for c in range(num_classes)]
    freq = {}
    for c in range(num_classes):
        pixels_of_images_with_c = sum(n for lab, n in zip(labels, labelled) if (lab == c).any())
        if counts[c]:
            freq[c] = counts[c] / pixels_of_images_with_c
    median = float(np.median(list(freq.values())))
    return [median / freq[c] if c in freq else 0.0 for c in range(num_classes)]


@pytest.mark.parametrize("method", ["median-frequency", "inverse"])
def test_inspect_class_weights_written_to_registry(run_cli, registry, tmp_path, method):
    root = tmp_path / "data"
    make_folder_dataset(root, count=12, num_classes=5, seed=3)
    rng = np.random.default_rng(1)
    labels = {}
    for i, path in enumerate(sorted((root / "labels").glob("*.png"))):
        from PIL import Image

        with Image.open(path) as image:
            width, height = image.size
        # Unbalanced: class 4 never appears, class 3 only in a few images, plenty of ignore.
        label = rng.choice([0, 0, 0, 1, 1, 2, 255], size=(height, width)).astype(np.uint8)
        if i % 4 == 0:
            label[:2, :3] = 3
        path.write_bytes(png_bytes(label, "L"))
        labels[path.stem] = label
    out = tmp_path / "out"
    assert run_cli("convert", "folder", "--root", root, "--out", out, "--name", "unbalanced", "--quiet").exit_code == 0
    arg = ["--class-weights"] if method == "median-frequency" else ["--class-weights", method]
    result = run_cli("inspect", "unbalanced", *arg)
    assert result.exit_code == 0, result.output
    assert "no pixels of class(es) class4 in train: weight 0" in result.stderr
    from segprep.manifest import read_manifest

    train_names = [s["name"] for s in read_manifest(out / "train.manifest.json")["samples"]]
    expected = brute_force_weights([labels[n] for n in train_names], 5, 255, method)
    written = load_registry(registry).get("unbalanced").class_weights
    assert written == pytest.approx(expected, rel=1e-5)
    assert written[4] == 0.0 and written[3] > written[0]


def test_class_weights_refuses_unknown_method_and_empty_split():
    with pytest.raises(ValueError, match="unknown class-weight method"):
        class_weights("sqrt", np.ones(256), np.ones(256), 3)
    with pytest.raises(ValueError, match="no labelled pixels"):
        class_weights("inverse", np.zeros(256), np.zeros(256), 3)


def test_inspect_class_weights_unknown_split_is_usage_error(run_cli, tmp_path):
    root = make_folder_dataset(tmp_path / "data", count=6)
    assert run_cli("convert", "folder", "--root", root, "--out", tmp_path / "out", "--name", "small", "--quiet").exit_code == 0
    result = run_cli("inspect", tmp_path / "out", "--class-weights", "--weights-split", "test")
    assert result.exit_code == 2 and "no split 'test'" in result.output
