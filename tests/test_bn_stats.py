"""segtrain.bn_stats: recomputed batch-norm statistics are the exact average of the batch statistics,
repair the evaluation of a model whose moving averages are stale, leave trainable weights alone and
retrace nothing (mixed precision included)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from segtrain.bn_stats import BatchNormRecompute, PreciseBatchNorm, batch_norm_layers
from segtrain.losses import LossConfig
from segtrain.metrics import class_scores, confusion_matrix
from segtrain.model import ModelConfig, build_deeplab
from segtrain.train import make_train_step

NUM_CLASSES = 4
SIZE = 32


def blocks(seed: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose 8x8 blocks are coloured by their class (class 0 grey, 1-3 one bright channel)."""
    rng = np.random.default_rng(seed)
    labels = np.kron(rng.integers(0, NUM_CLASSES, (count, SIZE // 8, SIZE // 8)), np.ones((1, 8, 8), int)).astype(np.uint8)
    images = np.full((count, SIZE, SIZE, 3), 40.0, np.float32) + rng.normal(0, 10, (count, SIZE, SIZE, 3)).astype(np.float32)
    for c in range(1, NUM_CLASSES):
        images[..., c - 1][labels == c] += 180
    return np.clip(images, 0, 255), labels


def tiny_model(bn_momentum: float | None = None) -> keras.Model:
    return build_deeplab(ModelConfig(num_classes=NUM_CLASSES, depth_multiplier=0.35, filters=16, aspp=False, bn_momentum=bn_momentum))


def miou(model: keras.Model, images: np.ndarray, labels: np.ndarray, training: bool = False) -> float:
    predictions = model(images, training=training).numpy().argmax(-1)
    return class_scores(confusion_matrix(labels, predictions, NUM_CLASSES, 255)).miou


def first_layer_moments(model: keras.Model, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of the stem convolution's output, in numpy: (2/255) x - 1, 3x3 stride-2 'SAME' conv."""
    kernel = model.get_layer("MobilenetV2.Conv").kernel.numpy().astype(np.float64)
    x = 2.0 / 255.0 * images.astype(np.float64) - 1.0
    out = -(-SIZE // 2)
    pad = max((out - 1) * 2 + 3 - SIZE, 0)
    x = np.pad(x, ((0, 0), (pad // 2, pad - pad // 2), (pad // 2, pad - pad // 2), (0, 0)))
    patches = np.stack([x[:, i : i + 2 * out : 2, j : j + 2 * out : 2, :] for i in range(3) for j in range(3)], axis=3)
    y = np.einsum("bhwkc,kco->bhwo", patches, kernel.reshape(9, 3, -1))
    return y.mean(axis=(0, 1, 2)), y.var(axis=(0, 1, 2))


@pytest.fixture(scope="module")
def trained():
    """A tiny DeepLab trained 40 high-LR steps with moving averages that barely move (momentum 0.9999): stale."""
    keras.utils.set_random_seed(0)
    model = tiny_model(bn_momentum=0.9999)
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
    step = make_train_step(model, optimizer, LossConfig(num_classes=NUM_CLASSES))
    images, labels = blocks(0, 160)
    for i in range(40):
        batch = slice(4 * i, 4 * i + 4)
        step(tf.constant(images[batch]), tf.constant(labels[batch, ..., None]))
    return model, step


def test_recompute_is_the_exact_average_and_repairs_eval(trained):
    model, step = trained
    test_images, test_labels = blocks(1, 16)
    stale = miou(model, test_images, test_labels)
    batch_statistics = miou(model, test_images, test_labels, training=True)  # what the weights can do (dropout aside)
    assert batch_statistics > stale + 0.2, (stale, batch_statistics)

    weights = [v.numpy().copy() for v in model.trainable_variables]
    calibration = [blocks(10 + i, 4)[0] for i in range(5)]
    recompute = BatchNormRecompute(model)
    assert recompute([tf.constant(b) for b in calibration]) == 5

    first = model.get_layer("MobilenetV2.Conv.BatchNorm")
    assert recompute.layers[0] is first
    per_batch = [first_layer_moments(model, b) for b in calibration]
    np.testing.assert_allclose(first.moving_mean.numpy(), np.mean([m for m, _ in per_batch], axis=0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(first.moving_variance.numpy(), np.mean([v for _, v in per_batch], axis=0), rtol=1e-4, atol=1e-6)
    assert all(np.array_equal(before, after.numpy()) for before, after in zip(weights, model.trainable_variables))

    repaired = miou(model, test_images, test_labels)
    assert repaired > stale + 0.2 and repaired > batch_statistics - 0.1, (stale, repaired, batch_statistics)
    print(f"\ntest mIoU: moving averages {stale:.3f}, batch statistics {batch_statistics:.3f}, recomputed {repaired:.3f}")


def test_every_layer_gets_the_average_and_nothing_retraces(trained):
    model, step = trained
    recompute = BatchNormRecompute(model)
    assert len(recompute.layers) == len([l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]) > 20
    calibration = [tf.constant(blocks(20 + i, 4)[0]) for i in range(3)]
    expected = [recompute.batch_statistics(b) for b in calibration]
    recompute(calibration)
    for index, layer in enumerate(recompute.layers):
        np.testing.assert_allclose(layer.moving_mean.numpy(), np.mean([e[index][0] for e in expected], axis=0), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(layer.moving_variance.numpy(), np.mean([e[index][1] for e in expected], axis=0), rtol=1e-4, atol=1e-6)
    traces = step.experimental_get_tracing_count()
    images, labels = blocks(30, 4)
    step(tf.constant(images), tf.constant(labels[..., None]))
    recompute(calibration)
    assert step.experimental_get_tracing_count() == traces  # the compiled training step is not retraced
    assert recompute._moments.experimental_get_tracing_count() == 1
    assert all(layer.momentum == 0.9999 for layer in recompute.layers)
    assert model.get_layer("concat_projection_dropout").rate == 0.1  # off only while the probe traced


def test_precise_batch_norm_reads_its_own_batches_and_zero_turns_it_off():
    model = tiny_model()
    images, labels = blocks(3, 8)
    made = []

    def dataset():
        made.append(1)
        return tf.data.Dataset.from_tensor_slices((images, labels)).batch(4).repeat()

    layer = model.get_layer("MobilenetV2.Conv.BatchNorm")
    assert PreciseBatchNorm(model, dataset, 0)() == 0 and not made
    assert np.array_equal(layer.moving_mean.numpy(), np.zeros(layer.moving_mean.shape))
    refresh = PreciseBatchNorm(model, dataset, 2)
    assert refresh() == 2 and refresh() == 2 and len(made) == 1
    expected = np.mean([first_layer_moments(model, images[i : i + 4])[0] for i in (0, 4)], axis=0)
    np.testing.assert_allclose(layer.moving_mean.numpy(), expected, rtol=1e-4, atol=1e-6)


def test_mixed_precision():
    """float16 activations: moments taken in float32, as Keras' batch norm takes them; variables stay float32."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = tiny_model()
        assert model.get_layer("MobilenetV2.Conv").compute_dtype == "float16"
        calibration = [blocks(40 + i, 4)[0] for i in range(2)]
        recompute = BatchNormRecompute(model)
        assert recompute([tf.constant(b) for b in calibration]) == 2
        first = batch_norm_layers(model)[0]
        assert first.moving_mean.dtype == "float32"
        per_batch = [first_layer_moments(model, b) for b in calibration]
        np.testing.assert_allclose(first.moving_mean.numpy(), np.mean([m for m, _ in per_batch], axis=0), rtol=2e-2, atol=2e-3)
        np.testing.assert_allclose(first.moving_variance.numpy(), np.mean([v for _, v in per_batch], axis=0), rtol=2e-2, atol=2e-3)
        assert all(np.isfinite(layer.moving_variance.numpy()).all() for layer in recompute.layers)
    finally:
        keras.mixed_precision.set_global_policy("float32")
