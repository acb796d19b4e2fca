"""Batch normalization whose training step runs TensorFlow's fused kernel.

Why our own layer: Keras 3's BatchNormalization computes its training-mode moments and the
normalization as separate element-wise ops; on this 2-core CPU they were 27 % of a MobileNetV2
DeepLabv3+ step. TensorFlow's FusedBatchNormV3 (oneDNN on CPUs, cuDNN on GPUs) computes the same
function in one kernel, forward and backward. Everything else is Keras' layer unchanged: the same
variables (so checkpoints, TF1 names and `segtrain.bn_stats` see no difference), the same moving-
average update (Keras' biased batch variance: the kernel's Bessel-corrected one is scaled back), and
inference, masks, mixed precision and other layouts keep Keras' own code path.
"""

from __future__ import annotations

import keras
import tensorflow as tf


class FusedBatchNormalization(keras.layers.BatchNormalization):
    """keras.layers.BatchNormalization, with float32 NHWC training steps on TF's fused kernel."""

    def add_weight(self, *args, **kwargs):  # type: ignore[no-untyped-def, override]
        # Under a tf.distribute strategy each replica updates the moving statistics with its own
        # batch's moments: "mean" makes that update the replicas' average (Keras' default, "none",
        # cannot be assigned in a replica at all). One device: no difference.
        if kwargs.get("name") in ("moving_mean", "moving_variance"):
            kwargs.setdefault("aggregation", "mean")
        return super().add_weight(*args, **kwargs)

    def _fusable(self, inputs: tf.Tensor, training: bool | None, mask: tf.Tensor | None) -> bool:
        return bool(
            training and self.trainable and mask is None and not self.renorm and not self.synchronized and self.center and self.scale
            and inputs.dtype == tf.float32 and inputs.shape.rank == 4 and self.axis in (3, -1)
            and self.epsilon > 1.001e-5  # the kernel raises smaller epsilons to 1.001e-5
        )

    def call(self, inputs, training=None, mask=None):  # type: ignore[no-untyped-def, override]
        if not self._fusable(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        outputs, mean, corrected = tf.compat.v1.nn.fused_batch_norm(
            inputs, self.gamma, self.beta, epsilon=self.epsilon, data_format="NHWC", is_training=True
        )
        count = tf.cast(tf.size(inputs) // tf.shape(inputs)[-1], tf.float32)
        variance = corrected * tf.maximum(count - 1.0, 0.0) / count  # Keras' moving variance averages the biased one
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return outputs
