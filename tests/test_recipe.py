"""fit's recipe options: DeepLab's L2 weight decay, AdamW, label smoothing, --width / --head-filters, crop defaults, --xla on CPU."""

from __future__ import annotations

import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from conftest import REPO, make_folder_dataset

from segtrain.deeplab_model import variables
from segtrain.losses import LossConfig, segmentation_loss
from segtrain.model import ModelConfig, build_deeplab
from segtrain.optim import DEFAULTS, decayed_kernels, l2_penalty, loss_regularizer, make_optimizer
from segtrain.recipe import MAX_CROP, crop_for, default_crop, grid_side

TINY = {"num_classes": 3, "depth_multiplier": 0.35, "filters": 8}


@pytest.fixture(scope="module")
def tiny_model():
    return build_deeplab(ModelConfig(**TINY))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A converted 3-class dataset, every image in train (28..29 x 40..42 pixels), and its registry."""
    from segprep.cli.main import main

    root = tmp_path_factory.mktemp("recipe")
    registry = root / "registry.yaml"
    registry.write_text((REPO / "dataset_registry.yaml").read_text())
    make_folder_dataset(root / "d", count=6, num_classes=3, size=(40, 28))
    result = CliRunner().invoke(main, ["convert", "folder", "--root", str(root / "d"), "--out", str(root / "tf"), "--name", "tiny", "--quiet", "--split", "train=1.0", "--registry", str(registry)])
    assert result.exit_code == 0, result.output
    return root / "tf", registry


# ------------------------------------------------------------------ weight decay


def _is_l2_name(name: str) -> bool:
    return name.endswith("/weights")


def test_l2_covers_conv_kernels_only(tiny_model):
    """DeepLab's slim scopes: conv `weights` regularized; depthwise_weights, biases, batch norm never."""
    table = variables(tiny_model)
    kernels = decayed_kernels(tiny_model)
    assert set(kernels) == {name for name in table if _is_l2_name(name)}
    assert not any(n.endswith(("depthwise_weights", "biases", "gamma", "beta", "moving_mean", "moving_variance")) for n in kernels)
    for expected in ("MobilenetV2/Conv/weights", "MobilenetV2/expanded_conv_16/project/weights", "image_pooling/weights", "aspp0/weights",
                     "aspp1_pointwise/weights", "concat_projection/weights", "decoder/feature_projection0/weights", "decoder/decoder_conv1_pointwise/weights", "logits/semantic/weights"):
        assert expected in kernels
    for excluded in ("MobilenetV2/expanded_conv/depthwise/depthwise_weights", "aspp1_depthwise/depthwise_weights", "logits/semantic/biases", "aspp0/BatchNorm/gamma", "aspp0/BatchNorm/beta"):
        assert excluded in table and excluded not in kernels
    # slim MobilenetV2: Conv, expanded_conv/project, 16 x (expand, project); heads: pooling, aspp0, 3 pointwise, projection, decoder 3, logits
    assert len(kernels) == 1 + 1 + 32 + 10


def test_l2_kernel_count_xception65():
    model = build_deeplab(ModelConfig(num_classes=3, backbone="xception65", filters=8))
    kernels = decayed_kernels(model)
    assert len(kernels) == 79 and not any("depthwise" in n.rsplit("/", 1)[1] for n in kernels)
    assert sum(n.endswith("depthwise_weights") for n in variables(model)) == 68


def test_penalty_value_and_gradients(tiny_model):
    """W/2 * sum(k^2) over exactly the kernels; its gradient is W*k there and nothing for every other variable."""
    decay = 4e-5
    regularizer = loss_regularizer("sgd", tiny_model, decay)
    table = variables(tiny_model)
    expected = decay / 2 * sum(float(np.sum(np.square(table[n].numpy().astype(np.float64)))) for n in table if _is_l2_name(n))
    with tf.GradientTape() as tape:
        penalty = regularizer()
    assert float(penalty) == pytest.approx(expected, rel=1e-5)
    names = {id(v): n for n, v in table.items()}
    gradients = tape.gradient(penalty, tiny_model.trainable_variables)
    for variable, gradient in zip(tiny_model.trainable_variables, gradients):
        name = names[id(variable)]
        if _is_l2_name(name):
            np.testing.assert_allclose(gradient.numpy(), decay * variable.numpy(), rtol=1e-5, atol=1e-12)
        else:
            assert gradient is None, name
    assert loss_regularizer("adamw", tiny_model, decay) is None and loss_regularizer("sgd", tiny_model, 0.0) is None
    assert float(l2_penalty([], decay)) == 0.0


def test_train_step_adds_decay_only_to_kernels():
    """One plain-SGD step with and without the L2 term from the same weights: kernels differ by lr*W*k, batch norm and biases not at all."""
    from segtrain.train import make_train_step

    decay, lr = 0.5, 0.1
    images = tf.random.stateless_uniform((2, 33, 33, 3), (1, 2), 0, 255)
    labels = tf.random.stateless_uniform((2, 33, 33, 1), (3, 4), 0, 3, tf.int32)
    model = build_deeplab(ModelConfig(**TINY))
    model.get_layer("concat_projection_dropout").rate = 0.0  # the two steps must see the same data gradients
    start = [v.numpy() for v in model.trainable_variables]
    after = []
    for regularizer in (None, loss_regularizer("sgd", model, decay)):
        for variable, value in zip(model.trainable_variables, start):
            variable.assign(value)
        step = make_train_step(model, keras.optimizers.SGD(lr), LossConfig(num_classes=3), regularizer=regularizer)
        step(images, labels)
        after.append([v.numpy() for v in model.trainable_variables])
    names = {id(v): n for n, v in variables(model).items()}
    for variable, old, plain, decayed in zip(model.trainable_variables, start, *after):
        name = names[id(variable)]
        wanted = -lr * decay * old if _is_l2_name(name) else np.zeros_like(old)
        np.testing.assert_allclose(decayed - plain, wanted, atol=1e-5, err_msg=name)


def test_adamw_decays_the_same_kernels_only():
    """Zero gradients: Adam moves nothing, so what changes is AdamW's decoupled decay, k *= 1 - lr*W on kernels only."""
    model = build_deeplab(ModelConfig(**TINY))
    optimizer = make_optimizer("adamw", 0.01, model, 0.9, 0.5)
    before = [v.numpy() for v in model.trainable_variables]
    optimizer.apply_gradients([(tf.zeros_like(v), v) for v in model.trainable_variables])
    names = {id(v): n for n, v in variables(model).items()}
    for variable, old in zip(model.trainable_variables, before):
        factor = 1 - 0.01 * 0.5 if _is_l2_name(names[id(variable)]) else 1.0
        np.testing.assert_allclose(variable.numpy(), old * factor, rtol=1e-6, err_msg=names[id(variable)])
    sgd = make_optimizer("sgd", 0.01, model, 0.9, 0.5)
    assert isinstance(sgd, keras.optimizers.SGD) and sgd.weight_decay is None and sgd.momentum == 0.9
    with pytest.raises(ValueError, match="unknown optimizer 'adam'"):
        make_optimizer("adam", 0.01, model, 0.9, 0.5)


# ------------------------------------------------------------------ label smoothing


def _reference_loss(labels, logits, eps, ignore, weights):
    """numpy: -sum(t * log softmax) with t = (1-eps) one_hot + eps/K, class-weighted, mean over non-ignored pixels."""
    k = logits.shape[-1]
    flat_logits = logits.reshape(-1, k).astype(np.float64)
    flat = labels.reshape(-1)
    valid = flat != ignore
    shifted = flat_logits - flat_logits.max(-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    targets = np.full_like(log_p, eps / k)
    targets[np.arange(len(flat)), np.where(valid, flat, 0)] += 1 - eps
    per_pixel = -(targets * log_p).sum(-1)
    w = np.where(valid, np.asarray(weights)[np.where(valid, flat, 0)], 0.0)
    return (per_pixel * w).sum() / valid.sum()


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_label_smoothing_matches_numpy(eps):
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (2, 3, 4, 5)).astype(np.float32)
    labels = rng.integers(0, 5, (2, 3, 4, 1)).astype(np.uint8)
    labels[0, 0, :2] = 255
    labels[1, 2, 3] = 255
    weights = (1.0, 2.0, 0.5, 1.0, 3.0)
    config = LossConfig(num_classes=5, ignore_label=255, class_weights=weights, label_smoothing=eps)
    got = float(segmentation_loss(tf.constant(labels), tf.constant(logits), config))
    assert got == pytest.approx(_reference_loss(labels, logits, eps, 255, weights), rel=1e-5)
    # without class weights it is Keras' CategoricalCrossentropy(label_smoothing=eps) over the valid pixels
    valid = labels.reshape(-1) != 255
    keras_loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=eps)(
        np.eye(5, dtype=np.float32)[labels.reshape(-1)[valid]], logits.reshape(-1, 5)[valid]
    )
    plain = float(segmentation_loss(tf.constant(labels), tf.constant(logits), dataclasses.replace(config, class_weights=None)))
    assert plain == pytest.approx(float(keras_loss), rel=1e-5)


# ------------------------------------------------------------------ crop defaults, XLA


@pytest.mark.parametrize("size, stride, crop", [
    ((360, 480), 16, (369, 481)), ((360, 480), 8, (361, 481)), ((1024, 2048), 16, (MAX_CROP, MAX_CROP)),
    ((513, 500), 16, (513, 513)), ((16, 17), 16, (17, 17)), ((5, 40), 8, (9, 41)), ((2, 2), 16, (17, 17)),
])
def test_crop_on_the_output_stride_grid(size, stride, crop):
    assert crop_for(*size, stride) == crop
    assert all((side - 1) % stride == 0 for side in crop)
    assert grid_side(513, 16) == 513 and grid_side(514, 16) == 529


def test_default_crop_from_manifest(data, tmp_path):
    records, _ = data
    crop, line = default_crop(records, "train", 16)
    assert crop == (33, 49) and line.startswith("crop 33,49 (the largest train image is 29x42, rounded up to k*16+1;")
    crop, line = default_crop(tmp_path, "train", 16)
    assert crop == (513, 513) and str(tmp_path / "train.manifest.json") in line
    (tmp_path / "train.manifest.json").write_text("{")
    with pytest.raises(ValueError, match="train.manifest.json: not valid JSON"):
        default_crop(tmp_path, "train", 16)


def test_xla_warning_without_gpu(monkeypatch):
    from segtrain.recipe import xla_warning

    assert xla_warning(False) is None
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    warning = xla_warning(True)
    assert warning.startswith("warning: --xla") and "7-8x slower" in warning and "\n" not in warning
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"])
    assert xla_warning(True) is None


# ------------------------------------------------------------------ the CLI's options


@pytest.fixture
def captured(monkeypatch):
    """segtrain.train.fit replaced by a recorder: the CLI's parsing without training."""
    import segtrain.train

    seen = {}

    def fake_fit(model_config, labels, config, on_step=None, on_note=None):
        seen.update(model=model_config, loss=config.loss_config(labels), fit=config, labels=labels)
        return segtrain.train.FitResult(0, config.steps, [1.0], 0.1, 10.0)

    monkeypatch.setattr(segtrain.train, "fit", fake_fit)
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    return seen


def _fit_cli(data, logdir, *args):
    from segtrain.cli import main

    records, registry = data
    return CliRunner().invoke(main, ["fit", "--dataset", "tiny", "--logdir", str(logdir), "--steps", "2", "--registry", str(registry), *map(str, args)], catch_exceptions=False)


def test_cli_defaults(data, tmp_path, captured):
    result = _fit_cli(data, tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "crop 33,49 (the largest train image is 29x42" in result.stdout and "warning" not in result.stderr
    model, loss, config = captured["model"], captured["loss"], captured["fit"]
    assert (config.augment.crop_height, config.augment.crop_width) == (33, 49)
    assert config.optimizer == "adamw" and (config.learning_rate, config.weight_decay) == (DEFAULTS["adamw"].learning_rate, DEFAULTS["adamw"].weight_decay) == (0.001, 0.004)
    assert model.filters == 256 and model.depth_multiplier == 1.0 and loss.label_smoothing == 0.0 and not config.xla


def test_cli_recipe_options(data, tmp_path, captured):
    result = _fit_cli(data, tmp_path / "run", "--width", "0.5", "--head-filters", "128", "--optimizer", "adamw", "--label-smoothing", "0.1", "--crop-size", "65", "--xla", "--output-stride", "8")
    assert result.exit_code == 0, result.output
    assert "crop " not in result.stdout and result.stderr.count("warning: --xla") == 1
    model, loss, config = captured["model"], captured["loss"], captured["fit"]
    assert model.depth_multiplier == 0.5 and model.filters == 128 and model.output_stride == 8
    assert config.optimizer == "adamw" and (config.learning_rate, config.weight_decay) == (0.001, 0.004) and config.xla
    assert (config.augment.crop_height, config.augment.crop_width) == (65, 65) and loss.label_smoothing == 0.1
    result = _fit_cli(data, tmp_path / "run2", "--optimizer", "adamw", "--lr", "0.02", "--weight-decay", "0", "--depth-multiplier", "0.75")
    assert result.exit_code == 0, result.output
    assert (captured["fit"].learning_rate, captured["fit"].weight_decay, captured["model"].depth_multiplier) == (0.02, 0.0, 0.75)


def test_cli_default_optimizer_follows_the_start(data, tmp_path, captured):
    """adamw from scratch; DeepLab's sgd from pretrained weights; a resumed logdir keeps its own."""
    start = tmp_path / "start"
    start.mkdir()
    assert _fit_cli(data, tmp_path / "run", "--init-checkpoint", start).exit_code == 0
    assert captured["fit"].optimizer == "sgd" and captured["fit"].learning_rate == 0.007
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    (resumed / "ckpt-5.index").write_bytes(b"")
    for recorded, expected in ((None, "sgd"), ("sgd", "sgd"), ("adamw", "adamw"), ("bogus", "adamw")):
        run = {"format": 2} if recorded is None else {"format": 2, "optimizer": recorded}
        (resumed / "segtrain.json").write_text(json.dumps(run))
        assert _fit_cli(data, resumed).exit_code == 0
        assert captured["fit"].optimizer == expected, recorded


def test_cli_scale_range(data, tmp_path, captured):
    assert _fit_cli(data, tmp_path / "run").exit_code == 0
    assert (captured["fit"].augment.min_scale, captured["fit"].augment.max_scale, captured["fit"].augment.scale_step) == (0.5, 2.0, 0.25)  # DeepLab's
    result = _fit_cli(data, tmp_path / "run2", "--min-scale", "0.75", "--max-scale", "1.25", "--scale-step", "0")
    assert result.exit_code == 0, result.output
    assert (captured["fit"].augment.min_scale, captured["fit"].augment.max_scale, captured["fit"].augment.scale_step) == (0.75, 1.25, 0.0)
    del captured["model"]
    result = _fit_cli(data, tmp_path / "run3", "--min-scale", "1.5", "--max-scale", "1.25")
    assert result.exit_code == 2 and "larger than --max-scale" in result.output and "model" not in captured


def test_cli_refuses_width_for_xception_and_bad_smoothing(data, tmp_path, captured):
    result = _fit_cli(data, tmp_path / "run", "--backbone", "xception65", "--width", "0.5")
    assert result.exit_code == 2 and "xception65 has no width" in result.output and "model" not in captured
    result = _fit_cli(data, tmp_path / "run", "--label-smoothing", "1")
    assert result.exit_code == 2 and "--label-smoothing" in result.output and "model" not in captured


# ------------------------------------------------------------------ real fits: segtrain.json round trip, TensorBoard


def _scalars(logdir):
    from tensorflow.core.util import event_pb2

    found = {}
    for path in sorted((logdir / "train").glob("events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(str(path)):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    found.setdefault(value.tag, []).append(float(tf.make_ndarray(value.tensor)))
    return found


def _tiny_fit(records, logdir, optimizer, steps, **model):
    from segtrain.data import AugmentConfig
    from segtrain.labels import Labels
    from segtrain.train import FitConfig, fit

    config = FitConfig(
        data_dir=records, logdir=logdir, steps=steps, batch_size=2, augment=AugmentConfig(crop_height=33, crop_width=33), summary_every=1,
        checkpoint_every=steps, image_summary_every=steps, seed=0, optimizer=optimizer, weight_decay=DEFAULTS[optimizer].weight_decay,
        learning_rate=DEFAULTS[optimizer].learning_rate, label_smoothing=0.1,
    )
    if "bn_recompute_batches" in {f.name for f in dataclasses.fields(FitConfig)}:
        config = dataclasses.replace(config, bn_recompute_batches=1)  # not what these tests are about
    labels = Labels(3, 255, ((0, 0, 0), (255, 0, 0), (0, 255, 0)), ("a", "b", "c"), dataset="tiny")
    return fit(ModelConfig(num_classes=3, depth_multiplier=0.35, filters=16, **model), labels, config)


def test_fit_records_the_model_and_logs_weight_decay(data, tmp_path):
    """--width / --head-filters round-trip through segtrain.json; sgd logs DeepLab's L2 term."""
    from segtrain.checkpoints import load_model

    records, _ = data
    _tiny_fit(records, tmp_path / "run", "sgd", 2)
    run = json.loads((tmp_path / "run" / "segtrain.json").read_text())
    assert run["model"]["filters"] == 16 and run["model"]["depth_multiplier"] == 0.35 and run["optimizer"] == "sgd"
    model, _ = load_model(tmp_path / "run")
    table = variables(model)
    assert table["aspp0/weights"].shape[-1] == 16 and table["decoder/decoder_conv1_pointwise/weights"].shape[-1] == 16
    assert table["MobilenetV2/Conv/weights"].shape[-1] == 11  # 32 * 0.35, rounded as DeepLab rounds multipliers other than 1
    scalars = _scalars(tmp_path / "run")
    assert len(scalars["loss/weight_decay"]) == 2
    assert scalars["loss/weight_decay"][-1] == pytest.approx(float(l2_penalty(list(decayed_kernels(model).values()), 4e-5)), rel=1e-4)


def test_fit_with_adamw(data, tmp_path):
    records, _ = data
    result = _tiny_fit(records, tmp_path / "run", "adamw", 1, aspp=False, decoder=False)
    assert result.end_step == 1 and np.isfinite(result.losses).all()
    assert json.loads((tmp_path / "run" / "segtrain.json").read_text())["optimizer"] == "adamw"
    scalars = _scalars(tmp_path / "run")
    assert "loss/weight_decay" not in scalars and len(scalars["loss"]) == 1


@pytest.mark.fault("segtrain", "fit")
def test_resume_refuses_another_optimizer(tmp_path):
    """SGD's state restored into AdamW makes the weights NaN at the next step: refused, naming segtrain.json."""
    from segtrain.errors import RunFileError
    from segtrain.checkpoints import check_resumable
    from segtrain.labels import Labels
    from segtrain.run_file import RUN_FILE, save_run

    config = ModelConfig(num_classes=3)
    logdir = tmp_path / "run"
    tf.train.Checkpoint(step=tf.Variable(1)).save(str(logdir / "ckpt"))
    save_run(logdir, config, Labels(3, 255, (), (), dataset="tiny"))  # written before --optimizer: it was sgd
    check_resumable(logdir, config, "sgd")
    with pytest.raises(RunFileError, match="trained with --optimizer sgd, whose state cannot resume under --optimizer adamw") as caught:
        check_resumable(logdir, config, "adamw")
    assert str(caught.value).startswith(str(logdir / RUN_FILE)) and "\n" not in str(caught.value)
    save_run(logdir, config, Labels(3, 255, (), (), dataset="tiny"), extra={"optimizer": "adamw"})
    check_resumable(logdir, config, "adamw")
    with pytest.raises(RunFileError, match="--optimizer adamw.*resume with --optimizer adamw"):
        check_resumable(logdir, config, "sgd")
    save_run(logdir, config, Labels(3, 255, (), (), dataset="tiny"), extra={"optimizer": "rmsprop"})
    with pytest.raises(RunFileError, match='"optimizer" must be one of sgd, adamw'):
        check_resumable(logdir, config, "sgd")
