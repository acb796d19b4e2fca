"""`segtrain eval` and `segtrain score`: one confusion matrix per split, the JSON document of docs/metrics.md.

eval runs a model at full resolution over a split's records (optionally multi-scale and flipped);
score reads prediction PNGs made by any model. Both feed the same accumulators, so their numbers
are computed identically.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segtrain.metrics import BinaryCounts, binary_scores, class_scores, confusion_matrix


@dataclass
class Accumulator:
    """Everything a split's metrics need, added to image by image."""

    num_classes: int
    ignore_label: int
    confusion: np.ndarray = field(init=False)
    binary: BinaryCounts | None = field(init=False)
    images: int = 0
    seconds: float = 0.0  # model time of the timed images
    timed_images: int = 0

    def __post_init__(self) -> None:
        self.confusion = np.zeros((self.num_classes, self.num_classes), np.int64)
        self.binary = BinaryCounts() if self.num_classes == 2 else None

    def add(self, ground_truth: np.ndarray, prediction: np.ndarray, road_level: np.ndarray | None = None) -> None:
        self.confusion += confusion_matrix(ground_truth, prediction, self.num_classes, self.ignore_label)
        if self.binary is not None and road_level is not None:
            self.binary.add(ground_truth, road_level, self.ignore_label)
        self.images += 1

    def report(self, dataset: str, split: str, class_names: list[str]) -> dict:
        """The JSON document of docs/metrics.md (fractions in [0, 1])."""
        scores = class_scores(self.confusion)
        document: dict = {
            "dataset": dataset,
            "split": split,
            "num_images": self.images,
            "miou": scores.miou,
            "pixel_accuracy": scores.pixel_accuracy,
            "per_class_iou": dict(zip(class_names, scores.per_class_iou)),
        }
        if self.binary is not None and self.binary.road.sum() + self.binary.background.sum() > 0:
            b = binary_scores(self.binary)
            document["binary"] = {
                "max_f1": b.max_f1,
                "average_precision": b.average_precision,
                "best_threshold": b.best_threshold,
                "precision": b.precision,
                "recall": b.recall,
                "iou": b.iou,
            }
        document["ms_per_image"] = 1000 * self.seconds / self.timed_images if self.timed_images else 0.0
        return document


def evaluate_model(
    predict: Callable[[np.ndarray], np.ndarray],
    examples: Iterable[tuple[np.ndarray, np.ndarray]],
    accumulator: Accumulator,
    advance: Callable[[], None] | None = None,
) -> Accumulator:
    """predict: uint8 image [H, W, 3] -> class probabilities [H, W, K].

    ms/image times only the model call, and not for the first image, which compiles the graph.
    """
    for index, (image, label) in enumerate(examples):
        began = time.perf_counter()
        probabilities = predict(image)
        if index > 0:
            accumulator.seconds += time.perf_counter() - began
            accumulator.timed_images += 1
        prediction = probabilities.argmax(axis=-1).astype(np.uint8)
        road = np.round(probabilities[..., 1] * 255).astype(np.uint8) if accumulator.num_classes == 2 else None
        accumulator.add(label, prediction, road)
        if advance is not None:
            advance()
    return accumulator


def read_png(path: Path) -> np.ndarray:
    """An index PNG's values [H, W]; ImageReadError (a ValueError) naming the file when it is damaged or not single-channel."""
    from PIL import Image

    from segtrain.errors import ImageReadError
    from segtrain.files import read_regular

    try:
        with Image.open(io.BytesIO(read_regular(path))) as image:  # a FIFO is refused, never waited on
            if image.mode not in ("L", "P"):
                raise ImageReadError(f"{path}: {image.mode} PNG; expected a single-channel index PNG")
            return np.asarray(image)
    except ValueError:
        raise
    except (OSError, SyntaxError, EOFError, IndexError) as exc:  # PIL's ways of saying "damaged"
        if isinstance(exc, OSError) and exc.errno is not None:
            raise
        raise ImageReadError(f"{path}: cannot read PNG ({' '.join(str(exc).split()) or type(exc).__name__})") from None


def score_folders(prediction_dir: Path, truth: dict[str, np.ndarray] | dict[str, Path], accumulator: Accumulator, probabilities: bool = False) -> list[str]:
    """Add {name}.png predictions against ground truth; returns one problem line per missing or bad file.

    probabilities: the PNGs hold 8-bit road probabilities (KITTI style) rather than class ids;
    the class map is then level >= 128.
    """
    problems = []
    for name, source in truth.items():
        path = prediction_dir / f"{name}.png"
        if not os.path.lexists(path):
            problems.append(f"{path}: missing prediction for {name}")
            continue
        try:
            ground_truth = source if isinstance(source, np.ndarray) else read_png(source)
            predicted = read_png(path)
            if predicted.shape != ground_truth.shape:
                raise ValueError(f"{path}: prediction {predicted.shape[1]}x{predicted.shape[0]}, ground truth {ground_truth.shape[1]}x{ground_truth.shape[0]}")
            if probabilities:
                accumulator.add(ground_truth, (predicted >= 128).astype(np.uint8), predicted.astype(np.uint8))
            else:
                accumulator.add(ground_truth, predicted)
        except ValueError as exc:  # NotRegularFileError (a FIFO, a folder) included: it names its file
            text = str(exc)
            named = (str(path), str(source)) if isinstance(source, Path) else (str(path),)
            problems.append(text if text.startswith(named) else f"{path}: {exc}")
        except OSError as exc:  # a broken link, no permission: the OS's reason, naming the file
            from segprep.errors import describe_os_error

            problems.append(describe_os_error(exc))
    return problems


def evaluate_records(predict: Callable[[np.ndarray], np.ndarray], files: list[str], folder: Path, split: str, num_classes: int, ignore_label: int) -> Accumulator:
    """A split's accumulator over its records at full resolution: what `segtrain eval` and fit's evaluation compute.

    predict: from segtrain.predict.make_predictor (fit makes one per run, so the graph is traced once).
    A record that cannot be decoded or scored is a SegtrainError naming the folder and the record.
    """
    import tensorflow as tf

    from segtrain.data import eval_dataset
    from segtrain.errors import EmptySplitError, SegtrainError, tf_message

    current = {"name": "?"}

    def examples() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for example in eval_dataset(files):
            current["name"] = example["name"].numpy().decode("utf-8", "replace")
            yield example["image"].numpy(), example["label"].numpy()[..., 0]

    accumulator = Accumulator(num_classes, ignore_label)
    try:
        evaluate_model(predict, examples(), accumulator)
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as exc:
        detail = tf_message(exc)
        raise SegtrainError(f"{folder}: a {split} record after {current['name']!r} cannot be read or decoded ({detail}); check the shards with `segprep verify {folder}`") from None
    except ValueError as exc:
        raise SegtrainError(f"{folder}: {split} record {current['name']!r}: {exc}") from None
    if accumulator.images == 0:
        raise EmptySplitError(f"{folder}: split {split!r} has no record to evaluate")
    return accumulator
