"""Segmentation metrics as the field reports them, over one int64 confusion matrix per split.

Pure numpy, so `segtrain score` never pays for importing TensorFlow. Definitions (docs/metrics.md):
ignore-label pixels are dropped; IoU = TP / (TP + FP + FN); mIoU is the mean over the classes
present in ground truth or prediction; pixel accuracy = trace / total. For 2-class datasets the
KITTI road measures come from a sweep over the 256 probability levels k/255 (a pixel is road when
its level is >= k), with counts pooled over the split: MaxF1 (lowest k on ties), AP as the 11-point
interpolated precision of PASCAL VOC, and precision / recall / IoU at the best threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

LEVELS = 256  # road probabilities are compared at the 8-bit levels k/255


def confusion_matrix(ground_truth: np.ndarray, prediction: np.ndarray, num_classes: int, ignore_label: int) -> np.ndarray:
    """int64 [num_classes, num_classes] counts, rows = ground truth, columns = prediction.

    Ground-truth pixels equal to the ignore label are dropped. Any other ground-truth value
    outside the classes, or a predicted value outside them, is an error: silently dropping
    them would inflate the scores.
    """
    gt = np.asarray(ground_truth).ravel()
    pred = np.asarray(prediction).ravel()
    if gt.shape != pred.shape:
        raise ValueError(f"prediction has {pred.size} pixels, ground truth {gt.size}")
    keep = gt != ignore_label
    gt, pred = gt[keep].astype(np.int64), pred[keep].astype(np.int64)
    for what, values in (("ground truth", gt), ("prediction", pred)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            bad = sorted(set(np.unique(values[(values < 0) | (values >= num_classes)]).tolist()))
            raise ValueError(f"{what} values {bad[:8]} are outside the {num_classes} classes")
    return np.bincount(gt * num_classes + pred, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


@dataclass(frozen=True)
class ClassScores:
    """mIoU, per-class IoU (None for a class absent from both ground truth and prediction), pixel accuracy."""

    miou: float
    per_class_iou: list[float | None]
    pixel_accuracy: float


def class_scores(confusion: np.ndarray) -> ClassScores:
    confusion = np.asarray(confusion, dtype=np.int64)
    true_positive = np.diag(confusion).astype(np.float64)
    gt_pixels = confusion.sum(axis=1)
    predicted_pixels = confusion.sum(axis=0)
    union = gt_pixels + predicted_pixels - true_positive
    present = union > 0
    iou = np.divide(true_positive, union, out=np.zeros_like(true_positive), where=present)
    total = confusion.sum()
    return ClassScores(
        miou=float(iou[present].mean()) if present.any() else 0.0,
        per_class_iou=[float(v) if p else None for v, p in zip(iou, present)],
        pixel_accuracy=float(true_positive.sum() / total) if total else 0.0,
    )


@dataclass
class BinaryCounts:
    """Per-level histograms of road probability for road and background pixels (don't-care dropped)."""

    road: np.ndarray = field(default_factory=lambda: np.zeros(LEVELS, dtype=np.int64))
    background: np.ndarray = field(default_factory=lambda: np.zeros(LEVELS, dtype=np.int64))

    def add(self, ground_truth: np.ndarray, road_level: np.ndarray, ignore_label: int) -> None:
        """ground_truth: 0 background, 1 road, ignore_label don't-care; road_level: uint8 round(255 * p)."""
        gt = np.asarray(ground_truth).ravel()
        level = np.asarray(road_level).ravel()
        if gt.shape != level.shape:
            raise ValueError(f"road probability map has {level.size} pixels, ground truth {gt.size}")
        if level.dtype != np.uint8:
            raise ValueError(f"road probability levels must be uint8 (k/255), got {level.dtype}")
        self.road += np.bincount(level[gt == 1], minlength=LEVELS)
        self.background += np.bincount(level[gt == 0], minlength=LEVELS)


@dataclass(frozen=True)
class BinaryScores:
    max_f1: float
    average_precision: float
    best_threshold: float  # k / 255
    precision: float
    recall: float
    iou: float


def binary_scores(counts: BinaryCounts) -> BinaryScores:
    """KITTI road measures from the pooled histograms (see the module docstring)."""
    # Pixels at level >= k, for every k: a reverse cumulative sum.
    tp = np.cumsum(counts.road[::-1])[::-1].astype(np.float64)
    fp = np.cumsum(counts.background[::-1])[::-1].astype(np.float64)
    positives = float(counts.road.sum())
    fn = positives - tp
    precision = np.divide(tp, tp + fp, out=np.zeros(LEVELS), where=(tp + fp) > 0)
    recall = tp / positives if positives else np.zeros(LEVELS)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(LEVELS), where=(precision + recall) > 0)
    best = int(np.argmax(f1))  # the first maximum: lowest threshold on ties
    valid = ~((precision == 0) & (recall == 0))
    ap = 0.0
    for r in np.linspace(0.0, 1.0, 11):
        reached = valid & (recall >= r - 1e-12)
        ap += float(precision[reached].max()) if reached.any() else 0.0
    union = tp[best] + fp[best] + fn[best]
    return BinaryScores(
        max_f1=float(f1[best]),
        average_precision=ap / 11,
        best_threshold=best / (LEVELS - 1),
        precision=float(precision[best]),
        recall=float(recall[best]),
        iou=float(tp[best] / union) if union else 0.0,
    )
