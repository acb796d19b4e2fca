"""Issue 9 wired in: `segtrain import-deeplab`, DeepLab TF1 checkpoints as `fit --init-checkpoint`, Xception-65 in fit.

(a) Acceptance against DeepLab's own outputs (../shared/deeplab_reference; skipped where absent): import-deeplab,
    export, then the SavedModel's probabilities on input.png against softmax(logits_full.npy).
(b) Always: a small checkpoint in DeepLab's naming (MobilenetV2 x0.25 with ASPP and decoder, Momentum slots,
    global_step) goes through import-deeplab, eval, predict, export and fit --init-checkpoint like a fit logdir.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from conftest import REPO, make_folder_dataset
from faultkit import assert_refused, assert_unchanged, error_lines, snapshot
from PIL import Image
from test_deeplab_model import REFERENCE, REFERENCE_FOLDERS, fill, mnv2_025_shapes, with_training_state, write_tf1_checkpoint

REGISTRY_COMMANDS = ("fit", "eval", "import-deeplab")
TINY_FIT = ("fit", "--dataset", "tiny", "--steps", "1", "--batch-size", "2", "--crop-size", "32,32", "--checkpoint-every", "1", "--summary-every", "1")


class Setup:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.registry = root / "registry.yaml"
        self.values = fill(mnv2_025_shapes(num_classes=3, branches=3, decoder=True), seed=2)
        self.ckpt = Path(write_tf1_checkpoint(root / "zoo" / "model.ckpt-1234", with_training_state(self.values)))

    def cli(self, *args: object):  # type: ignore[no-untyped-def]
        from segtrain.cli import main

        words = [str(a) for a in args]
        if words[0] in REGISTRY_COMMANDS:
            words += ["--registry", str(self.registry)]
        return CliRunner().invoke(main, words, catch_exceptions=False)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Setup:
    """A 3-class DeepLab checkpoint (as a model zoo ships one), a 3-class dataset `tiny`, and the checkpoint imported."""
    from segprep.cli.main import main as segprep_main

    s = Setup(tmp_path_factory.mktemp("segtrain_import"))
    shutil.copy(REPO / "dataset_registry.yaml", s.registry)
    make_folder_dataset(s.root / "data", count=6, num_classes=3, size=(40, 28))
    result = CliRunner().invoke(segprep_main, ["convert", "folder", "--root", str(s.root / "data"), "--out", str(s.root / "tf"), "--name", "tiny", "--quiet", "--split", "train=0.5", "--split", "val=0.5", "--registry", str(s.registry)])
    assert result.exit_code == 0, result.output
    s.imported = s.root / "imported"
    s.import_result = s.cli("import-deeplab", s.ckpt, "--out", s.imported, "--dataset", "tiny")
    return s


def test_import_writes_a_logdir_with_every_variable(setup):
    result = setup.import_result
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    slots = sum(not n.endswith(("moving_mean", "moving_variance")) for n in setup.values)
    assert lines == [
        f"mobilenet_v2 (depth multiplier 0.25, output stride 16, ASPP rates 6/12/18, image pooling, decoder at stride 4), 3 classes: "
        f"{len(setup.values)} variables copied; ignored {slots} optimizer slots, global_step (1234) -> {setup.imported}"
    ]
    assert sorted(p.name for p in setup.imported.iterdir()) == ["checkpoint", "ckpt-1234.data-00000-of-00001", "ckpt-1234.index", "segtrain.json"]
    assert sorted(p.name for p in setup.root.iterdir() if p.name.startswith(".")) == []  # no staging folder left
    run = json.loads((setup.imported / "segtrain.json").read_text())
    assert run["model_format"] == 2 and run["dataset"] == "tiny" and run["class_names"] == ["class0", "class1", "class2"]
    assert run["model"]["backbone"] == "mobilenetv2" and run["model"]["depth_multiplier"] == 0.25 and run["model"]["decoder"] is True
    assert run["imported_from"]["checkpoint"] == str(setup.ckpt) and run["imported_from"]["global_step"] == 1234

    from segtrain.deeplab_model import variables
    from segtrain.checkpoints import load_model

    model, _ = load_model(setup.imported)
    table = variables(model)
    assert set(table) == set(setup.values)
    for name, value in setup.values.items():
        np.testing.assert_array_equal(table[name].numpy(), value, err_msg=name)


def test_eval_predict_export_take_the_imported_logdir(setup, tmp_path):
    from segtrain.predict import probabilities
    from segtrain.checkpoints import load_model

    result = setup.cli("eval", "--dataset", "tiny", "--checkpoint", setup.imported, "--split", "val", "--json", tmp_path / "val.json")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "val.json").read_text())["num_images"] == 3
    image = sorted((setup.root / "data" / "images").glob("*.png"))[0]
    result = setup.cli("predict", "--checkpoint", setup.imported, image, "--out", tmp_path / "pred")
    assert result.exit_code == 0, result.output
    model, _ = load_model(setup.imported)
    rgb = np.asarray(Image.open(image).convert("RGB"))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "pred" / f"{image.stem}.png")), probabilities(model, rgb).argmax(-1))
    result = setup.cli("export", "--checkpoint", setup.imported, "--out", tmp_path / "saved")
    assert result.exit_code == 0, result.output
    serve = tf.saved_model.load(str(tmp_path / "saved")).signatures["serving_default"]
    out = serve(images=tf.constant(rgb[None]))
    np.testing.assert_allclose(out["probabilities"].numpy()[0], probabilities(model, rgb), atol=1e-5)


def test_fit_starts_from_the_deeplab_checkpoint_or_the_imported_logdir(setup, tmp_path):
    from segtrain.deeplab_model import variables
    from segtrain.checkpoints import load_model

    cases = {
        "tf1 all-but-logits": (setup.ckpt, "all-but-logits", len(setup.values) - 2),
        "tf1 folder, all": (setup.ckpt.parent, "all", len(setup.values)),
        "imported logdir, backbone": (setup.imported, "backbone", sum(n.startswith("MobilenetV2/") for n in setup.values)),
    }
    for name, (origin, mode, count) in cases.items():
        logdir = tmp_path / name.replace(" ", "_").replace(",", "")
        # --steps 1 at --lr 1e-12: the copied weights stay what they were, to float32 round-off
        result = setup.cli(*TINY_FIT, "--depth-multiplier", "0.25", "--lr", "1e-12", "--weight-decay", "0", "--logdir", logdir, "--init-checkpoint", origin, "--init-mode", mode)
        assert result.exit_code == 0, result.output
        assert f"initialized {count} variables from {origin} (--init-mode {mode})" in result.stdout
        model, _ = load_model(logdir)
        np.testing.assert_allclose(variables(model)["MobilenetV2/Conv/weights"].numpy(), setup.values["MobilenetV2/Conv/weights"], atol=1e-6)


def refused(result, *names):  # type: ignore[no-untyped-def]
    assert_refused(result, *names)
    assert len(error_lines(result)) == 1, result.stderr


@pytest.mark.fault("segtrain", "fit", "import-deeplab")
def test_refusals_are_one_line_and_write_nothing(setup, tmp_path):
    before = snapshot(setup.ckpt.parent, setup.imported)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    refused(setup.cli("import-deeplab", setup.ckpt, "--out", busy), busy, "not empty")
    inside = setup.ckpt.parent / "logdir"
    refused(setup.cli("import-deeplab", setup.ckpt, "--out", inside), inside, "--out")
    assert not inside.exists()
    result = setup.cli("import-deeplab", setup.ckpt, "--out", tmp_path / "voc", "--dataset", "pascal_voc_seg")
    refused(result, setup.ckpt, "logits have 3 classes, dataset 'pascal_voc_seg' has 21")
    fit_ckpt = tf.train.latest_checkpoint(str(setup.imported))
    refused(setup.cli("import-deeplab", fit_ckpt, "--out", tmp_path / "again"), fit_ckpt, "TF2 object-based checkpoint")
    foreign = write_tf1_checkpoint(tmp_path / "vgg" / "model.ckpt", {"vgg_16/conv1/conv1_1/weights": np.zeros((3, 3, 3, 4), np.float32)})
    refused(setup.cli("import-deeplab", foreign, "--out", tmp_path / "vgg_out"), foreign, "not a DeepLab checkpoint", "vgg_16")
    # An imported logdir holds no training state: fit may start from it, never resume it.
    result = setup.cli(*TINY_FIT, "--depth-multiplier", "0.25", "--logdir", setup.imported)
    refused(result, setup.imported / "segtrain.json", "imported by segtrain import-deeplab", f"--init-checkpoint {setup.imported}")
    # Another backbone: both named, before any training.
    result = setup.cli(*TINY_FIT, "--backbone", "xception41", "--logdir", tmp_path / "x41", "--init-checkpoint", setup.ckpt)
    refused(result, setup.ckpt, "'MobilenetV2'", "'xception_41'")
    result = setup.cli(*TINY_FIT, "--backbone", "xception41", "--logdir", tmp_path / "x41", "--init-checkpoint", setup.imported)
    refused(result, setup.imported, "mobilenetv2", "xception41")
    # Another width: the variable and both shapes.
    result = setup.cli(*TINY_FIT, "--depth-multiplier", "0.5", "--logdir", tmp_path / "wide", "--init-checkpoint", setup.ckpt)
    refused(result, setup.ckpt, "'MobilenetV2/Conv/weights' has shape [3, 3, 3, 8]", "needs [3, 3, 3, 16]")
    # xception65 has no Keras ImageNet weights: the TF1 route is named.
    result = setup.cli(*TINY_FIT, "--backbone", "xception65", "--backbone-weights", "imagenet", "--logdir", tmp_path / "x65")
    refused(result, "--backbone-weights imagenet", "xception_65_imagenet")
    for result_dir in ("voc", "again", "vgg_out", "x41", "wide", "x65"):
        assert not (tmp_path / result_dir).exists(), result_dir
    assert_unchanged(before, setup.ckpt.parent, setup.imported)


@pytest.mark.parametrize("output_stride", ["16"])  # output stride 8's atrous plan is held to DeepLab's by test_deeplab_model
def test_fit_trains_xception65(setup, tmp_path, output_stride):
    result = setup.cli(*TINY_FIT, "--backbone", "xception65", "--output-stride", output_stride, "--logdir", tmp_path / "x65")
    assert result.exit_code == 0, result.output
    run = json.loads((tmp_path / "x65" / "segtrain.json").read_text())
    assert (run["model"]["backbone"], run["model"]["output_stride"]) == ("xception65", int(output_stride))
    assert tf.train.latest_checkpoint(str(tmp_path / "x65")).endswith("ckpt-1")


# ------------------------------------------------------------------ (a) DeepLab's own outputs (../shared)


@pytest.mark.parametrize("folder", REFERENCE_FOLDERS)
def test_exported_import_gives_deeplabs_probabilities(folder, tmp_path):
    """Issue 9's acceptance: import-deeplab, export, SavedModel on input.png against DeepLab's logits."""
    if not (REFERENCE / "make_checkpoint.py").is_file():
        pytest.skip("../shared/deeplab_reference is absent")
    reference = REFERENCE / folder
    config = json.loads((reference / "reference.json").read_text())
    prefix = tmp_path / "zoo" / "model.ckpt"
    prefix.parent.mkdir()
    subprocess.run([sys.executable, str(REFERENCE / "make_checkpoint.py"), str(reference), str(prefix)], check=True, capture_output=True)
    from segtrain.cli import main

    result = CliRunner().invoke(main, ["import-deeplab", str(prefix), "--out", str(tmp_path / "logdir"), "--output-stride", str(config["output_stride"])])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["export", "--checkpoint", str(tmp_path / "logdir"), "--out", str(tmp_path / "saved")])
    assert result.exit_code == 0, result.output

    serve = tf.saved_model.load(str(tmp_path / "saved")).signatures["serving_default"]
    image = np.array(Image.open(reference / "input.png").convert("RGB"))
    out = serve(images=tf.constant(image[None]))
    logits = np.load(reference / "logits_full.npy")
    expected = tf.nn.softmax(logits, axis=-1).numpy()
    difference = float(np.abs(out["probabilities"].numpy()[0] - expected).max())
    agreement = float((out["classes"].numpy()[0] == np.array(Image.open(reference / "prediction.png"))).mean())
    print(f"\nACCEPTANCE {folder}: max|dprobabilities|={difference:.3g} classes==prediction.png on {agreement:.4%}")
    assert difference <= 2e-4
    assert agreement >= 0.999
