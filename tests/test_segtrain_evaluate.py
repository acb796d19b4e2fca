"""segtrain.evaluate: the SPEC §5 document from prediction PNGs and from a model, pooled over the split."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from segtrain.evaluate import Accumulator, evaluate_model, score_folders


def save(path, array):
    Image.fromarray(array.astype(np.uint8), "L").save(path)


def test_score_folders_pools_one_confusion_matrix(tmp_path):
    rng = np.random.default_rng(0)
    truth, preds = {}, []
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    for i in range(3):
        gt = rng.integers(0, 3, (10 + i, 14)).astype(np.uint8)
        gt[0] = 255
        pred = np.where(rng.random(gt.shape) < 0.8, np.where(gt == 255, 0, gt), 2).astype(np.uint8)
        save(tmp_path / "gt" / f"im{i}.png", gt)
        save(tmp_path / "pred" / f"im{i}.png", pred)
        truth[f"im{i}"] = tmp_path / "gt" / f"im{i}.png"
        preds.append((gt, pred))
    acc = Accumulator(3, 255)
    assert score_folders(tmp_path / "pred", truth, acc) == []
    doc = acc.report("toy", "val", ["a", "b", "c"])
    assert list(doc) == ["dataset", "split", "num_images", "miou", "pixel_accuracy", "per_class_iou", "ms_per_image"]
    gt_all = np.concatenate([g.ravel() for g, _ in preds])
    pred_all = np.concatenate([p.ravel() for _, p in preds])
    valid = gt_all != 255
    ious = [np.sum((gt_all == c) & (pred_all == c) & valid) / np.sum(((gt_all == c) | (pred_all == c)) & valid) for c in range(3)]
    assert doc["per_class_iou"] == pytest.approx(dict(zip("abc", ious)))
    assert doc["miou"] == pytest.approx(np.mean(ious)) and doc["num_images"] == 3


def test_score_folders_reports_missing_and_mismatched(tmp_path):
    (tmp_path / "pred").mkdir()
    save(tmp_path / "pred" / "b.png", np.zeros((4, 4)))
    truth = {"a": np.zeros((4, 4), np.uint8), "b": np.zeros((5, 4), np.uint8)}
    problems = score_folders(tmp_path / "pred", truth, Accumulator(2, 255))
    assert problems[0].endswith("a.png: missing prediction for a")
    assert "b.png: prediction 4x4, ground truth 4x5" in problems[1]


def test_binary_block_from_probabilities():
    gt = np.array([[1, 1, 0, 0, 255]], np.uint8)
    road_probability = np.array([[0.9, 0.6, 0.3, 0.1, 0.9]], np.float32)
    probabilities = np.stack([1 - road_probability, road_probability], axis=-1)
    acc = evaluate_model(lambda image: probabilities, [(np.zeros((1, 5, 3), np.uint8), gt)], Accumulator(2, 255))
    doc = acc.report("kitti_road", "val", ["background", "road"])
    # Levels: road 230, 153; background round(76.5) = 76 and 26 -> the lowest separating k is 77.
    assert doc["binary"]["max_f1"] == 1.0 and doc["binary"]["best_threshold"] == pytest.approx(77 / 255)
    assert doc["miou"] == 1.0 and doc["ms_per_image"] == 0.0  # one image: only the compiling call, not timed
