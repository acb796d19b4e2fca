"""DeepLab's heads (`model.py`): ASPP with image pooling, the v3+ decoder, the logits, and the resizes between.

Details that decide whether the numbers equal DeepLab's:
- every resize is bilinear with align_corners=True (TF1's resize_bilinear), never Keras' half-pixel resize;
- image pooling averages the whole feature map (DeepLab's inference graph pools over the full crop), then
  1x1 conv + BN + ReLU, then spreads the result back over the map; its branch comes *first* in the concat;
- ASPP's atrous branches and the decoder's two convolutions are DeepLab's split separable convolution:
  depthwise -> BN -> ReLU -> pointwise -> BN -> ReLU (unlike Keras' SeparableConv2D, which has nothing
  between the two halves);
- the heads' batch norm is epsilon 1e-5, decay 0.9997 (the backbones use 1e-3);
- the decoder projects the stride-4 feature to 48 channels (1x1 conv + BN + ReLU), upsamples the ASPP output
  to its size, and concatenates [upsampled ASPP, projection] in that order;
- logits are a 1x1 conv with bias and no batch norm; dropout (keep 0.9) after concat_projection is
  identity at inference.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf
from keras import layers

from segtrain.backbones.slim_layers import Norm, activation, batch_norm, conv, conv_bn, depthwise, keras_name

NORM = Norm(epsilon=1e-5, momentum=0.9997)
PROJECTION_FILTERS = 48
# DeepLab's initializers for layers it trains from scratch: slim's default (Xavier) for the 1x1 convs,
# truncated normals for the split separable convs and the logits.
DEEPLAB_INIT = {"conv": "glorot_uniform", "depthwise": 0.33, "pointwise": 0.06, "logits": 0.01}
KERAS_INIT = {"conv": "glorot_uniform", "depthwise": "glorot_uniform", "pointwise": "glorot_uniform", "logits": "glorot_uniform"}


def _inits(weight_init: str) -> dict[str, float | str]:
    if weight_init not in ("deeplab", "keras"):
        raise ValueError(f"weight_init must be 'deeplab' or 'keras', got {weight_init!r}")
    return DEEPLAB_INIT if weight_init == "deeplab" else KERAS_INIT


@keras.saving.register_keras_serializable(package="segtrain")
class ScaleToUnitRange(layers.Layer):
    """0..255 pixels -> [-1, 1] as DeepLab computes it: (2/255) * x - 1 in float32 (exports take raw pixels)."""

    def call(self, images):  # type: ignore[no-untyped-def]
        return (2.0 / 255.0) * tf.cast(images, tf.float32) - 1.0

    def compute_output_shape(self, input_shape):  # type: ignore[no-untyped-def]
        return input_shape


@keras.saving.register_keras_serializable(package="segtrain")
class ResizeAlignCorners(layers.Layer):
    """Bilinear resize of the first input to the spatial size of the second, align_corners=True (TF1's)."""

    def call(self, inputs):  # type: ignore[no-untyped-def]
        tensor, reference = inputs
        resized = tf.raw_ops.ResizeBilinear(images=tensor, size=tf.shape(reference)[1:3], align_corners=True, half_pixel_centers=False)
        return tf.cast(resized, tensor.dtype)

    def compute_output_shape(self, input_shapes):  # type: ignore[no-untyped-def]
        tensor, reference = input_shapes
        return (tensor[0], reference[1], reference[2], tensor[3])


@keras.saving.register_keras_serializable(package="segtrain")
class SpreadLike(layers.Layer):
    """A [B, 1, 1, C] tensor repeated over the spatial size of the second input (DeepLab resizes the pooled
    feature with align_corners=True, which from a 1x1 map is exactly this copy)."""

    def call(self, inputs):  # type: ignore[no-untyped-def]
        pooled, reference = inputs
        size = tf.shape(reference)
        return tf.tile(pooled, tf.stack([1, size[1], size[2], 1]))

    def compute_output_shape(self, input_shapes):  # type: ignore[no-untyped-def]
        pooled, reference = input_shapes
        return (pooled[0], reference[1], reference[2], pooled[3])


def split_separable_conv(x, filters: int, scope: str, norm: Norm, weight_init: str, rate: int = 1):  # type: ignore[no-untyped-def]
    """DeepLab's split_separable_conv2d: `<scope>_depthwise` and `<scope>_pointwise`, each BN + ReLU."""
    inits = _inits(weight_init)
    x = depthwise(x, 3, f"{scope}_depthwise", inits["depthwise"], rate=rate)
    x = activation(batch_norm(x, f"{scope}_depthwise", norm), "relu", f"{scope}_depthwise")
    x = conv(x, filters, 1, f"{scope}_pointwise", inits["pointwise"])
    return activation(batch_norm(x, f"{scope}_pointwise", norm), "relu", f"{scope}_pointwise")


def aspp(features, rates: Sequence[int] = (), image_pooling: bool = True, filters: int = 256, norm: Norm = NORM, weight_init: str = "deeplab", dropout: float = 0.1):  # type: ignore[no-untyped-def]
    """DeepLab's extract_features head: [image pooling], aspp0, aspp1..n (one per rate), concat_projection."""
    inits = _inits(weight_init)
    branches = []
    if image_pooling:
        pooled = layers.GlobalAveragePooling2D(keepdims=True, name="image_pooling.mean")(features)
        pooled = conv_bn(pooled, filters, 1, "image_pooling", norm, inits["conv"], "relu")
        branches.append(SpreadLike(name="image_pooling.spread")([pooled, features]))
    branches.append(conv_bn(features, filters, 1, "aspp0", norm, inits["conv"], "relu"))
    for index, rate in enumerate(rates, start=1):
        branches.append(split_separable_conv(features, filters, f"aspp{index}", norm, weight_init, rate=rate))
    x = branches[0] if len(branches) == 1 else layers.Concatenate(name="aspp.concat")(branches)
    x = conv_bn(x, filters, 1, "concat_projection", norm, inits["conv"], "relu")
    return layers.Dropout(dropout, name="concat_projection_dropout")(x)


def decoder(features, low_level, filters: int = 256, norm: Norm = NORM, weight_init: str = "deeplab"):  # type: ignore[no-untyped-def]
    """DeepLab's refine_by_decoder with one stride-4 feature and separable convolutions."""
    inits = _inits(weight_init)
    projected = conv_bn(low_level, PROJECTION_FILTERS, 1, "decoder/feature_projection0", norm, inits["conv"], "relu")
    upsampled = ResizeAlignCorners(name="decoder.resize")([features, projected])
    x = layers.Concatenate(name="decoder.concat")([upsampled, projected])
    x = split_separable_conv(x, filters, "decoder/decoder_conv0", norm, weight_init)
    return split_separable_conv(x, filters, "decoder/decoder_conv1", norm, weight_init)


def logits(x, num_classes: int, weight_init: str = "deeplab"):  # type: ignore[no-untyped-def]
    """`logits/semantic`: 1x1 conv with bias, no batch norm, no activation."""
    return conv(x, num_classes, 1, "logits/semantic", _inits(weight_init)["logits"], use_bias=True)


LOGITS_LAYER = keras_name("logits/semantic")
