"""Class weights for the loss, from the class-pixel counts of a written split.

Two standard schemes, both computed over labelled (non-ignored) pixels only, since ignored
pixels never enter the loss:

- median-frequency (Eigen & Fergus 2015, used by SegNet): freq(c) = pixels of c / labelled pixels
  of the images in which c appears; weight(c) = median over classes of freq / freq(c).
- inverse: weight(c) = N / (K * n_c) with N labelled pixels, n_c pixels of c and K classes present,
  so that the pixel-weighted mean weight is 1.

A class with no pixels in the split gets weight 0: there is nothing to learn it from, and the
caller is told which classes those are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segprep.errors import SegprepError

METHODS = ("median-frequency", "inverse")


class ClassWeightsError(SegprepError, ValueError):
    """A split whose pixel counts give no usable weights (no labelled pixel, inconsistent counts)."""


@dataclass(frozen=True)
class ClassWeights:
    method: str
    weights: list[float]
    absent: list[int]  # classes with no labelled pixel in the split


def class_weights(method: str, class_pixels: np.ndarray, presence_pixels: np.ndarray, num_classes: int) -> ClassWeights:
    """Weights for classes 0..num_classes-1.

    class_pixels[c]: pixels of class c; presence_pixels[c]: labelled pixels of the images that
    contain c (only median-frequency needs it).
    """
    counts = np.asarray(class_pixels[:num_classes], dtype=np.float64)
    present = counts > 0
    weights = np.zeros(num_classes, dtype=np.float64)
    if not present.any():
        raise ClassWeightsError("the split has no labelled pixels")
    if method == "median-frequency":
        with np.errstate(divide="ignore", invalid="ignore"):  # inconsistent counts are refused just below
            frequency = counts[present] / np.asarray(presence_pixels[:num_classes], dtype=np.float64)[present]
            weights[present] = np.median(frequency) / frequency
    elif method == "inverse":
        weights[present] = counts.sum() / (present.sum() * counts[present])
    else:
        raise ValueError(f"unknown class-weight method {method!r} (expected one of {', '.join(METHODS)})")
    if not np.isfinite(weights).all():
        # Only inconsistent counts (a class's pixels in no image) get here; inf or NaN would make every loss NaN.
        bad = [int(c) for c in np.flatnonzero(~np.isfinite(weights))]
        raise ClassWeightsError(f"class weights of class(es) {bad} are not finite: the class-pixel counts are inconsistent")
    return ClassWeights(method, [round(float(w), 6) for w in weights], [int(c) for c in np.flatnonzero(~present)])
