"""segtrain.losses against a direct numpy computation of the definitions."""

from __future__ import annotations

import numpy as np
import pytest

from segtrain.losses import LossConfig, PolyDecay, segmentation_loss


def numpy_pixel_losses(labels, logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    flat_labels = labels.reshape(-1)
    flat = log_probs.reshape(-1, logits.shape[-1])
    return np.array([-flat[i, c] if c != 255 else np.nan for i, c in enumerate(flat_labels)])


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, (2, 6, 7)).astype(np.int32)
    labels[:, 0] = 255
    logits = rng.normal(0, 2, (2, 6, 7, 4)).astype(np.float32)
    return labels, logits


def test_mean_over_non_ignored_pixels(batch):
    labels, logits = batch
    expected = np.nanmean(numpy_pixel_losses(labels, logits))
    assert float(segmentation_loss(labels, logits, LossConfig(4))) == pytest.approx(expected, rel=1e-5)


def test_class_weights(batch):
    labels, logits = batch
    weights = (0.5, 2.0, 1.0, 3.0)
    losses = numpy_pixel_losses(labels, logits)
    flat = labels.reshape(-1)
    valid = flat != 255
    expected = np.sum(losses[valid] * np.array(weights)[flat[valid]]) / valid.sum()
    assert float(segmentation_loss(labels, logits, LossConfig(4, class_weights=weights))) == pytest.approx(expected, rel=1e-5)


def test_hard_pixel_mining_takes_the_top_fraction(batch):
    labels, logits = batch
    losses = numpy_pixel_losses(labels, logits)
    valid = np.sort(losses[~np.isnan(losses)])[::-1]
    k = int(np.ceil(valid.size * 0.25))
    expected = valid[:k].mean()
    assert float(segmentation_loss(labels, logits, LossConfig(4, top_k_percent=25))) == pytest.approx(expected, rel=1e-5)


def test_all_ignored_is_zero_not_nan():
    labels = np.full((1, 3, 3), 255, np.int32)
    assert float(segmentation_loss(labels, np.zeros((1, 3, 3, 2), np.float32), LossConfig(2))) == 0.0


def test_poly_decay_with_warmup():
    schedule = PolyDecay(0.01, 100, power=0.9, warmup_steps=10)
    assert float(schedule(0)) == pytest.approx(0.01 * 1 / 10)
    assert float(schedule(50)) == pytest.approx(0.01 * 0.5**0.9)
    assert float(schedule(100)) == pytest.approx(0.0)
    assert float(PolyDecay(0.01, 100)(25)) == pytest.approx(0.01 * 0.75**0.9)
