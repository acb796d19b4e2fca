"""segtrain.model: DeepLabv3+ builds for each backbone and output stride, keeps the input size, loads local weights."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from segtrain.model import ModelConfig, build_backbone, build_deeplab


@pytest.mark.parametrize("backbone", ["mobilenetv2", "resnet50"])
@pytest.mark.parametrize("output_stride", [8, 16])
def test_output_size_equals_input_and_feature_strides(backbone, output_stride):
    model = build_deeplab(ModelConfig(num_classes=3, backbone=backbone, output_stride=output_stride))
    for height, width in ((64, 96), (123, 217)):
        logits = model(np.zeros((1, height, width, 3), np.float32))
        assert tuple(logits.shape) == (1, height, width, 3)
    low, high = build_backbone(backbone, output_stride, None)(np.zeros((1, 128, 160, 3), np.float32))
    assert tuple(low.shape[1:3]) == (32, 40)
    assert tuple(high.shape[1:3]) == (128 // output_stride, 160 // output_stride)


def test_aspp_and_decoder_switch_off():
    full = build_deeplab(ModelConfig(num_classes=4))
    bare = build_deeplab(ModelConfig(num_classes=4, aspp=False, decoder=False))
    names = {layer.name for layer in full.layers}
    bare_names = {layer.name for layer in bare.layers}
    assert {"aspp1_conv", "aspp3_conv", "decoder1_conv", "decoder_skip_conv"} <= names
    assert not any(n.startswith(("aspp1", "aspp2", "aspp3", "decoder")) for n in bare_names)
    assert bare.count_params() < full.count_params()
    assert tuple(bare(np.zeros((1, 50, 70, 3), np.float32)).shape) == (1, 50, 70, 4)


def test_atrous_rebuild_keeps_weights_and_loads_a_local_file(tmp_path):
    keras.utils.set_random_seed(0)
    original = keras.applications.MobileNetV2(input_shape=(None, None, 3), include_top=False, weights=None)
    path = tmp_path / "mobilenetv2.weights.h5"
    original.save_weights(path)
    backbone = build_backbone("mobilenetv2", 32, str(path))
    x = np.random.default_rng(0).uniform(-1, 1, (1, 96, 96, 3)).astype(np.float32)
    expected = keras.Model(original.input, original.get_layer("block_16_project_BN").output)(x)
    assert np.allclose(backbone(x)[1], expected, atol=1e-5)
    dilated = build_backbone("mobilenetv2", 16, str(path))
    by_name = {w.path: w.numpy() for w in original.weights}
    for weight in dilated.weights:
        assert np.array_equal(weight.numpy(), by_name[weight.path]), weight.path
    with pytest.raises(FileNotFoundError, match="not found"):
        build_backbone("mobilenetv2", 16, str(tmp_path / "missing.h5"))


def test_unknown_backbone_and_stride_are_refused():
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("vgg", 16, None)
    with pytest.raises(ValueError, match="output stride"):
        build_backbone("mobilenetv2", 4, None)


def test_batch_norm_momentum_reaches_every_layer():
    model = build_deeplab(ModelConfig(num_classes=3, bn_momentum=0.9))
    norms = [layer for layer in model.get_layer("mobilenetv2_os16").layers + model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) > 50 and {layer.momentum for layer in norms} == {0.9}
