"""Inference shared by eval, predict and export: probabilities at full resolution, optional multi-scale
and flipped inputs averaged (DeepLab's eval_scales / add_flipped_images), and predict's pictures.

Images smaller than the model's output stride (a 1x1 or 3x5 crop, or a small image at scale 0.5)
are padded bottom/right with the mean pixel to the output stride and the logits cropped back, so
every prediction has its input's size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from segtrain.labels import Labels
from segtrain.model import input_requirements


def make_predictor(model: keras.Model, scales: Sequence[float] = (1.0,), flip: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    """uint8 [H, W, 3] -> float32 class probabilities [H, W, K], averaged over scales and flips.

    The model runs inside one tf.function that accepts any image size (reduce_retracing), which
    is several times faster per image than calling the Keras model eagerly.
    """

    min_size, mean = input_requirements(model)

    @tf.function(reduce_retracing=True)
    def softmax(batch: tf.Tensor) -> tf.Tensor:
        return tf.nn.softmax(padded_logits(model, batch, min_size, mean), axis=-1)

    def predict(image: np.ndarray) -> np.ndarray:
        batch = tf.cast(tf.convert_to_tensor(image)[None], tf.float32)
        height, width = image.shape[:2]
        total = None
        for scale in scales:
            scaled = batch if scale == 1.0 else tf.image.resize(batch, (max(1, round(height * scale)), max(1, round(width * scale))))
            probs = softmax(scaled)
            if flip:
                probs += tf.reverse(softmax(tf.reverse(scaled, axis=[2])), axis=[2])
            if scale != 1.0:
                probs = tf.image.resize(probs, (height, width))
            total = probs if total is None else total + probs
        assert total is not None
        return (total[0] / (len(scales) * (2 if flip else 1))).numpy()

    return predict


def padded_logits(model: keras.Model, batch: tf.Tensor, min_size: int, mean: tuple[float, float, float]) -> tf.Tensor:
    """The model's logits for float images [B, H, W, 3] of any size, padded to min_size and cropped back.

    Padding adds mean * (1 where padded, 0 elsewhere) to a zero-padded batch, so that pixels of
    images that need no padding reach the model bit for bit unchanged.
    """
    height, width = tf.shape(batch)[1], tf.shape(batch)[2]
    paddings = [[0, 0], [0, tf.maximum(min_size - height, 0)], [0, tf.maximum(min_size - width, 0)], [0, 0]]
    padded = tf.pad(batch, paddings) + tf.pad(tf.zeros_like(batch), paddings, constant_values=1.0) * tf.constant(mean, batch.dtype)
    return model(padded, training=False)[:, :height, :width, :]


def probabilities(model: keras.Model, image: np.ndarray, scales: Sequence[float] = (1.0,), flip: bool = False) -> np.ndarray:
    """One-off prediction (compiles a predictor each call; use make_predictor for many images)."""
    return make_predictor(model, scales, flip)(image)


def write_predictions(
    predict_image: Callable[[np.ndarray], np.ndarray], labels: Labels, files: Sequence[Path], out_dir: Path, written: dict[str, str]
) -> list[str]:
    """Predict each image file into out_dir: {stem}.png (class ids), {stem}_color.png, {stem}_overlay.png.

    predict_image: uint8 RGB [H, W, 3] -> probabilities [H, W, K] (make_predictor, or an export's).
    written: name -> sha256 of each file written (for the output ledger, even when a later image fails).
    Returns one problem line per image that could not be read or predicted; the others are written.
    """
    import io

    from PIL import Image

    from segprep.colormaps import colorize, overlay
    from segprep.fileio import atomic_write_bytes
    from segprep.safewrite import sha256_bytes
    from segtrain.errors import ImageReadError
    from segtrain.images import read_rgb
    from segtrain.outputs import output_names

    def png(array: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, "PNG")
        return buffer.getvalue()

    colours, ignore = labels.colour_list, labels.ignore_label
    problems = []
    for path in files:
        try:
            rgb = read_rgb(path)
            classes = predict_image(rgb).argmax(axis=-1).astype(np.uint8)
        except ImageReadError as exc:
            problems.append(str(exc))
            continue
        except tf.errors.ResourceExhaustedError:
            problems.append(f"{path}: {rgb.shape[1]}x{rgb.shape[0]} is too large for this machine's memory")
            continue
        pictures = (classes, colorize(classes, colours, ignore), overlay(rgb, classes, colours, ignore))
        for name, picture in zip(output_names(path), pictures):
            data = png(picture)
            atomic_write_bytes(out_dir / name, data)
            written[name] = sha256_bytes(data)
    return problems
