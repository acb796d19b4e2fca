"""fit --attention (DANet's position / channel attention after ASPP) and --aux-loss (an auxiliary FCN head in training only)."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import convert_tiny_records, segtrain_runner
from segtrain.deeplab_model import DeepLabConfig, build, build_training, variables, variables_for_mode
from segtrain.errors import RunFileError
from segtrain.losses import LossConfig, segmentation_loss
from segtrain.model import ModelConfig

TINY = {"num_classes": 3, "depth_multiplier": 0.25, "filters": 16}


def _images(count: int = 2, size: int = 33, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (count, size, size, 3)).astype(np.float32)


def _copy_shared(source: keras.Model, target: keras.Model) -> None:
    """Every variable of source into the same-named (TF1 name) variable of target."""
    targets = variables(target)
    for name, variable in variables(source).items():
        targets[name].assign(variable)


@pytest.mark.parametrize("kind", ["position", "channel", "dual"])
def test_attention_starts_as_deeplab_and_learns_away_from_it(kind):
    # bn_momentum 0: one training-mode pass sets the batch-norm statistics to the batch's, so activations are not ~1e-6
    base = build(DeepLabConfig(weight_init="keras", bn_momentum=0.0, **TINY))
    attended = build(DeepLabConfig(attention=kind, weight_init="keras", bn_momentum=0.0, **TINY))
    base(_images(seed=5), training=True)
    added = set(variables(attended)) - set(variables(base))
    assert added and all(name.startswith("attention/") for name in added)
    gammas = [name for name in added if name.endswith("/gamma")]
    assert len(gammas) == (2 if kind == "dual" else 1)
    _copy_shared(base, attended)
    images = _images()
    scale = float(tf.reduce_max(tf.abs(base(images))))
    assert scale > 0.1 and float(tf.reduce_max(tf.abs(base(images) - attended(images)))) <= 1e-5 * scale  # float round-off at most
    table = variables(attended)
    for name in gammas:
        assert float(table[name]) == 0.0
        table[name].assign(0.5)
    assert float(tf.reduce_max(tf.abs(base(images) - attended(images)))) > 1e-3 * scale


def test_attention_variables_are_outside_every_init_mode():
    model = build(DeepLabConfig(attention="dual", **TINY))
    for mode in ("all", "all-but-logits", "backbone"):
        assert not any(name.startswith("attention/") for name in variables_for_mode(model, "mobilenetv2", mode))
    assert len(variables_for_mode(model, "mobilenetv2", "all")) == len(variables(build(DeepLabConfig(**TINY))))


def test_deeplab_checkpoint_initializes_an_attention_model(tmp_path):
    """A TF1 checkpoint of DeepLab's variables (no attention/...) fills an attention model in modes all and all-but-logits."""
    from test_deeplab_model import write_tf1_checkpoint

    from segtrain.deeplab_checkpoint import load_deeplab_weights

    base = build(DeepLabConfig(**TINY))
    prefix = write_tf1_checkpoint(tmp_path / "model.ckpt", {name: v.numpy() for name, v in variables(base).items()})
    images = _images()
    for mode in ("all", "all-but-logits"):
        attended = build(DeepLabConfig(attention="dual", **TINY))
        report = load_deeplab_weights(attended, "mobilenetv2", prefix, mode)
        assert report.copied == len(variables_for_mode(attended, "mobilenetv2", mode))
        if mode == "all":
            assert float(tf.reduce_max(tf.abs(base(images) - attended(images)))) < 1e-5


def test_aux_head_is_in_training_only_and_its_loss_is_weighted():
    from segtrain.train import make_train_step

    config = DeepLabConfig(aux_loss=0.4, **TINY)
    model, training, aux_layers = build_training(config)
    assert len(model.outputs) == 1 and len(training.outputs) == 2
    inference, with_aux = variables(model), variables(training)
    assert set(with_aux) - set(inference) == {name for name in with_aux if name.startswith("aux/")} != set()
    assert set(inference) <= set(with_aux) and all(with_aux[name] is inference[name] for name in inference)
    assert {layer.name for layer in aux_layers} >= {"aux.conv0", "aux.logits"}
    assert set(variables(build(config))) == set(inference)  # what eval, predict and export build
    no_aux = build_training(DeepLabConfig(**TINY))
    assert no_aux[0] is no_aux[1] and no_aux[2] == []

    training.get_layer("concat_projection_dropout").rate = 0.0  # a deterministic forward pass to recompute by hand
    images = _images()
    labels = np.random.default_rng(1).integers(0, 3, (2, 33, 33, 1)).astype(np.uint8)
    labels[0, :5] = 255
    loss_config = LossConfig(num_classes=3)
    step = make_train_step(training, keras.optimizers.SGD(0.0), loss_config, aux_weight=0.4)
    loss, _ = step(tf.constant(images), tf.constant(labels))
    logits, aux_logits = training(images, training=True)
    main, aux = segmentation_loss(labels, logits, loss_config), segmentation_loss(labels, aux_logits, loss_config)
    assert float(aux) > 0 and abs(float(loss) - float(main + 0.4 * aux)) < 1e-4


def test_run_file_records_and_validates_the_variants(tmp_path):
    from segtrain.labels import Labels
    from segtrain.run_file import load_run, save_run

    config = ModelConfig(attention="channel", aux_loss=0.25, **TINY)
    save_run(tmp_path, config, Labels.default(3))
    run = load_run(tmp_path)
    assert (run["model"]["attention"], run["model"]["aux_loss"]) == ("channel", 0.25)
    assert ModelConfig.from_architecture(run["model"]) == ModelConfig(attention="channel", aux_loss=0.25, **TINY)
    document = json.loads((tmp_path / "segtrain.json").read_text())
    for key, value, wanted in (("attention", "spatial", '"model.attention" must be null or "position"'), ("aux_loss", -1, '"model.aux_loss" must be a number >= 0'),
                               ("aux_loss", True, '"model.aux_loss" must be')):
        broken = json.loads(json.dumps(document))
        broken["model"][key] = value
        (tmp_path / "segtrain.json").write_text(json.dumps(broken))
        with pytest.raises(RunFileError, match=wanted.replace(".", r"\.")):
            load_run(tmp_path)
    with pytest.raises(ValueError, match="attention"):
        DeepLabConfig(attention="spatial", **TINY)


def test_fit_with_attention_and_aux_loss_then_resume_eval_export(tmp_path, registry):
    from segtrain.checkpoints import load_model
    from segtrain.export import tflite_ops

    data = convert_tiny_records(tmp_path, registry)
    run = segtrain_runner(registry)
    common = ("--dataset", "tiny", "--data", data, "--logdir", tmp_path / "run", "--batch-size", 2, "--crop-size", "33,33", "--width", 0.25,
              "--head-filters", 16, "--bn-recompute-batches", 0, "--seed", 0)
    result = run("fit", *common, "--steps", 2, "--attention", "dual", "--aux-loss", 0.4)
    assert result.exit_code == 0, result.output
    recorded = json.loads((tmp_path / "run" / "segtrain.json").read_text())["model"]
    assert (recorded["attention"], recorded["aux_loss"]) == ("dual", 0.4)
    saved = {name for name, _ in tf.train.list_variables(str(tmp_path / "run" / "ckpt-2"))}
    assert any(name.startswith("aux_head/") for name in saved)  # the auxiliary head is saved, beside the model

    refused = run("fit", *common, "--steps", 3, "--attention", "position", "--aux-loss", 0.4)
    assert refused.exit_code != 0 and "attention" in refused.output
    refused = run("fit", *common, "--steps", 3, "--attention", "dual")
    assert refused.exit_code != 0 and "auxiliary head cannot be added or removed" in refused.output
    resumed = run("fit", *common, "--steps", 3, "--attention", "dual", "--aux-loss", 0.2)  # the weight may change
    assert resumed.exit_code == 0, resumed.output
    assert "trained steps 2..3" in resumed.output

    model, _ = load_model(tmp_path / "run")
    assert len(model.outputs) == 1 and not any(name.startswith("aux/") for name in variables(model))
    assert any(name.startswith("attention/") for name in variables(model))
    assert run("eval", "--dataset", "tiny", "--data", data, "--checkpoint", tmp_path / "run", "--split", "val").exit_code == 0
    exported = run("export", "--checkpoint", tmp_path / "run", "--out", tmp_path / "saved")
    assert exported.exit_code == 0, exported.output
    exported = run("export", "--checkpoint", tmp_path / "run", "--format", "tflite", "--out", tmp_path / "model.tflite")
    assert exported.exit_code == 0, exported.output
    ops = tflite_ops((tmp_path / "model.tflite").read_bytes())
    assert "BATCH_MATMUL" in ops and not [op for op in ops if op.startswith("Flex") or op == "CUSTOM"], ops
