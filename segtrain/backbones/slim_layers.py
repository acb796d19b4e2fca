"""Keras layers named and arranged the way TF-Slim builds them, so a TF1 checkpoint maps onto them by name.

Every layer that owns weights is named after the TF1 variable scope it stands for, with "/" written
as "." (Keras refuses "/" in layer names): the Conv2D `MobilenetV2.Conv` holds `MobilenetV2/Conv/weights`,
the BatchNormalization `MobilenetV2.Conv.BatchNorm` holds `MobilenetV2/Conv/BatchNorm/{gamma,beta,...}`.
`tf1_variables` turns a model back into that TF1 name -> variable table.

Padding matters for equality with DeepLab, and DeepLab uses two kinds: TF 'SAME' (slim's default, used by
MobilenetV2 and all of DeepLab's heads; for a strided kernel on an even size it pads more at the end) and
"fixed" padding (Xception's strided convolutions: pad (k_eff - 1) // 2 before and the rest after, then a
VALID convolution, so that features stay aligned with the input whatever its size).
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers

from segtrain.backbones.fused_norm import FusedBatchNormalization


@dataclass(frozen=True)
class Norm:
    """Batch-norm settings of one part of the network (slim's `decay` is Keras' `momentum`)."""

    epsilon: float
    momentum: float


@dataclass(frozen=True)
class Init:
    """Kernel initializers of one part of the network (how DeepLab starts a layer it trains from scratch).

    A float is the stddev of a truncated normal (TF's truncated_normal_initializer); a string names a Keras
    initializer. Each layer gets its own initializer object: Keras 3 fixes an unseeded initializer's seed
    when it is created, so one shared object would give every same-shaped kernel the same values.
    """

    conv: float | str = "glorot_uniform"
    depthwise: float | str = "glorot_uniform"


def initializer(spec: float | str):  # type: ignore[no-untyped-def]
    """A fresh Keras initializer for an Init field."""
    if isinstance(spec, str):
        return keras.initializers.get(spec)
    return keras.initializers.TruncatedNormal(stddev=spec)


def keras_name(scope: str) -> str:
    """The Keras layer name that stands for a TF1 variable scope."""
    return scope.replace("/", ".")


def tf1_scope(name: str) -> str:
    """The TF1 variable scope a Keras layer name stands for."""
    return name.replace(".", "/")


def fixed_padding(x, kernel: int, rate: int, scope: str):  # type: ignore[no-untyped-def]
    """Xception's explicit padding before a strided VALID convolution (independent of the input size)."""
    effective = kernel + (kernel - 1) * (rate - 1)
    total = effective - 1
    begin = total // 2
    return layers.ZeroPadding2D(((begin, total - begin), (begin, total - begin)), name=keras_name(scope) + ".pad")(x)


def conv(x, filters: int, kernel: int, scope: str, init: float | str, *, stride: int = 1, rate: int = 1, padding: str = "same", use_bias: bool = False):  # type: ignore[no-untyped-def]
    """slim.conv2d's convolution (its `weights`, and `biases` only where no batch norm follows)."""
    return layers.Conv2D(
        filters, kernel, strides=stride, dilation_rate=rate, padding=padding, use_bias=use_bias,
        kernel_initializer=initializer(init), name=keras_name(scope),
    )(x)


def depthwise(x, kernel: int, scope: str, init: float | str, *, stride: int = 1, rate: int = 1, padding: str = "same"):  # type: ignore[no-untyped-def]
    """slim.separable_conv2d with num_outputs=None: a depthwise convolution with `depthwise_weights`."""
    return layers.DepthwiseConv2D(
        kernel, strides=stride, dilation_rate=rate, padding=padding, use_bias=False,
        depthwise_initializer=initializer(init), name=keras_name(scope),
    )(x)


def batch_norm(x, scope: str, norm: Norm):  # type: ignore[no-untyped-def]
    """slim.batch_norm with center and scale, under `<scope>/BatchNorm`."""
    return FusedBatchNormalization(epsilon=norm.epsilon, momentum=norm.momentum, name=keras_name(scope) + ".BatchNorm")(x)


def activation(x, kind: str | None, scope: str, suffix: str = "relu"):  # type: ignore[no-untyped-def]
    """relu, relu6 or nothing (the layer gets a name under the scope it belongs to)."""
    if kind is None:
        return x
    max_value = 6.0 if kind == "relu6" else None
    return layers.ReLU(max_value=max_value, name=f"{keras_name(scope)}.{suffix}")(x)


def conv_bn(x, filters: int, kernel: int, scope: str, norm: Norm, init: float | str, act: str | None, *, stride: int = 1, rate: int = 1, padding: str = "same"):  # type: ignore[no-untyped-def]
    """convolution -> batch norm -> activation, as slim.conv2d with normalizer_fn=batch_norm."""
    x = conv(x, filters, kernel, scope, init, stride=stride, rate=rate, padding=padding)
    return activation(batch_norm(x, scope, norm), act, scope)


def depthwise_bn(x, kernel: int, scope: str, norm: Norm, init: float | str, act: str | None, *, stride: int = 1, rate: int = 1, padding: str = "same"):  # type: ignore[no-untyped-def]
    """depthwise convolution -> batch norm -> activation, as slim.separable_conv2d(num_outputs=None)."""
    x = depthwise(x, kernel, scope, init, stride=stride, rate=rate, padding=padding)
    return activation(batch_norm(x, scope, norm), act, scope)


def tf1_variables(model: keras.Model) -> dict[str, keras.Variable]:
    """TF1 variable name -> the Keras variable that holds it, for every weight of the model."""
    table: dict[str, keras.Variable] = {}
    for layer in model.layers:
        if not layer.weights:
            continue
        scope = tf1_scope(layer.name)
        if hasattr(layer, "tf1_variables"):  # a layer of several weights that names them itself (segtrain.attention)
            table.update(layer.tf1_variables(scope))
        elif isinstance(layer, layers.DepthwiseConv2D):
            table[f"{scope}/depthwise_weights"] = layer.kernel
        elif isinstance(layer, layers.Conv2D):
            table[f"{scope}/weights"] = layer.kernel
            if layer.use_bias:
                table[f"{scope}/biases"] = layer.bias
        elif isinstance(layer, layers.BatchNormalization):
            scope = scope.removesuffix("/BatchNorm") + "/BatchNorm"
            for leaf in ("gamma", "beta", "moving_mean", "moving_variance"):
                table[f"{scope}/{leaf}"] = getattr(layer, leaf)
        else:
            raise TypeError(f"layer {layer.name!r} ({type(layer).__name__}) has weights with no TF1 name")
    return table
