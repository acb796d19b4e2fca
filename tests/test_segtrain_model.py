"""segtrain.model: fit's options build DeepLab's network; ImageNet backbone weights (Keras file, TF1 checkpoint) land by structure."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from segtrain.deeplab_checkpoint import DeepLabCheckpointError
from segtrain.deeplab_model import variables
from segtrain.model import (
    BackboneWeightsError,
    ModelConfig,
    build_deeplab,
    check_backbone_weights,
    input_requirements,
    keras_mobilenet_v2_scope,
    load_backbone_weights,
    model_info,
)

TINY = {"depth_multiplier": 0.25, "filters": 16}


@pytest.mark.parametrize("output_stride", [8, 16])
def test_output_size_equals_input(output_stride):
    model = build_deeplab(ModelConfig(num_classes=3, output_stride=output_stride, **TINY))
    for height, width in ((64, 96), (123, 217)):
        logits = model(np.zeros((1, height, width, 3), np.float32))
        assert tuple(logits.shape) == (1, height, width, 3) and logits.dtype == tf.float32
    assert model_info(model) == ("mobilenetv2", output_stride)
    assert input_requirements(model) == (output_stride, (127.5, 127.5, 127.5))


def test_aspp_and_decoder_switch_off():
    full = build_deeplab(ModelConfig(num_classes=4, **TINY))
    bare = build_deeplab(ModelConfig(num_classes=4, aspp=False, decoder=False, **TINY))
    names = {layer.name for layer in full.layers}
    bare_names = {layer.name for layer in bare.layers}
    assert {"aspp1_depthwise", "aspp3_pointwise", "decoder.decoder_conv0_depthwise", "decoder.feature_projection0"} <= names
    assert not any(n.startswith(("aspp1", "aspp2", "aspp3", "decoder")) for n in bare_names)
    assert {"image_pooling", "aspp0", "concat_projection"} <= bare_names  # DeepLab keeps them without ASPP
    assert bare.count_params() < full.count_params()
    assert tuple(bare(np.zeros((1, 50, 70, 3), np.float32)).shape) == (1, 50, 70, 4)


def test_config_is_refused_when_it_cannot_be_built():
    with pytest.raises(ValueError, match="unknown backbone"):
        ModelConfig(num_classes=3, backbone="resnet50")
    with pytest.raises(ValueError, match="output stride"):
        ModelConfig(num_classes=3, output_stride=32)
    with pytest.raises(ValueError, match="no depth multiplier"):
        ModelConfig(num_classes=3, backbone="xception65", depth_multiplier=0.5)


def test_batch_norm_momentum_reaches_every_layer():
    model = build_deeplab(ModelConfig(num_classes=3, bn_momentum=0.9, **TINY))
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) > 50 and {layer.momentum for layer in norms} == {0.9}


def test_architecture_round_trips_without_the_backbone_weights():
    config = ModelConfig(num_classes=4, backbone="xception65", output_stride=8, atrous_rates=(3, 6, 9), backbone_weights="imagenet")
    document = config.architecture()
    assert "backbone_weights" not in document and document["atrous_rates"] == [3, 6, 9]
    again = ModelConfig.from_architecture(document)
    assert again.backbone_weights is None and again.architecture() == document


# ------------------------------------------------------------------------------- backbone weights


@pytest.fixture(scope="module")
def keras_mobilenet_file(tmp_path_factory):
    """A keras.applications MobileNetV2 (alpha 1.0, no top) with random weights everywhere, batch-norm statistics included."""
    keras.utils.set_random_seed(0)
    source = keras.applications.MobileNetV2(input_shape=(None, None, 3), include_top=False, weights=None)
    rng = np.random.default_rng(0)
    for weight in source.weights:
        weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype(np.float32))
    path = tmp_path_factory.mktemp("keras") / "mobilenetv2.weights.h5"
    source.save_weights(path)
    return path, {w.path: w.numpy() for w in source.weights}, source


def test_keras_mobilenet_v2_weights_land_on_slims_layers(keras_mobilenet_file):
    path, saved, source = keras_mobilenet_file
    config = ModelConfig(num_classes=3, filters=16, backbone_weights=str(path))
    model = build_deeplab(config)
    head_before = variables(model)["aspp0/weights"].numpy().copy()
    said = load_backbone_weights(model, config)
    assert said.startswith("255 backbone variables from keras.applications MobileNetV2")
    table = variables(model)
    backbone = {name for name in table if name.startswith("MobilenetV2/")}
    assert len(backbone) == 255
    checked = set()
    for layer in source.layers:
        scope = keras_mobilenet_v2_scope(layer.name)
        if scope is None or not layer.weights:
            continue
        if isinstance(layer, keras.layers.BatchNormalization):
            pairs = zip(("gamma", "beta", "moving_mean", "moving_variance"), layer.weights)
        else:
            pairs = [("depthwise_weights" if isinstance(layer, keras.layers.DepthwiseConv2D) else "weights", layer.kernel)]
        for leaf, weight in pairs:
            name = f"{scope}/{leaf}"
            np.testing.assert_array_equal(table[name].numpy(), saved[weight.path], err_msg=name)
            checked.add(name)
    assert checked == backbone
    assert keras_mobilenet_v2_scope("block_13_depthwise_BN") == "MobilenetV2/expanded_conv_13/depthwise/BatchNorm"
    assert keras_mobilenet_v2_scope("Conv_1") is None
    np.testing.assert_array_equal(variables(model)["aspp0/weights"].numpy(), head_before)


def test_tf1_backbone_checkpoint_is_loaded_by_name(tmp_path):
    """An ImageNet classification checkpoint (slim's mobilenet_v2_*_224 shape): backbone variables plus a
    classifier, EMA shadows and global_step, of which only the backbone is taken."""
    donor = build_deeplab(ModelConfig(num_classes=3, aspp=False, decoder=False, **TINY))
    rng = np.random.default_rng(1)
    values = {name: rng.standard_normal(var.shape).astype(np.float32) for name, var in variables(donor).items() if name.startswith("MobilenetV2/")}
    extra = {"MobilenetV2/Conv_1/weights": np.zeros((1, 1, 80, 1280), np.float32), "MobilenetV2/Logits/Conv2d_1c_1x1/biases": np.zeros(1001, np.float32),
             "MobilenetV2/Conv/weights/ExponentialMovingAverage": np.zeros((3, 3, 3, 8), np.float32), "global_step": np.array(7, np.int64)}
    tensors = {**values, **extra}
    prefix = str(tmp_path / "mobilenet_v2_0.25" / "model.ckpt-7")
    (tmp_path / "mobilenet_v2_0.25").mkdir()
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=list(tensors), shape_and_slices=[""] * len(tensors), tensors=[tf.constant(v) for v in tensors.values()])
    config = ModelConfig(num_classes=5, backbone_weights=str(tmp_path / "mobilenet_v2_0.25"), **TINY)
    model = build_deeplab(config)
    assert load_backbone_weights(model, config) == f"{len(values)} backbone variables from {prefix}"
    for name, value in values.items():
        np.testing.assert_array_equal(variables(model)[name].numpy(), value, err_msg=name)
    wider = ModelConfig(num_classes=5, depth_multiplier=0.5, filters=16, backbone_weights=prefix)
    with pytest.raises(DeepLabCheckpointError, match="'MobilenetV2/Conv/weights' has shape"):
        load_backbone_weights(build_deeplab(wider), wider)


def test_backbone_weights_refusals_are_one_line(tmp_path, monkeypatch):
    def refused(backbone, multiplier, weights, *said):
        with pytest.raises(BackboneWeightsError) as caught:
            check_backbone_weights(backbone, multiplier, weights)
        message = str(caught.value)
        assert "\n" not in message and all(s in message for s in said), message

    refused("xception65", 1.0, "imagenet", "no ImageNet weights of DeepLab's xception65", "xception_65_imagenet")
    refused("mobilenetv2", 0.5, "imagenet", "only at depth multiplier 1.0")
    refused("mobilenetv2", 1.0, str(tmp_path / "missing.h5"), str(tmp_path / "missing.h5"), "no such")
    check_backbone_weights("mobilenetv2", 1.0, "imagenet")
    check_backbone_weights("xception65", 1.0, None)

    junk = tmp_path / "junk.weights.h5"
    junk.write_bytes(b"not hdf5")
    config = ModelConfig(num_classes=2, filters=8, aspp=False, decoder=False, backbone_weights=str(junk))
    model = build_deeplab(config)
    with pytest.raises(BackboneWeightsError, match=rf"^{junk}: not a Keras weights file of keras.applications' MobileNetV2"):
        load_backbone_weights(model, config)

    def offline(**kwargs):  # what keras.utils.get_file raises without a network
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.applications, "MobileNetV2", offline)
    with pytest.raises(BackboneWeightsError, match="cannot download .* it needs internet") as caught:
        load_backbone_weights(model, ModelConfig(num_classes=2, filters=8, aspp=False, decoder=False, backbone_weights="imagenet"))
    assert "\n" not in str(caught.value)
