"""segtrain.metrics against references written here from the definitions: pixel loops and threshold loops."""

from __future__ import annotations

import numpy as np
import pytest

from segtrain.metrics import BinaryCounts, binary_scores, class_scores, confusion_matrix


def brute_confusion(gt, pred, k, ignore):
    matrix = [[0] * k for _ in range(k)]
    for g, p in zip(gt.ravel().tolist(), pred.ravel().tolist()):
        if g != ignore:
            matrix[g][p] += 1
    return np.array(matrix)


def test_confusion_matrix_matches_pixel_loop_and_drops_ignore():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 5, (3, 17, 23)).astype(np.uint8)
    gt[:, :2] = 255
    pred = rng.integers(0, 5, gt.shape).astype(np.uint8)
    total = sum(confusion_matrix(g, p, 5, 255) for g, p in zip(gt, pred))
    assert total.dtype == np.int64
    assert np.array_equal(total, brute_confusion(gt, pred, 5, 255))
    assert total.sum() == (gt != 255).sum()


def test_scores_with_absent_classes():
    # class 2 in neither (excluded from the mean), class 3 only predicted (IoU 0, counted).
    gt = np.array([[0, 0, 1, 1, 255, 255]])
    pred = np.array([[0, 1, 1, 3, 0, 2]])
    scores = class_scores(confusion_matrix(gt, pred, 4, 255))
    # class 0: TP 1, FP 0, FN 1 -> 1/2; class 1: TP 1, FP 1, FN 1 -> 1/3; class 3: TP 0, FP 1 -> 0.
    assert scores.per_class_iou == pytest.approx([0.5, 1 / 3, None, 0.0]) and scores.per_class_iou[2] is None
    assert scores.miou == pytest.approx((0.5 + 1 / 3 + 0.0) / 3)
    assert scores.pixel_accuracy == pytest.approx(2 / 4)


def test_random_scores_against_direct_sets():
    rng = np.random.default_rng(1)
    gt = rng.integers(0, 6, (40, 40))
    gt[rng.random(gt.shape) < 0.1] = 255
    pred = np.where(rng.random(gt.shape) < 0.7, np.where(gt == 255, 0, gt), rng.integers(0, 6, gt.shape))
    pred[pred == 4] = 5  # class 4 never predicted
    scores = class_scores(confusion_matrix(gt, pred, 6, 255))
    valid = gt != 255
    ious = []
    for c in range(6):
        inter = np.sum((gt == c) & (pred == c) & valid)
        union = np.sum(((gt == c) | (pred == c)) & valid)
        ious.append(inter / union)
        assert scores.per_class_iou[c] == pytest.approx(inter / union)
    assert scores.miou == pytest.approx(np.mean(ious))
    assert scores.pixel_accuracy == pytest.approx(np.sum((gt == pred) & valid) / valid.sum())


def test_out_of_range_prediction_is_an_error():
    with pytest.raises(ValueError, match=r"prediction values \[7\]"):
        confusion_matrix(np.zeros((2, 2), np.uint8), np.full((2, 2), 7, np.uint8), 3, 255)
    with pytest.raises(ValueError, match="ground truth values"):
        confusion_matrix(np.full((2, 2), 9, np.uint8), np.zeros((2, 2), np.uint8), 3, 255)


def kitti_reference(gts, probs):
    """Threshold loop over k = 0..255, straight from the KITTI road definitions."""
    rows = []
    for k in range(256):
        tp = fp = fn = 0
        for gt, p in zip(gts, probs):
            care = gt != 255
            road = p >= k
            tp += int(np.sum(road & (gt == 1) & care))
            fp += int(np.sum(road & (gt == 0) & care))
            fn += int(np.sum(~road & (gt == 1) & care))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append((k, precision, recall, f1, tp / (tp + fp + fn) if tp + fp + fn else 0.0))
    best = max(rows, key=lambda r: (r[3], -r[0]))
    ap = 0.0
    for i in range(11):
        candidates = [r[1] for r in rows if r[2] >= i / 10 - 1e-12 and not (r[1] == 0 and r[2] == 0)]
        ap += max(candidates) if candidates else 0.0
    return {"max_f1": best[3], "best_threshold": best[0] / 255, "precision": best[1], "recall": best[2], "iou": best[4], "average_precision": ap / 11}


def test_kitti_binary_scores_match_threshold_loop():
    rng = np.random.default_rng(2)
    gts, probs = [], []
    counts = BinaryCounts()
    for _ in range(3):
        gt = (rng.random((12, 30)) < 0.4).astype(np.uint8)
        gt[rng.random(gt.shape) < 0.1] = 255
        noise = rng.normal(0, 60, gt.shape)
        level = np.clip(np.where(gt == 1, 170, 80) + noise, 0, 255).astype(np.uint8)
        counts.add(gt, level, 255)
        gts.append(gt)
        probs.append(level)
    scores = binary_scores(counts)
    expected = kitti_reference(gts, probs)
    for key, value in expected.items():
        assert getattr(scores, key) == pytest.approx(value, abs=1e-12), key
    assert 0.5 < scores.max_f1 < 1


def test_kitti_perfect_prediction_and_ties_take_lowest_threshold():
    gt = np.array([[1, 1, 0, 0, 255]], np.uint8)
    level = np.array([[200, 200, 10, 10, 255]], np.uint8)
    counts = BinaryCounts()
    counts.add(gt, level, 255)
    scores = binary_scores(counts)
    # Every k in 11..200 separates perfectly; the lowest (11) is reported.
    assert scores.max_f1 == 1.0 and scores.best_threshold == pytest.approx(11 / 255)
    assert scores.average_precision == 1.0 and scores.iou == 1.0
