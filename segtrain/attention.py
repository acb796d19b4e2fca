"""DANet's position and channel attention over ASPP's output (`fit --attention position|channel|dual`).

Fu et al., "Dual Attention Network for Scene Segmentation" (CVPR 2019), as its reference code computes them:

- position attention: 1x1 convolutions (with biases) of the feature X [B, H, W, C] to a query and a key of
  C/8 channels and a value of C channels; A = softmax over positions j of query_i . key_j ([B, N, N], N = H*W);
  the attended feature at i is sum_j A[i, j] value_j;
- channel attention: the C x C gram matrix E = X^T X over positions, DANet's max(E) - E per row, softmax over
  channels; the attended feature at a position is sum_j A[i, j] X_j (no convolutions);
- each module adds gamma * attended to X, with a learned scalar gamma that starts at 0; `dual` sums the two
  modules' contributions onto one copy of X: X + gamma_p * position + gamma_c * channel (DANet sums its two
  residual branches; summing two residuals would double X). At gamma = 0 the output is X exactly, so a model
  fine-tuned from a DeepLab checkpoint starts as DeepLab's function.

The layer's variables carry TF1 names under `attention/` (`attention/position_attention/query_conv/weights`,
`attention/channel_attention/gamma`, ...), next to DeepLab's, which a DeepLab checkpoint never has: the init modes
leave them at their initial values (segtrain.deeplab_model.ADDED_SCOPES). The attention itself runs in float32
(the N x N energies overflow float16).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

ATTENTION_KINDS = ("position", "channel", "dual")
SCOPE = "attention"


@keras.saving.register_keras_serializable(package="segtrain")
class DualAttention(layers.Layer):
    """DANet's position and/or channel attention with zero-initialised gammas (kind: position, channel or dual)."""

    def __init__(self, kind: str, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(**kwargs)
        if kind not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {', '.join(ATTENTION_KINDS)}, got {kind!r}")
        self.kind = kind
        self.position = kind in ("position", "dual")
        self.channel = kind in ("channel", "dual")

    def build(self, input_shape) -> None:  # type: ignore[no-untyped-def]
        channels = int(input_shape[-1])
        self.reduced = max(1, channels // 8)
        if self.position:
            self.query_conv = layers.Conv2D(self.reduced, 1, name="query_conv")
            self.key_conv = layers.Conv2D(self.reduced, 1, name="key_conv")
            self.value_conv = layers.Conv2D(channels, 1, name="value_conv")
            for conv in (self.query_conv, self.key_conv, self.value_conv):
                conv.build(input_shape)
            self.gamma_position = self.add_weight(shape=(), initializer="zeros", name="gamma_position")
        if self.channel:
            self.gamma_channel = self.add_weight(shape=(), initializer="zeros", name="gamma_channel")
        self.built = True

    def call(self, x):  # type: ignore[no-untyped-def]
        shape = tf.shape(x)
        batch, channels = shape[0], x.shape[-1]
        out = x
        if self.position:
            query = tf.reshape(tf.cast(self.query_conv(x), tf.float32), [batch, -1, self.reduced])
            key = tf.reshape(tf.cast(self.key_conv(x), tf.float32), [batch, -1, self.reduced])
            value = tf.reshape(tf.cast(self.value_conv(x), tf.float32), [batch, -1, channels])
            attention = tf.nn.softmax(tf.matmul(query, key, transpose_b=True), axis=-1)  # [B, N, N], over positions j
            attended = tf.reshape(tf.matmul(attention, value), shape)
            out = out + tf.cast(tf.cast(self.gamma_position, tf.float32) * attended, x.dtype)
        if self.channel:
            flat = tf.reshape(tf.cast(x, tf.float32), [batch, -1, channels])  # [B, N, C]
            energy = tf.matmul(flat, flat, transpose_a=True)  # [B, C, C]
            energy = tf.reduce_max(energy, axis=-1, keepdims=True) - energy  # DANet's CAM
            attention = tf.nn.softmax(energy, axis=-1)
            attended = tf.reshape(tf.matmul(flat, attention, transpose_b=True), shape)  # at n: sum_j A[i, j] X[n, j]
            out = out + tf.cast(tf.cast(self.gamma_channel, tf.float32) * attended, x.dtype)
        return out

    def compute_output_shape(self, input_shape):  # type: ignore[no-untyped-def]
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "kind": self.kind}

    def tf1_variables(self, scope: str) -> dict[str, keras.Variable]:
        """TF1 name -> variable, under scope (the layer's own, `attention`)."""
        table: dict[str, keras.Variable] = {}
        if self.position:
            for conv in (self.query_conv, self.key_conv, self.value_conv):
                table[f"{scope}/position_attention/{conv.name}/weights"] = conv.kernel
                table[f"{scope}/position_attention/{conv.name}/biases"] = conv.bias
            table[f"{scope}/position_attention/gamma"] = self.gamma_position
        if self.channel:
            table[f"{scope}/channel_attention/gamma"] = self.gamma_channel
        return table
