"""Defaults of `segtrain fit` that depend on the data or the machine: the training crop, and the XLA warning.

Light on purpose (no TensorFlow at import): the command decides these before it builds anything.
"""

from __future__ import annotations

import math
from pathlib import Path

# DeepLab's crop (its PASCAL / CamVid recipes): the largest default, 32 * 16 + 1 = 64 * 8 + 1.
MAX_CROP = 513


def grid_side(side: int, output_stride: int) -> int:
    """The smallest k * output_stride + 1 (k >= 1) at least `side`: DeepLab's crop sizes (513, 769, ...),
    whose corners align with the stride-OS features under align_corners resizes."""
    return max(1, math.ceil((side - 1) / output_stride)) * output_stride + 1


def crop_for(height: int, width: int, output_stride: int) -> tuple[int, int]:
    """The crop for images of at most height x width: each side on the output-stride grid, capped at MAX_CROP."""
    return min(grid_side(height, output_stride), MAX_CROP), min(grid_side(width, output_stride), MAX_CROP)


def default_crop(data_dir: Path, split: str, output_stride: int) -> tuple[tuple[int, int], str]:
    """(crop, a line saying why) for a fit without --crop-size: from the largest image of the split's manifest.

    Crops larger than the images are mostly padding (DeepLab's 513 on 360x480 CamVid: 28 % of each
    crop); smaller ones see less context. A split without a manifest (records made by other tools)
    keeps DeepLab's 513x513; a damaged manifest is an error naming it (segprep's ManifestError).
    """
    from segprep.manifest import load_manifest, manifest_path

    path = manifest_path(data_dir, split)
    if not path.exists():
        return (MAX_CROP, MAX_CROP), f"crop {MAX_CROP},{MAX_CROP} (DeepLab's; no {path} to size it from; --crop-size H,W to choose)"
    samples = load_manifest(path)["samples"]
    if not samples:
        return (MAX_CROP, MAX_CROP), f"crop {MAX_CROP},{MAX_CROP} (DeepLab's; {path} lists no image; --crop-size H,W to choose)"
    height = max(sample["height"] for sample in samples)
    width = max(sample["width"] for sample in samples)
    crop = crop_for(height, width, output_stride)
    capped = f", capped at {MAX_CROP}" if max(grid_side(height, output_stride), grid_side(width, output_stride)) > MAX_CROP else ""
    why = f"the largest {split} image is {height}x{width}, rounded up to k*{output_stride}+1{capped}"
    return crop, f"crop {crop[0]},{crop[1]} ({why}; --crop-size H,W to choose)"


def xla_warning(xla: bool) -> str | None:
    """A warning line when --xla is asked on a machine without a GPU (it is still honoured)."""
    if not xla:
        return None
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return None
    return "warning: --xla on a machine without a GPU: XLA made the training step 7-8x slower on this project's CPU measurements; compiling with it anyway"
