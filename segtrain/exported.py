"""Loading and running what `segtrain export` wrote: a SavedModel folder or a .tflite file.

`load_exported(path)` -> an ExportedModel: `probabilities(image)` (uint8 RGB [H, W, 3] -> float32 [H, W, K]),
`num_classes`, `input_size` ((H, W) of a TFLite model, None for a SavedModel, which takes any size),
`supports_scales` / `supports_flip`, and `metadata`, the export's segtrain document (the run's segtrain.json
content: class_names, colormap, ignore_label, model; None when the export carries none), so eval and
predict can check the classes and colour their outputs.

- SavedModel: its serving_default signature (images uint8 [B, H, W, 3] -> probabilities [B, H, W, K]) at
  the image's own size; the document is the folder's outputs.EXPORT_MARKER file.
- TFLite: run by ai_edge_litert's Interpreter at its one input size; an image of another size is resized
  to it bilinearly (rounded to uint8) and the probabilities resized back to H x W bilinearly. The
  document is the file's TFLite metadata entry `segtrain-export.json` (segtrain.export embeds it).

`make_exported_predictor(exported, scales, flip)` has make_predictor's contract: probabilities averaged over
scales and horizontal flips. A SavedModel does both (a rescaled image is rounded to uint8, the signature's
input type, where make_predictor feeds the model floats). A TFLite model does flips only (the flipped
image at the same size): it has one input size, so scales other than [1] are refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from segtrain.errors import SegtrainError
from segtrain.outputs import EXPORT_MARKER

SIGNATURE = "serving_default"
TFLITE_METADATA_NAME = EXPORT_MARKER


class ExportedModelError(SegtrainError):
    """An export that cannot be loaded or run, or options it cannot honour."""


class ExportedModel:
    """An exported model that predicts class probabilities for one uint8 RGB image."""

    path: Path
    kind: str  # "saved_model" or "tflite"
    num_classes: int
    input_size: tuple[int, int] | None
    supports_scales: bool
    supports_flip: bool
    metadata: dict | None

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """uint8 [H, W, 3] -> float32 [H, W, num_classes]."""
        raise NotImplementedError

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.probabilities(image)

    def describe(self) -> str:
        size = "any size" if self.input_size is None else f"{self.input_size[0]}x{self.input_size[1]}"
        return f"{self.path} ({self.kind}, {self.num_classes} classes, input {size})"


class ExportedSavedModel(ExportedModel):
    kind = "saved_model"
    input_size = None
    supports_scales = True
    supports_flip = True

    def __init__(self, path: Path) -> None:
        import tensorflow as tf

        self.path = path
        try:
            loaded = tf.saved_model.load(str(path))
        except Exception as exc:  # noqa: BLE001 - TensorFlow raises OSError, ValueError or its own errors
            raise ExportedModelError(f"{path}: not a readable SavedModel ({_one_line(exc)})") from None
        self._loaded = loaded  # keeps the signature's variables alive
        signature = loaded.signatures.get(SIGNATURE)
        if signature is None:
            raise ExportedModelError(f"{path}: the SavedModel has no {SIGNATURE} signature (not written by segtrain export)")
        inputs = signature.structured_input_signature[1]
        spec = inputs.get("images")
        probs = signature.structured_outputs.get("probabilities") if isinstance(signature.structured_outputs, dict) else None
        if spec is None or spec.dtype != tf.uint8 or probs is None or probs.shape.rank != 4 or probs.shape[-1] is None:
            raise ExportedModelError(f"{path}: {SIGNATURE} is not segtrain's contract (images uint8 [B, H, W, 3] -> probabilities [B, H, W, K])")
        self._signature = signature
        self.num_classes = int(probs.shape[-1])
        self.metadata = _read_marker(path / EXPORT_MARKER)

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        image = _check_image(image)
        outputs = self._signature(images=tf.constant(image[None]))
        return outputs["probabilities"][0].numpy()


class ExportedTFLite(ExportedModel):
    kind = "tflite"
    supports_scales = False
    supports_flip = True

    def __init__(self, path: Path) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:  # pragma: no cover - the tflite extra is missing
            raise ExportedModelError(f"{path}: running a TFLite model needs the ai-edge-litert package: pip install 'segprep[tflite]'") from None
        self.path = path
        content = path.read_bytes()
        if len(content) < 8 or content[4:8] != b"TFL3":
            raise ExportedModelError(f"{path}: not a TFLite model (no TFL3 flatbuffer identifier)")
        try:
            self._interpreter = Interpreter(model_content=content)
            self._runner = self._interpreter.get_signature_runner(SIGNATURE)
        except Exception as exc:  # noqa: BLE001 - the interpreter raises RuntimeError/ValueError
            raise ExportedModelError(f"{path}: the LiteRT interpreter cannot load it ({_one_line(exc)})") from None
        inputs = self._runner.get_input_details()
        outputs = self._runner.get_output_details()
        image_spec, probs_spec = inputs.get("images"), outputs.get("probabilities")
        if image_spec is None or probs_spec is None or image_spec["dtype"] != np.uint8 or len(image_spec["shape"]) != 4 or len(probs_spec["shape"]) != 4:
            raise ExportedModelError(f"{path}: {SIGNATURE} is not segtrain's contract (images uint8 [1, H, W, 3] -> probabilities [1, H, W, K])")
        batch, height, width, channels = (int(value) for value in image_spec["shape"])
        if batch != 1 or channels != 3 or height < 1 or width < 1:
            raise ExportedModelError(f"{path}: input shape {[batch, height, width, channels]} is not [1, H, W, 3]")
        self.input_size = (height, width)
        self.num_classes = int(probs_spec["shape"][-1])
        self.metadata = _parse_metadata(read_tflite_metadata(content), f"{path} metadata {TFLITE_METADATA_NAME}")

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        image = _check_image(image)
        assert self.input_size is not None
        size = image.shape[:2]
        if size != self.input_size:
            image = _resize(image, self.input_size, to_uint8=True)
        probs = self._runner(images=image[None])["probabilities"][0]
        if size != self.input_size:
            probs = _resize(probs, size)
        return np.asarray(probs, dtype=np.float32)


def load_exported(path: str | Path) -> ExportedModel:
    """A SavedModel folder written by segtrain export, or a .tflite file."""
    path = Path(path)
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise ExportedModelError(f"{path}: a folder without saved_model.pb is not a SavedModel export")
        model: ExportedModel = ExportedSavedModel(path)
    elif path.is_file():
        model = ExportedTFLite(path)
    elif path.exists():
        raise ExportedModelError(f"{path}: not a regular file or folder")
    else:
        raise ExportedModelError(f"{path}: no such exported model (a SavedModel folder or a .tflite file)")
    names = (model.metadata or {}).get("class_names")
    if isinstance(names, list) and len(names) != model.num_classes:
        raise ExportedModelError(f"{path}: its metadata names {len(names)} classes but the model predicts {model.num_classes}")
    return model


def make_exported_predictor(exported: ExportedModel, scales: Sequence[float] = (1.0,), flip: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    """uint8 [H, W, 3] -> float32 [H, W, K], averaged over scales and flips (segtrain.predict.make_predictor's contract)."""
    scales = [float(scale) for scale in scales]
    if not scales or any(not scale > 0 for scale in scales):
        raise ExportedModelError(f"scales {scales}: need one or more positive scales")
    if not exported.supports_scales and scales != [1.0]:
        size = f"{exported.input_size[0]}x{exported.input_size[1]}" if exported.input_size else "one size"
        raise ExportedModelError(
            f"{exported.path}: a {exported.kind} model runs at its fixed input size ({size}); scales must be [1], got {', '.join(f'{s:g}' for s in scales)}"
        )
    if flip and not exported.supports_flip:
        raise ExportedModelError(f"{exported.path}: a {exported.kind} model cannot predict flipped images")

    def predict(image: np.ndarray) -> np.ndarray:
        image = _check_image(image)
        height, width = image.shape[:2]
        total = np.zeros((height, width, exported.num_classes), np.float64)
        for scale in scales:
            scaled = image if scale == 1.0 else _resize(image, (max(1, round(height * scale)), max(1, round(width * scale))), to_uint8=True)
            probs = exported.probabilities(scaled)
            if flip:
                probs = probs + exported.probabilities(scaled[:, ::-1])[:, ::-1]
            if scale != 1.0:
                probs = _resize(probs, (height, width))
            total += probs
        return (total / (len(scales) * (2 if flip else 1))).astype(np.float32)

    return predict


# ------------------------------------------------------------------------------ metadata


def read_tflite_metadata(content: bytes) -> bytes | None:
    """The raw segtrain document embedded in a TFLite flatbuffer, or None."""
    from ai_edge_litert import schema_py_generated as schema

    try:
        model = schema.Model.GetRootAs(content, 0)
        for index in range(model.MetadataLength()):
            entry = model.Metadata(index)
            if (entry.Name() or b"").decode(errors="replace") == TFLITE_METADATA_NAME:
                buffer = model.Buffers(entry.Buffer())
                return buffer.DataAsNumpy().tobytes() if buffer.DataLength() else b""
    except Exception:  # noqa: BLE001 - a damaged flatbuffer: the interpreter has already accepted it, so no document
        return None
    return None


def _read_marker(path: Path) -> dict | None:
    if not path.is_file():
        return None
    return _parse_metadata(path.read_bytes(), str(path))


def _parse_metadata(data: bytes | None, origin: str) -> dict | None:
    if data is None:
        return None
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportedModelError(f"{origin}: not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise ExportedModelError(f"{origin}: not a JSON object")
    return document


# ------------------------------------------------------------------------------ images


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3 or 0 in image.shape:
        raise ExportedModelError(f"need a uint8 RGB image [H, W, 3], got {image.dtype} {list(image.shape)}")
    return np.ascontiguousarray(image)


def _resize(array: np.ndarray, size: Sequence[int], to_uint8: bool = False) -> np.ndarray:
    """Bilinear resize (half-pixel centres, tf.image.resize) of [H, W, C] to size; uint8 rounded when asked."""
    import tensorflow as tf

    resized = tf.image.resize(tf.convert_to_tensor(array, tf.float32)[None], tuple(size), method="bilinear")[0]
    if to_uint8:
        return np.asarray(tf.cast(tf.round(tf.clip_by_value(resized, 0.0, 255.0)), tf.uint8))
    return np.asarray(resized, dtype=np.float32)


def _one_line(exc: BaseException) -> str:
    return " ".join((str(exc) or type(exc).__name__).split())[:300]
