"""segtrain's commands end to end on a tiny dataset: fit, eval --json, score, predict, export (same predictions)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import convert_tiny_records, segtrain_runner
from PIL import Image


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    registry = root / "registry.yaml"
    convert_tiny_records(root, registry)
    run = segtrain_runner(registry)

    result = run("fit", "--dataset", "tiny", "--logdir", root / "run", "--steps", 2, "--batch-size", 2, "--crop-size", "32,32", "--checkpoint-every", 1, "--summary-every", 1)
    assert result.exit_code == 0, result.output
    return root, run


def test_fit_eval_json_document(trained):
    root, run = trained
    assert "already at step 2 of 2: nothing to train" in run("fit", "--dataset", "tiny", "--logdir", root / "run", "--steps", 2).output
    result = run("eval", "--dataset", "tiny", "--checkpoint", root / "run", "--split", "val", "--json", root / "val.json")
    assert result.exit_code == 0, result.output
    document = json.loads((root / "val.json").read_text())
    assert document["dataset"] == "tiny" and document["split"] == "val" and document["num_images"] == 2
    assert set(document["per_class_iou"]) == {"class0", "class1", "class2"}
    assert 0 <= document["miou"] <= 1 and document["ms_per_image"] > 0 and "binary" not in document


def test_unknown_split_and_missing_checkpoint(trained):
    root, run = trained
    result = run("eval", "--dataset", "tiny", "--checkpoint", root / "run", "--split", "test")
    assert result.exit_code == 1 and "has no split 'test'" in result.output
    (root / "empty").mkdir(exist_ok=True)
    result = run("eval", "--dataset", "tiny", "--checkpoint", root / "empty", "--split", "val")
    assert result.exit_code == 1 and "no checkpoint" in result.output


def test_predict_score_and_export_agree(trained, tmp_path):
    import tensorflow as tf

    from segtrain.predict import probabilities
    from segtrain.checkpoints import load_model

    root, run = trained
    images = sorted((root / "data" / "images").glob("*.png"))[:2]
    result = run("predict", "--checkpoint", root / "run", *images, "--out", tmp_path / "pred")
    assert result.exit_code == 0, result.output
    model, _ = load_model(root / "run")
    for path in images:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        classes = np.asarray(Image.open(tmp_path / "pred" / f"{path.stem}.png"))
        assert np.array_equal(classes, probabilities(model, rgb).argmax(-1))
        assert np.asarray(Image.open(tmp_path / "pred" / f"{path.stem}_color.png")).shape == rgb.shape
        assert (tmp_path / "pred" / f"{path.stem}_overlay.png").is_file()
    # score: the predictions against their own labels' folder
    gt = tmp_path / "gt"
    gt.mkdir()
    for path in images:
        (gt / f"{path.stem}.png").write_bytes((root / "data" / "labels" / f"{path.stem}.png").read_bytes())
    result = run("score", tmp_path / "pred", gt, "--dataset", "tiny", "--json", tmp_path / "score.json")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "score.json").read_text())["num_images"] == 2

    assert run("export", "--checkpoint", root / "run", "--out", tmp_path / "saved").exit_code == 0
    exported = tf.saved_model.load(str(tmp_path / "saved")).signatures["serving_default"]
    odd = np.random.default_rng(0).integers(0, 256, (1, 123, 217, 3), dtype=np.uint8)
    out = exported(images=tf.constant(odd))
    assert out["classes"].shape == (1, 123, 217) and out["probabilities"].shape == (1, 123, 217, 3)
    from segtrain.predict import make_predictor

    # Both run compiled graphs (the SavedModel's and predict's tf.function), optimised separately:
    # equal to float32 round-off, which at these logits is below 1e-4 (the classes are identical).
    expected = make_predictor(model)(odd[0])
    assert np.allclose(out["probabilities"].numpy()[0], expected, atol=1e-4)
    assert np.array_equal(out["classes"].numpy()[0], expected.argmax(-1))


def test_fit_no_image_pooling_builds_deeplabs_variables(tmp_path, registry):
    """fit --no-image-pooling trains DeepLab's add_image_level_feature=False network: exactly the variables of
    DeepLab's graph (../shared/deeplab_reference), recorded in segtrain.json so eval rebuilds it."""
    import json as json_module

    from conftest import REPO, make_folder_dataset
    from segtrain.checkpoints import load_model
    from segtrain.deeplab_model import variables

    reference = REPO.parent / "shared" / "deeplab_reference" / "mnv2_os16_aspp_decoder_no_image_pooling" / "reference.json"
    if not reference.is_file():
        pytest.skip("../shared/deeplab_reference is absent")
    expected = json_module.loads(reference.read_text())
    make_folder_dataset(tmp_path / "data", count=4, num_classes=expected["num_classes"], size=(40, 28))
    from segprep.cli.main import main as segprep
    from click.testing import CliRunner

    converted = CliRunner().invoke(segprep, ["convert", "folder", "--root", str(tmp_path / "data"), "--out", str(tmp_path / "tf"), "--name", "twelve",
                                             "--split", "train=0.5", "--split", "val=0.5", "--quiet", "--registry", str(registry)])
    assert converted.exit_code == 0, converted.output
    run = segtrain_runner(registry)
    result = run("fit", "--dataset", "twelve", "--logdir", tmp_path / "run", "--steps", 1, "--batch-size", 1, "--crop-size", "33,33",
                 "--no-image-pooling", "--bn-recompute-batches", 0)
    assert result.exit_code == 0, result.output
    assert json_module.loads((tmp_path / "run" / "segtrain.json").read_text())["model"]["image_pooling"] is False
    model, _ = load_model(tmp_path / "run")
    assert {name: list(v.shape) for name, v in variables(model).items()} == {v["name"]: v["shape"] for v in expected["variables"]}
    assert run("eval", "--dataset", "twelve", "--checkpoint", tmp_path / "run", "--split", "val").exit_code == 0
