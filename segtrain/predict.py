"""Inference helpers shared by eval, predict and export: probabilities at full resolution, optional
multi-scale and flipped inputs averaged (DeepLab's eval_scales / add_flipped_images).

Images smaller than the model's output stride (a 1x1 or 3x5 crop, or a small image at scale 0.5)
are padded bottom/right with the mean pixel to the output stride and the logits cropped back, so
every prediction has its input's size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

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


class ExportModule(tf.Module):
    """A SavedModel signature: uint8 images of any size -> class map and probabilities (no crop-size limit)."""

    def __init__(self, model: keras.Model) -> None:
        super().__init__()
        self.model = model
        self.min_size, self.mean = input_requirements(model)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def serve(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        logits = padded_logits(self.model, tf.cast(images, tf.float32), self.min_size, self.mean)
        probs = tf.nn.softmax(logits, axis=-1)
        return {"classes": tf.argmax(probs, axis=-1, output_type=tf.int32), "probabilities": probs}


def export_saved_model(model: keras.Model, out_dir: str) -> None:
    module = ExportModule(model)
    tf.saved_model.save(module, out_dir, signatures={"serving_default": module.serve})
