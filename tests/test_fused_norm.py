"""The fused batch-norm layer computes what Keras' BatchNormalization computes, in training and inference."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from segtrain.backbones.fused_norm import FusedBatchNormalization  # noqa: E402
from segtrain.model import ModelConfig, build_deeplab  # noqa: E402


def twin_layers(channels: int, epsilon: float = 1e-3, momentum: float = 0.9):
    """A Keras and a fused layer with the same random gamma, beta and moving statistics."""
    rng = np.random.default_rng(0)
    keras_layer = keras.layers.BatchNormalization(epsilon=epsilon, momentum=momentum)
    fused_layer = FusedBatchNormalization(epsilon=epsilon, momentum=momentum)
    weights = [rng.uniform(0.5, 2.0, channels), rng.normal(0, 1, channels), rng.normal(0, 1, channels), rng.uniform(0.5, 2.0, channels)]
    for layer in (keras_layer, fused_layer):
        layer.build((None, None, None, channels))
        layer.set_weights([w.astype(np.float32) for w in weights])
    return keras_layer, fused_layer


def training_pass(layer, inputs):
    """Outputs and the gradients of a fixed weighted sum of them w.r.t. the input, gamma and beta."""
    weights = tf.reshape(tf.sin(tf.range(tf.size(inputs), dtype=tf.float32) * 0.37), tf.shape(inputs))
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs = layer(inputs, training=True)
        loss = tf.reduce_sum(outputs * weights)
    grads = tape.gradient(loss, [inputs, layer.gamma, layer.beta])
    return outputs.numpy(), [g.numpy() for g in grads]


def test_training_step_matches_keras_outputs_gradients_and_moving_statistics():
    keras_layer, fused_layer = twin_layers(6)
    inputs = tf.constant(np.random.default_rng(1).normal(3.0, 2.0, (4, 9, 11, 6)), tf.float32)
    expected, expected_grads = training_pass(keras_layer, inputs)
    got, got_grads = training_pass(fused_layer, inputs)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    for g, e in zip(got_grads, expected_grads):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fused_layer.moving_mean.numpy(), keras_layer.moving_mean.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(fused_layer.moving_variance.numpy(), keras_layer.moving_variance.numpy(), rtol=1e-5)
    assert not np.allclose(fused_layer.moving_mean.numpy(), 0)  # the statistics did move


def test_inference_is_keras_own_computation():
    keras_layer, fused_layer = twin_layers(5)
    inputs = tf.constant(np.random.default_rng(2).normal(0, 3, (2, 7, 8, 5)), tf.float32)
    np.testing.assert_array_equal(fused_layer(inputs, training=False).numpy(), keras_layer(inputs, training=False).numpy())


def test_layouts_the_kernel_does_not_take_fall_back_to_keras():
    keras_layer = keras.layers.BatchNormalization(epsilon=1e-3)
    fused_layer = FusedBatchNormalization(epsilon=1e-3)
    inputs = tf.constant(np.random.default_rng(3).normal(0, 1, (16, 4)), tf.float32)
    np.testing.assert_allclose(fused_layer(inputs, training=True).numpy(), keras_layer(inputs, training=True).numpy(), rtol=1e-6, atol=1e-6)


def test_deeplab_models_train_with_the_fused_layer():
    model = build_deeplab(ModelConfig(num_classes=3, depth_multiplier=0.35, filters=16))
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(isinstance(layer, FusedBatchNormalization) for layer in norms)
