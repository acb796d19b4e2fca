"""Colour predictions and overlays, with the registry's colormap (pictures people would rather look at)."""

from __future__ import annotations

import numpy as np

IGNORE_COLOR = (255, 255, 255)


def colorize(labels: np.ndarray, colormap: list[list[int]], ignore_label: int = 255) -> np.ndarray:
    """Class ids [H, W] -> RGB [H, W, 3]; the ignore label is white, ids beyond the colormap black."""
    table = np.zeros((256, 3), np.uint8)
    table[: len(colormap)] = np.asarray(colormap, np.uint8)[:256]
    if 0 <= ignore_label < 256 and ignore_label >= len(colormap):
        table[ignore_label] = IGNORE_COLOR
    return table[np.asarray(labels, np.uint8)]


def overlay(image: np.ndarray, labels: np.ndarray, colormap: list[list[int]], ignore_label: int = 255, alpha: float = 0.5) -> np.ndarray:
    """The colour labels blended over the image (ignore pixels show the image only)."""
    colours = colorize(labels, colormap, ignore_label).astype(np.float32)
    blended = (1 - alpha) * image.astype(np.float32) + alpha * colours
    blended[labels == ignore_label] = image[labels == ignore_label]
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)
