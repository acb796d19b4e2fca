"""DeepLab's loss and learning-rate schedule.

The loss is softmax cross-entropy over the pixels whose label is not the ignore label, divided by
the number of those pixels (so crops with much padding do not weigh less), optionally weighted per
class (the registry's class_weights), optionally against label-smoothed targets (Keras' smoothing:
(1 - eps) on the true class plus eps / num_classes on every class), and optionally restricted to the
hardest top-k fraction of pixels (DeepLab's top_k_percent_pixels hard-pixel mining).
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf


@dataclass(frozen=True)
class LossConfig:
    num_classes: int
    ignore_label: int = 255
    class_weights: tuple[float, ...] | None = None
    top_k_percent: float = 100.0  # 100: every pixel; e.g. 25: the hardest quarter
    label_smoothing: float = 0.0  # eps in [0, 1): targets (1 - eps) * one_hot + eps / num_classes


def segmentation_loss(labels: tf.Tensor, logits: tf.Tensor, config: LossConfig) -> tf.Tensor:
    """Mean cross-entropy over non-ignored (and, with mining, the hardest) pixels; 0 when there are none."""
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    logits = tf.reshape(tf.cast(logits, tf.float32), [-1, config.num_classes])
    valid = tf.not_equal(labels, config.ignore_label)
    safe_labels = tf.where(valid, labels, 0)
    pixel_loss = _pixel_cross_entropy(safe_labels, logits, config)
    weights = tf.cast(valid, tf.float32)
    if config.class_weights is not None:
        weights *= tf.gather(tf.constant(config.class_weights, tf.float32), safe_labels)
    pixel_loss *= weights
    if config.top_k_percent < 100.0:
        count = tf.reduce_sum(tf.cast(valid, tf.float32))
        k = tf.maximum(tf.cast(tf.math.ceil(count * config.top_k_percent / 100.0), tf.int32), 1)
        hardest, _ = tf.math.top_k(pixel_loss, k=k)
        return tf.math.divide_no_nan(tf.reduce_sum(hardest), tf.cast(k, tf.float32))
    return tf.math.divide_no_nan(tf.reduce_sum(pixel_loss), tf.reduce_sum(tf.cast(valid, tf.float32)))


def _pixel_cross_entropy(labels: tf.Tensor, logits: tf.Tensor, config: LossConfig) -> tf.Tensor:
    """Per-pixel cross-entropy against the one-hot labels, smoothed as Keras' label_smoothing smooths them.

    Ignored pixels get a loss here too (their label was replaced by 0); the caller's weights mask them.
    Smoothed: (1 - eps) * CE(true class) + eps * mean over classes of -log p = (1 - eps) * CE +
    eps * (logsumexp(z) - mean(z)), which needs no [pixels, classes] one-hot targets.
    """
    cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    if config.label_smoothing == 0:
        return cross_entropy
    eps = config.label_smoothing
    uniform = tf.reduce_logsumexp(logits, axis=-1) - tf.reduce_mean(logits, axis=-1)
    return (1.0 - eps) * cross_entropy + eps * uniform


class PolyDecay(keras.optimizers.schedules.LearningRateSchedule):
    """base_lr * (1 - step / total_steps) ** power, after an optional linear warm-up from 0."""

    def __init__(self, base_lr: float, total_steps: int, power: float = 0.9, warmup_steps: int = 0, end_lr: float = 0.0) -> None:
        self.base_lr, self.total_steps, self.power = base_lr, max(1, total_steps), power
        self.warmup_steps, self.end_lr = warmup_steps, end_lr

    def __call__(self, step):  # type: ignore[no-untyped-def]
        step = tf.cast(step, tf.float32)
        progress = tf.minimum(step / float(self.total_steps), 1.0)
        lr = (self.base_lr - self.end_lr) * tf.pow(1.0 - progress, self.power) + self.end_lr
        if self.warmup_steps > 0:
            lr *= tf.minimum(1.0, (step + 1.0) / float(self.warmup_steps))
        return lr

    def get_config(self) -> dict:
        return {"base_lr": self.base_lr, "total_steps": self.total_steps, "power": self.power, "warmup_steps": self.warmup_steps, "end_lr": self.end_lr}

