"""segtrain's DeepLab model and TF1 checkpoint import.

(a) Against DeepLab's own outputs in ../shared/deeplab_reference (skipped where ../shared is absent): the
    checkpoint its make_checkpoint.py writes, imported, must give DeepLab's logits on input.png.
(b) Always: small checkpoints written here in DeepLab's naming (tf.raw_ops.SaveV2, as TF1 Saver writes them),
    with names and channel counts spelled out independently of segtrain's builders.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from segprep.errors import SegprepError
from segtrain.deeplab_checkpoint import (
    DeepLabCheckpointError,
    import_deeplab,
    is_tf1_checkpoint,
    load_deeplab_weights,
    resolve_prefix,
)
from segtrain.deeplab_model import DeepLabConfig, build, variables, with_merged_logits

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "deeplab_reference"
REFERENCE_FOLDERS = ("mnv2_os8", "mnv2_os16", "xception65_os16_aspp_decoder", "mnv2_os16_aspp_decoder_no_image_pooling")


# ---------------------------------------------------------------------------------------------- helpers


def write_tf1_checkpoint(prefix: Path, tensors: dict[str, np.ndarray]) -> str:
    """A TF1 name-based checkpoint, as tf.compat.v1.train.Saver writes one."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    names = list(tensors)
    tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=names, shape_and_slices=[""] * len(names), tensors=[tf.constant(tensors[n]) for n in names])
    return str(prefix)


def bn(scope: str, channels: int) -> dict[str, tuple[int, ...]]:
    return {f"{scope}/BatchNorm/{leaf}": (channels,) for leaf in ("gamma", "beta", "moving_mean", "moving_variance")}


# MobilenetV2 at depth multiplier 0.25 as DeepLab builds it (worked out by hand from slim's rounding rules:
# outputs rounded to whole channels, expansions to multiples of 8): stem, then (expand or None, project).
MNV2_025_STEM = 8
MNV2_025 = [
    (None, 4), (24, 6), (40, 6), (40, 8), (48, 8), (48, 8), (48, 16), (96, 16), (96, 16), (96, 16),
    (96, 24), (144, 24), (144, 24), (144, 40), (240, 40), (240, 40), (240, 80),
]


def mnv2_025_shapes(num_classes: int, filters: int = 256, branches: int = 0, decoder: bool = False) -> dict[str, tuple[int, ...]]:
    """Variable names and shapes of a DeepLab MobilenetV2 (depth multiplier 0.25) checkpoint."""
    shapes = {"MobilenetV2/Conv/weights": (3, 3, 3, MNV2_025_STEM), **bn("MobilenetV2/Conv", MNV2_025_STEM)}
    previous = MNV2_025_STEM
    for index, (expand, project) in enumerate(MNV2_025):
        block = "MobilenetV2/expanded_conv" + (f"_{index}" if index else "")
        inner = previous
        if expand is not None:
            shapes[f"{block}/expand/weights"] = (1, 1, previous, expand)
            shapes.update(bn(f"{block}/expand", expand))
            inner = expand
        shapes[f"{block}/depthwise/depthwise_weights"] = (3, 3, inner, 1)
        shapes.update(bn(f"{block}/depthwise", inner))
        shapes[f"{block}/project/weights"] = (1, 1, inner, project)
        shapes.update(bn(f"{block}/project", project))
        previous = project
    shapes["image_pooling/weights"] = (1, 1, previous, filters)
    shapes.update(bn("image_pooling", filters))
    shapes["aspp0/weights"] = (1, 1, previous, filters)
    shapes.update(bn("aspp0", filters))
    for i in range(1, branches + 1):
        shapes[f"aspp{i}_depthwise/depthwise_weights"] = (3, 3, previous, 1)
        shapes.update(bn(f"aspp{i}_depthwise", previous))
        shapes[f"aspp{i}_pointwise/weights"] = (1, 1, previous, filters)
        shapes.update(bn(f"aspp{i}_pointwise", filters))
    shapes["concat_projection/weights"] = (1, 1, filters * (2 + branches), filters)
    shapes.update(bn("concat_projection", filters))
    if decoder:
        low = MNV2_025[2][0]  # expanded_conv_2's depthwise output ('layer_4/depthwise_output')
        shapes["decoder/feature_projection0/weights"] = (1, 1, low, 48)
        shapes.update(bn("decoder/feature_projection0", 48))
        for conv, channels in (("decoder_conv0", filters + 48), ("decoder_conv1", filters)):
            shapes[f"decoder/{conv}_depthwise/depthwise_weights"] = (3, 3, channels, 1)
            shapes.update(bn(f"decoder/{conv}_depthwise", channels))
            shapes[f"decoder/{conv}_pointwise/weights"] = (1, 1, channels, filters)
            shapes.update(bn(f"decoder/{conv}_pointwise", filters))
    shapes["logits/semantic/weights"] = (1, 1, filters, num_classes)
    shapes["logits/semantic/biases"] = (num_classes,)
    return shapes


def fill(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    values = {}
    for name, shape in shapes.items():
        if name.endswith(("gamma", "moving_variance")):
            values[name] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        else:
            values[name] = (rng.standard_normal(shape) * 0.1).astype(np.float32)
    return values


def with_training_state(values: dict[str, np.ndarray], step: int = 1234, ema: int = 0, adam: bool = False) -> dict[str, np.ndarray]:
    """Add what a training checkpoint also holds: optimizer slots, EMA shadows, global_step."""
    out = dict(values)
    for name, value in values.items():
        if name.endswith(("moving_mean", "moving_variance")):
            continue
        if adam:
            out[f"{name}/Adam"] = np.zeros_like(value)
            out[f"{name}/Adam_1"] = np.zeros_like(value)
        else:
            out[f"{name}/Momentum"] = np.zeros_like(value)
    for name in list(values)[:ema]:
        out[f"{name}/ExponentialMovingAverage"] = values[name] + 1
    out["global_step"] = np.array(step, np.int64)
    return out


def one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text and text
    return text


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory) -> tuple[str, dict[str, np.ndarray]]:
    """Depth multiplier 0.25, no atrous branches, no decoder, 5 classes, Momentum slots and 3 EMA shadows."""
    values = fill(mnv2_025_shapes(num_classes=5))
    prefix = write_tf1_checkpoint(tmp_path_factory.mktemp("mnv2") / "model.ckpt-1234", with_training_state(values, ema=3))
    return prefix, values


# ------------------------------------------------------------------ (a) DeepLab's own outputs (../shared)


@pytest.fixture(scope="module")
def deeplab_reference() -> Path:
    if not (REFERENCE / "make_checkpoint.py").is_file():
        pytest.skip("../shared/deeplab_reference is absent")
    return REFERENCE


@pytest.mark.parametrize("folder", REFERENCE_FOLDERS)
def test_imported_checkpoint_computes_deeplabs_logits(folder, deeplab_reference, tmp_path):
    reference = deeplab_reference / folder
    config = json.loads((reference / "reference.json").read_text())
    prefix = tmp_path / "ckpt" / "model.ckpt-30000"
    prefix.parent.mkdir()
    subprocess.run([sys.executable, str(deeplab_reference / "make_checkpoint.py"), str(reference), str(prefix)], check=True, capture_output=True)

    model, found = import_deeplab(prefix.parent, output_stride=config["output_stride"])

    assert found.variant == config["variant"]
    assert found.config.num_classes == config["num_classes"]
    assert found.config.rates == tuple(config["atrous_rates"] or ())
    assert found.config.decoder == (config["decoder_output_stride"] is not None)
    assert found.copied == len(config["variables"])
    assert found.ignored["global_step"] == 1
    assert found.ignored["optimizer slots"] == sum(not v["name"].endswith(("moving_mean", "moving_variance")) for v in config["variables"])
    table = variables(model)
    assert {name: list(var.shape) for name, var in table.items()} == {v["name"]: v["shape"] for v in config["variables"]}

    image = np.array(Image.open(reference / "input.png").convert("RGB"))
    merged, full = with_merged_logits(model)(image[None].astype(np.float32), training=False)
    merged, full = merged.numpy()[0], full.numpy()[0]
    expected_merged = np.load(reference / "logits_merged.npy")
    expected_full = np.load(reference / "logits_full.npy")
    assert merged.shape == expected_merged.shape == tuple(config["logits_merged_shape"])
    assert full.shape == expected_full.shape
    diff_merged = float(np.abs(merged - expected_merged).max())
    diff_full = float(np.abs(full - expected_full).max())
    agreement = float((full.argmax(-1) == np.array(Image.open(reference / "prediction.png"))).mean())
    print(f"\nPARITY {folder}: max|dlogits_merged|={diff_merged:.3g} max|dlogits_full|={diff_full:.3g} prediction agreement={agreement:.4%}")
    assert diff_merged <= 2e-4
    assert diff_full <= 2e-4
    assert agreement >= 0.999


# ------------------------------------------------------------------------ (b) checkpoints written here


def test_small_checkpoint_is_detected_and_copied_exactly(small_checkpoint):
    prefix, values = small_checkpoint
    model, found = import_deeplab(prefix, output_stride=16)

    assert found.variant == "mobilenet_v2"
    assert found.config.depth_multiplier == 0.25
    assert (found.config.num_classes, found.config.aspp, found.config.decoder, found.config.image_pooling) == (5, False, False, True)
    assert found.global_step == 1234
    slots = sum(not n.endswith(("moving_mean", "moving_variance")) for n in values)
    assert found.ignored == {"optimizer slots": slots, "EMA shadows": 3, "global_step": 1}
    assert found.copied == len(values) == found.model_variables
    table = variables(model)
    assert set(table) == set(values)
    for name, value in values.items():
        np.testing.assert_array_equal(table[name].numpy(), value, err_msg=name)
    summary = found.summary()
    assert "depth multiplier 0.25" in summary and f"{len(values)} variables copied" in summary and "global_step (1234)" in summary


def test_aspp_and_decoder_checkpoint_with_adam_slots(tmp_path):
    values = fill(mnv2_025_shapes(num_classes=3, filters=32, branches=3, decoder=True), seed=1)
    prefix = write_tf1_checkpoint(tmp_path / "model.ckpt-7", with_training_state(values, step=7, adam=True))

    model, found = import_deeplab(prefix, output_stride=8)

    assert (found.config.aspp, found.config.decoder, found.config.filters) == (True, True, 32)
    assert found.config.rates == (12, 24, 36)  # DeepLab's 6/12/18 doubled at output stride 8
    assert found.ignored["optimizer slots"] == 2 * sum(not n.endswith(("moving_mean", "moving_variance")) for n in values)
    for name, value in values.items():
        np.testing.assert_array_equal(variables(model)[name].numpy(), value, err_msg=name)
    merged, full = with_merged_logits(model)(np.zeros((1, 37, 50, 3), np.float32))
    assert tuple(merged.shape) == (1, 10, 13, 3)  # decoder output at stride 4: (size - 1) // 4 + 1
    assert tuple(full.shape) == (1, 37, 50, 3)


def test_missing_variable_names_the_weight_and_the_checkpoint_variable(tmp_path):
    values = fill(mnv2_025_shapes(num_classes=5))
    del values["MobilenetV2/expanded_conv_5/project/BatchNorm/gamma"]
    prefix = write_tf1_checkpoint(tmp_path / "model.ckpt", values)
    with pytest.raises(DeepLabCheckpointError) as caught:
        import_deeplab(prefix)
    message = one_line(caught.value)
    assert isinstance(caught.value, SegprepError)
    assert message.startswith(prefix)
    assert "'MobilenetV2/expanded_conv_5/project/BatchNorm/gamma'" in message
    assert "'MobilenetV2.expanded_conv_5.project.BatchNorm/gamma'" in message


def test_shape_mismatch_names_the_variable_and_both_shapes(tmp_path):
    values = fill(mnv2_025_shapes(num_classes=5))
    values["image_pooling/BatchNorm/moving_mean"] = np.zeros(255, np.float32)
    prefix = write_tf1_checkpoint(tmp_path / "model.ckpt", values)
    with pytest.raises(DeepLabCheckpointError) as caught:
        import_deeplab(prefix)
    message = one_line(caught.value)
    assert "'image_pooling/BatchNorm/moving_mean' has shape [255]" in message
    assert "needs [256]" in message


def test_extra_model_variable_is_refused(tmp_path):
    values = fill(mnv2_025_shapes(num_classes=5))
    values["MobilenetV2/Conv_1/weights"] = np.zeros((1, 1, 80, 1280), np.float32)
    prefix = write_tf1_checkpoint(tmp_path / "model.ckpt", values)
    with pytest.raises(DeepLabCheckpointError, match="'MobilenetV2/Conv_1/weights' has no place"):
        import_deeplab(prefix)


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ({"vgg_16/conv1/conv1_1/weights": (3, 3, 3, 64), "vgg_16/fc8/biases": (10,)}, "not a DeepLab checkpoint.*scopes found: vgg_16"),
        ({"resnet_v1_50/conv1/weights": (7, 7, 3, 64), "logits/semantic/weights": (1, 1, 256, 21)}, "unsupported DeepLab backbone scope 'resnet_v1_50'"),
        ({"xception_65/entry_flow/conv1_1/weights": (3, 3, 3, 32), "xception_65/middle_flow/block1/unit_1/xception_module/separable_conv1_depthwise/depthwise_weights": (3, 3, 728, 1)}, "scope 'xception_65' has 1 middle-flow units"),
    ],
)
def test_foreign_or_unsupported_checkpoint_names_the_scope(tmp_path, names, expected):
    values = {name: np.zeros(shape, np.float32) for name, shape in names.items()}
    values["global_step"] = np.array(5, np.int64)
    prefix = write_tf1_checkpoint(tmp_path / "model.ckpt", values)
    with pytest.raises(DeepLabCheckpointError, match=expected) as caught:
        import_deeplab(prefix)
    one_line(caught.value)


def test_tf2_checkpoint_and_missing_path_are_refused(tmp_path):
    prefix = tf.train.Checkpoint(v=tf.Variable(1.0)).write(str(tmp_path / "tf2" / "ckpt"))
    with pytest.raises(DeepLabCheckpointError, match="TF2 object-based checkpoint"):
        import_deeplab(prefix)
    assert not is_tf1_checkpoint(prefix)
    with pytest.raises(DeepLabCheckpointError, match="no such checkpoint") as caught:
        import_deeplab(tmp_path / "nothing" / "model.ckpt")
    one_line(caught.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DeepLabCheckpointError, match=r"no \*\.index file"):
        import_deeplab(tmp_path / "empty")


def test_damaged_or_foreign_files_are_one_line_errors(tmp_path):
    prefix = write_tf1_checkpoint(tmp_path / "ckpt" / "model.ckpt", fill(mnv2_025_shapes(num_classes=5)))
    data = Path(prefix + ".data-00000-of-00001")
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    with pytest.raises(DeepLabCheckpointError, match="cannot read variable") as caught:
        import_deeplab(prefix)
    assert one_line(caught.value).startswith(prefix)
    picture = tmp_path / "photo.png"
    Image.new("RGB", (4, 4)).save(picture)
    with pytest.raises(DeepLabCheckpointError, match="cannot read checkpoint") as caught:
        import_deeplab(picture)
    assert one_line(caught.value).startswith(str(picture))


def test_checkpoint_given_as_folder_or_file_of_the_prefix(small_checkpoint, tmp_path):
    prefix, _ = small_checkpoint
    folder = str(Path(prefix).parent)
    assert resolve_prefix(folder) == resolve_prefix(prefix + ".index") == resolve_prefix(prefix + ".data-00000-of-00001") == prefix
    assert is_tf1_checkpoint(folder)
    values = fill(mnv2_025_shapes(num_classes=5))
    for step in (10, 200, 30):
        write_tf1_checkpoint(tmp_path / f"model.ckpt-{step}", values)
    assert resolve_prefix(tmp_path) == str(tmp_path / "model.ckpt-200")


def test_init_modes_copy_what_deeplabs_faq_describes(small_checkpoint):
    prefix, values = small_checkpoint
    # A new class count: "all" refuses the logits, "all-but-logits" takes everything else.
    model = build(DeepLabConfig(num_classes=7, depth_multiplier=0.25, aspp=False, decoder=False))
    with pytest.raises(DeepLabCheckpointError, match="logits/semantic/weights.*all-but-logits") as caught:
        load_deeplab_weights(model, "mobilenetv2", prefix, "all")
    one_line(caught.value)
    logits_before = variables(model)["logits/semantic/weights"].numpy().copy()
    report = load_deeplab_weights(model, "mobilenetv2", prefix, "all-but-logits")
    assert report.copied == len(values) - 2
    assert report.unused == ("logits/semantic/biases", "logits/semantic/weights")
    np.testing.assert_array_equal(variables(model)["logits/semantic/weights"].numpy(), logits_before)
    np.testing.assert_array_equal(variables(model)["aspp0/weights"].numpy(), values["aspp0/weights"])
    # A different head (with decoder and ASPP): only the backbone.
    other = build(DeepLabConfig(num_classes=3, depth_multiplier=0.25, filters=16))
    head_before = variables(other)["concat_projection/weights"].numpy().copy()
    report = load_deeplab_weights(other, "mobilenetv2", prefix, "backbone")
    assert report.copied == sum(n.startswith("MobilenetV2/") for n in values)
    np.testing.assert_array_equal(variables(other)["concat_projection/weights"].numpy(), head_before)
    np.testing.assert_array_equal(variables(other)["MobilenetV2/Conv/weights"].numpy(), values["MobilenetV2/Conv/weights"])
    # Another backbone is named.
    xception = build(DeepLabConfig(num_classes=5, backbone="xception41", aspp=False, decoder=False, filters=8))
    with pytest.raises(DeepLabCheckpointError, match="holds backbone scope 'MobilenetV2', this model's backbone is 'xception_41'"):
        load_deeplab_weights(xception, "xception41", prefix, "backbone")


# ------------------------------------------------------------------------- the network's structure


@pytest.mark.parametrize("output_stride", [8, 16])
def test_mobilenet_v2_atrous_rates_and_strides_follow_slim(output_stride):
    model = build(DeepLabConfig(num_classes=2, depth_multiplier=0.25, output_stride=output_stride, aspp=False, decoder=False, filters=8))

    def depthwise(index: int):  # type: ignore[no-untyped-def]
        layer = model.get_layer("MobilenetV2.expanded_conv" + (f"_{index}" if index else "") + ".depthwise")
        return layer.strides[0], layer.dilation_rate[0]

    if output_stride == 16:
        assert depthwise(6) == (2, 1) and depthwise(12) == (1, 1)
        assert depthwise(13) == (1, 1)  # would stride: runs undilated at stride 1
        assert [depthwise(i) for i in (14, 15, 16)] == [(1, 2)] * 3
    else:
        assert depthwise(6) == (1, 1)
        assert [depthwise(i) for i in range(7, 14)] == [(1, 2)] * 7
        assert [depthwise(i) for i in (14, 15, 16)] == [(1, 4)] * 3
    assert not any(isinstance(layer, keras.layers.ZeroPadding2D) for layer in model.layers)  # TF 'SAME' throughout
    for height, width in ((64, 96), (65, 97), (30, 41)):
        merged, full = with_merged_logits(model)(np.zeros((1, height, width, 3), np.float32))
        assert tuple(merged.shape[1:3]) == ((height - 1) // output_stride + 1, (width - 1) // output_stride + 1)
        assert tuple(full.shape) == (1, height, width, 2)


def test_xception65_structure_matches_deeplab():
    model = build(DeepLabConfig(num_classes=21, backbone="xception65", output_stride=16))
    table = {name: tuple(var.shape) for name, var in variables(model).items()}
    assert len(table) == 732  # DeepLab's xception_65 with ASPP and decoder
    unit = "xception_65/middle_flow/block1/unit_16/xception_module"
    assert table[f"{unit}/separable_conv3_pointwise/weights"] == (1, 1, 728, 728)
    assert "xception_65/middle_flow/block1/unit_17/xception_module/separable_conv1_depthwise/depthwise_weights" not in table
    assert table["xception_65/exit_flow/block2/unit_1/xception_module/separable_conv3_pointwise/weights"] == (1, 1, 1536, 2048)
    assert table["decoder/feature_projection0/weights"] == (1, 1, 256, 48)
    assert table["decoder/decoder_conv0_depthwise/depthwise_weights"] == (3, 3, 304, 1)
    assert table["concat_projection/weights"] == (1, 1, 1280, 256)
    # Strided convolutions pad explicitly (1 before, 1 after) and run VALID; the exit flow's last unit is atrous.
    stem = model.get_layer("xception_65.entry_flow.conv1_1")
    assert model.get_layer("xception_65.entry_flow.conv1_1.pad").padding == ((1, 1), (1, 1)) and stem.padding == "valid"
    strided = model.get_layer("xception_65.entry_flow.block1.unit_1.xception_module.separable_conv3_depthwise")
    assert (strided.strides[0], strided.padding) == (2, "valid")
    assert model.get_layer("xception_65.exit_flow.block1.unit_1.xception_module.separable_conv3_depthwise").strides[0] == 1
    assert model.get_layer("xception_65.exit_flow.block2.unit_1.xception_module.separable_conv1_depthwise").dilation_rate[0] == 2
    assert model.get_layer("aspp3_depthwise").dilation_rate[0] == 18
    merged, full = with_merged_logits(model)(np.zeros((1, 50, 66, 3), np.float32))
    assert tuple(merged.shape) == (1, 13, 17, 21) and tuple(full.shape) == (1, 50, 66, 21)


def test_strided_convolutions_align_as_deeplab_at_even_sizes():
    """The 129x129 references cannot tell padding kinds apart (odd sizes pad symmetrically either way), so
    check DeepLab's own statement at an even size: Xception's explicitly padded stride-2 convolution equals
    the stride-1 'SAME' convolution subsampled at [0::2]; MobilenetV2's TF 'SAME' stride 2 picks [1::2]."""
    images = np.random.default_rng(3).uniform(0, 255, (1, 32, 46, 3)).astype(np.float32)
    scaled = (2.0 / 255.0) * images - 1.0

    xception = build(DeepLabConfig(num_classes=2, backbone="xception41", aspp=False, decoder=False, filters=8))
    stem = xception.get_layer("xception_41.entry_flow.conv1_1")
    unit = "xception_41.entry_flow.block1.unit_1.xception_module.separable_conv3"
    strided = xception.get_layer(f"{unit}_depthwise")
    probe = keras.Model(xception.input, [stem.output, xception.get_layer(f"{unit}_depthwise.pad").input, strided.output])
    stem_out, dw_in, dw_out = (t.numpy() for t in probe(images))
    dense = tf.nn.conv2d(scaled, stem.kernel, 1, "SAME").numpy()
    np.testing.assert_allclose(stem_out, dense[:, ::2, ::2], atol=1e-5)
    dense = tf.nn.depthwise_conv2d(dw_in, strided.kernel, [1, 1, 1, 1], "SAME").numpy()
    np.testing.assert_allclose(dw_out, dense[:, ::2, ::2], atol=1e-5)

    mobilenet = build(DeepLabConfig(num_classes=2, depth_multiplier=0.25, aspp=False, decoder=False, filters=8))
    conv = mobilenet.get_layer("MobilenetV2.Conv")
    stem_out = keras.Model(mobilenet.input, conv.output)(images).numpy()
    dense = tf.nn.conv2d(scaled, conv.kernel, 1, "SAME").numpy()
    np.testing.assert_allclose(stem_out, dense[:, 1::2, 1::2], atol=1e-5)


def test_a_training_step_reaches_every_weight():
    keras.utils.set_random_seed(0)
    model = build(DeepLabConfig(num_classes=3, depth_multiplier=0.25, filters=16, bn_momentum=0.99))
    images = np.random.default_rng(0).integers(0, 256, (2, 41, 33, 3)).astype(np.float32)
    with tf.GradientTape() as tape:
        logits = model(images, training=True)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(tf.zeros((2, 41, 33), tf.int32), logits))
    gradients = tape.gradient(loss, model.trainable_variables)
    missing = [v.path for v, g in zip(model.trainable_variables, gradients) if g is None]
    assert not missing
    assert logits.dtype == tf.float32
    momenta = {layer.momentum for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)}
    assert momenta == {0.99}


def test_config_round_trips_through_json_and_uses_deeplabs_rates():
    config = DeepLabConfig(num_classes=4, backbone="xception65", output_stride=8, atrous_rates=[3, 6, 9])
    again = DeepLabConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and again.rates == (3, 6, 9)
    assert DeepLabConfig(num_classes=4, output_stride=8).rates == (12, 24, 36)
    assert DeepLabConfig(num_classes=4, output_stride=16).rates == (6, 12, 18)
    assert DeepLabConfig(num_classes=4, aspp=False).rates == ()
    with pytest.raises(ValueError, match="unknown DeepLab model settings: colour"):
        DeepLabConfig.from_dict({"num_classes": 3, "colour": 1})
    with pytest.raises(ValueError, match="output stride must be 8 or 16"):
        DeepLabConfig(num_classes=3, output_stride=32)
