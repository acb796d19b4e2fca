"""DeepLabv3+ in Keras 3: a keras.applications backbone made atrous, ASPP, and a stride-4 decoder.

keras.applications backbones downsample by 32. DeepLab keeps the last stages at output stride 16
or 8 by removing their strides and dilating their convolutions instead, so that the pretrained
weights still apply (the kernels keep their shapes). That is done here by editing the backbone's
layer configs and rebuilding it with the same weights, rather than re-implementing each network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf
from keras import layers

BACKBONES = ("mobilenetv2", "resnet50")


@dataclass(frozen=True)
class ModelConfig:
    """What `segtrain fit --backbone ... --output-stride ... --no-aspp --no-decoder` chooses."""

    num_classes: int
    backbone: str = "mobilenetv2"
    output_stride: int = 16
    aspp: bool = True
    decoder: bool = True
    backbone_weights: str | None = None  # "imagenet" (needs internet), None, or a weights file
    filters: int = 256
    # keras.applications' MobileNetV2 uses 0.999, whose moving statistics still lean a quarter on
    # their initial values after 1,400 steps: short runs evaluate far worse than they train.
    bn_momentum: float = 0.99


@dataclass(frozen=True)
class _BackboneSpec:
    build: str
    low_level: str  # stride-4 feature for the decoder
    high_level: str  # last feature
    mean_pixel: tuple[float, float, float]  # what padding must use so it normalizes to "no signal"


_SPECS = {
    "mobilenetv2": _BackboneSpec("MobileNetV2", "block_2_add", "block_16_project_BN", (127.5, 127.5, 127.5)),
    "resnet50": _BackboneSpec("ResNet50", "conv2_block3_out", "conv5_block3_out", (123.68, 116.779, 103.939)),
}


def mean_pixel(backbone: str) -> tuple[float, float, float]:
    return _SPECS[backbone].mean_pixel


def input_requirements(model: keras.Model) -> tuple[int, tuple[float, float, float]]:
    """(smallest height and width the model takes, the pixel to pad smaller images with).

    MobileNetV2's strided 3x3 convolutions use 'valid' padding: below about the output stride a
    feature map shrinks to nothing and the graph fails (or averages an empty map into NaN). Images
    padded to the output stride with the mean pixel (which normalizes to zero) always work.
    """
    for layer in model.layers:
        match = re.fullmatch(r"(\w+)_os(\d+)", layer.name)
        if match and match[1] in _SPECS:
            return int(match[2]), _SPECS[match[1]].mean_pixel
    return 32, (127.5, 127.5, 127.5)  # not built by build_deeplab: the largest stride of the backbones


def _natural_stride(backbone: str, name: str) -> int:
    """The output stride a layer has in the unmodified network (from its block name)."""
    if backbone == "mobilenetv2":
        match = re.match(r"block_(\d+)_", name)
        if match:
            block = int(match[1])
            return 4 if block <= 2 else 8 if block <= 5 else 16 if block <= 12 else 32
        return 32 if name.startswith(("Conv_1", "out_relu")) else 2
    match = re.match(r"conv(\d)_", name)
    if match:
        return {1: 2, 2: 4, 3: 8, 4: 16, 5: 32}[int(match[1])]
    return 4 if name.startswith("pool1") else 2


def _atrous_config(config: dict, backbone: str, output_stride: int) -> dict:
    """Remove the strides of stages beyond output_stride and dilate their kernels instead."""
    for layer in config["layers"]:
        stage = _natural_stride(backbone, layer["name"])
        if stage <= output_stride:
            continue
        rate = stage // output_stride
        previous_rate = max(1, rate // 2)
        settings = layer["config"]
        strided = tuple(settings.get("strides", (1, 1))) == (2, 2)
        if strided:
            settings["strides"] = (1, 1)
        kernel = settings.get("kernel_size")
        if kernel is not None and tuple(kernel) != (1, 1):
            settings["dilation_rate"] = (previous_rate, previous_rate) if strided else (rate, rate)
        if layer["class_name"] == "ZeroPadding2D":
            # MobileNetV2 pads explicitly before a strided 3x3; unstrided, it needs symmetric padding.
            settings["padding"] = ((previous_rate, previous_rate), (previous_rate, previous_rate))
    return config


def build_backbone(backbone: str, output_stride: int, weights: str | None, bn_momentum: float | None = None) -> keras.Model:
    """The backbone with outputs (stride-4 feature, last feature) at the asked output stride."""
    if backbone not in _SPECS:
        raise ValueError(f"unknown backbone {backbone!r} (choose from {', '.join(BACKBONES)})")
    if output_stride not in (8, 16, 32):
        raise ValueError(f"output stride must be 8, 16 or 32, got {output_stride}")
    spec = _SPECS[backbone]
    application = getattr(keras.applications, spec.build)
    keras_weights = "imagenet" if weights == "imagenet" else None
    base = application(input_shape=(None, None, 3), include_top=False, weights=keras_weights)
    if weights not in (None, "imagenet", "none"):
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"backbone weights file {path} not found")
        try:
            base.load_weights(str(path))
        except (OSError, ValueError, KeyError) as exc:  # h5py and Keras say what, not which file
            from segtrain.errors import SegtrainError

            detail = " ".join(str(exc).split())[:300]
            raise SegtrainError(f"{path}: not a Keras weights file of {spec.build} ({detail})") from None
    if output_stride < 32 or bn_momentum is not None:
        config = _atrous_config(base.get_config(), backbone, output_stride)
        if bn_momentum is not None:
            for layer in config["layers"]:
                if layer["class_name"] == "BatchNormalization":
                    layer["config"]["momentum"] = bn_momentum
        rebuilt = keras.Model.from_config(config)
        rebuilt.set_weights(base.get_weights())
        base = rebuilt
    return keras.Model(base.input, [base.get_layer(spec.low_level).output, base.get_layer(spec.high_level).output], name=f"{backbone}_os{output_stride}")


class ResizeLike(layers.Layer):
    """Bilinear resize of the first input to the spatial size of the second (sizes known only at run time)."""

    def call(self, inputs):  # type: ignore[no-untyped-def]
        tensor, reference = inputs
        return tf.image.resize(tensor, tf.shape(reference)[1:3], method="bilinear")


class Preprocess(layers.Layer):
    """0..255 RGB -> what the backbone was trained on (kept in the model so exports take raw pixels)."""

    def __init__(self, backbone: str, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(**kwargs)
        self.backbone = backbone

    def call(self, images):  # type: ignore[no-untyped-def]
        images = tf.cast(images, tf.float32)
        if self.backbone == "resnet50":  # caffe style: BGR minus the ImageNet mean
            return images[..., ::-1] - tf.constant(_SPECS["resnet50"].mean_pixel[::-1])
        return images / 127.5 - 1.0

    def get_config(self) -> dict:
        return {**super().get_config(), "backbone": self.backbone}


def _conv_bn_relu(x, filters: int, kernel: int, name: str, rate: int = 1, separable: bool = False, momentum: float = 0.99):  # type: ignore[no-untyped-def]
    conv = layers.SeparableConv2D if separable else layers.Conv2D
    x = conv(filters, kernel, padding="same", dilation_rate=rate, use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn", epsilon=1e-5, momentum=momentum)(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _aspp(features, config: ModelConfig):  # type: ignore[no-untyped-def]
    """1x1 branch, image pooling and (when on) three atrous branches at rates 6/12/18 x (16 / output stride)."""
    branches = [_conv_bn_relu(features, config.filters, 1, "aspp0", momentum=config.bn_momentum)]
    if config.aspp:
        scale = 16 // config.output_stride if config.output_stride <= 16 else 1
        for i, rate in enumerate((6, 12, 18), start=1):
            branches.append(_conv_bn_relu(features, config.filters, 3, f"aspp{i}", rate=rate * scale, separable=True, momentum=config.bn_momentum))
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name="image_pool")(features)
    pooled = _conv_bn_relu(pooled, config.filters, 1, "image_pool_proj", momentum=config.bn_momentum)
    branches.append(ResizeLike(name="image_pool_resize")([pooled, features]))
    x = layers.Concatenate(name="aspp_concat")(branches)
    x = _conv_bn_relu(x, config.filters, 1, "aspp_proj", momentum=config.bn_momentum)
    return layers.Dropout(0.1, name="aspp_dropout")(x)


def build_deeplab(config: ModelConfig) -> keras.Model:
    """uint8 or float images [B, H, W, 3] in 0..255 -> logits [B, H, W, num_classes] (float32)."""
    images = keras.Input((None, None, 3), name="image")
    backbone = build_backbone(config.backbone, config.output_stride, config.backbone_weights, config.bn_momentum)
    low_level, high_level = backbone(Preprocess(config.backbone, name="preprocess")(images))
    x = _aspp(high_level, config)
    if config.decoder:
        skip = _conv_bn_relu(low_level, 48, 1, "decoder_skip", momentum=config.bn_momentum)
        x = ResizeLike(name="decoder_upsample")([x, skip])
        x = layers.Concatenate(name="decoder_concat")([x, skip])
        x = _conv_bn_relu(x, config.filters, 3, "decoder1", separable=True, momentum=config.bn_momentum)
        x = _conv_bn_relu(x, config.filters, 3, "decoder2", separable=True, momentum=config.bn_momentum)
    logits = layers.Conv2D(config.num_classes, 1, name="logits")(x)
    logits = ResizeLike(name="upsample_logits")([logits, images])
    logits = layers.Activation("linear", dtype="float32", name="logits_float32")(logits)
    return keras.Model(images, logits, name=f"deeplabv3plus_{config.backbone}")
