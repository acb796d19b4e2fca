"""Every format `segtrain export` writes: a SavedModel (any image size) and a TFLite model (one fixed size).

Both have the same contract: uint8 RGB images [B, H, W, 3] -> {"classes": int32 [B, H, W], "probabilities":
float32 [B, H, W, K]}, the network's own align-corners resize of its logits to the input size inside (as
DeepLab's exported graphs do), images smaller than the output stride padded with the mean pixel
(segtrain.predict.padded_logits). A TFLite model takes exactly [1, H, W, 3] at the size it was exported
for; segtrain.exported resizes other images to it and the probabilities back.

The trap this module exists to avoid: a tf.Module holding a Keras 3 model does not track the model's
variables as TensorFlow variables, so converting such a SavedModel to TFLite "succeeds" with the weights left
as VAR_HANDLE / READ_VARIABLE ops that nothing initializes (a 0.3 MB file that outputs NaN), and int8
calibration crashes. Here the serving module keeps every Keras variable's underlying tf.Variable as its own
attribute, and the TFLite model is converted from a concrete function at the fixed input shape, so the
converter freezes the weights into constants. Every TFLite model is checked before it is written: no
variable op, and finite outputs on test images run through ai_edge_litert's interpreter.

Quantization (`quantize`):
- "none": float32 weights and arithmetic.
- "fp16": float16 weights (half the size), dequantized to float32 at load; float32 arithmetic.
- "int8": post-training integer quantization calibrated on `representative` images (resized to the
  input size): int8 weights (per channel) and int8 activations wherever TFLite has an int8 kernel (with
  DeepLab's ops that is everywhere); the input stays uint8 RGB, the probabilities float32.

Metadata: the TFLite file carries the export's segtrain document (the run's segtrain.json content:
class_names, colormap, ignore_label, model, ...) as a TFLite metadata entry named `segtrain-export.json`
(outputs.EXPORT_MARKER, the file name the SavedModel folder uses for the same document), UTF-8 JSON, plus
a "tflite" object {"quantize", "input_size"}. One file is the whole export: nothing to lose on the way to
a device. segtrain.exported.read_tflite_metadata reads it back; any flatbuffer reader can.

Files are written atomically (a hidden temporary beside the target, renamed over it when complete); a
refused model is never written.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from segtrain.errors import SegtrainError
from segtrain.exported import SIGNATURE, TFLITE_METADATA_NAME
from segtrain.model import input_requirements
from segtrain.outputs import EXPORT_MARKER
from segtrain.predict import padded_logits

QUANTIZE_MODES = ("none", "fp16", "int8")
# TFLite ops that read or write resource variables: their presence means the weights were not frozen.
VARIABLE_OPS = frozenset({"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE"})


class ExportError(SegtrainError):
    """A model that cannot be exported, or whose export would be wrong (refused, nothing written)."""


class UnsupportedOpError(ExportError):
    """The TFLite converter cannot express an op of the network with TFLite's built-in ops."""


@dataclass(frozen=True)
class TFLiteExport:
    """What export_tflite wrote."""

    path: Path
    quantize: str
    input_size: tuple[int, int]
    num_classes: int
    size_bytes: int
    ops: tuple[str, ...]  # the TFLite built-in ops the model uses, sorted


# ------------------------------------------------------------------------------ the serving module


class ServingModule(tf.Module):
    """uint8 images [B, H, W, 3] -> {"classes", "probabilities"}, with the model's variables tracked.

    `tf_variables` holds the tf.Variable under each Keras 3 variable, so tf.saved_model.save and the TFLite
    converter see them (a tf.Module does not look inside Keras 3 variables).
    """

    def __init__(self, model: keras.Model) -> None:
        super().__init__()
        # The Keras model is held in a closure, not an attribute: tracked, it would save every weight a
        # second time (as Keras variables beside their tf.Variables).
        self._keras_model = lambda: model
        self.tf_variables = [_tf_variable(variable) for variable in model.weights]
        self.min_size, self.mean = input_requirements(model)

    def outputs(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        logits = padded_logits(self._keras_model(), tf.cast(images, tf.float32), self.min_size, self.mean)
        probs = tf.nn.softmax(logits, axis=-1)
        return {"classes": tf.argmax(probs, axis=-1, output_type=tf.int32), "probabilities": probs}

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def serve(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        return self.outputs(images)

    def fixed_size(self, height: int, width: int):  # type: ignore[no-untyped-def]
        """The concrete function for one uint8 image [1, height, width, 3] (what TFLite runs)."""
        spec = tf.TensorSpec([1, height, width, 3], tf.uint8, name="images")
        return tf.function(self.outputs, input_signature=[spec]).get_concrete_function()


def _tf_variable(variable: object) -> tf.Variable:
    value = getattr(variable, "value", variable)
    if not isinstance(value, tf.Variable):
        raise ExportError(f"model variable {getattr(variable, 'path', variable)!r} is not backed by a TensorFlow variable (export needs Keras' TensorFlow backend)")
    return value


def export_saved_model(model: keras.Model, out_dir: str | Path, metadata: dict | None = None) -> None:
    """A SavedModel in out_dir (signature serving_default: images uint8 [B, H, W, 3] of any size).

    metadata: the segtrain document, written as outputs.EXPORT_MARKER in out_dir when given (the export
    command stages out_dir and moves it into place; this writes straight into it).
    """
    module = ServingModule(model)
    tf.saved_model.save(module, str(out_dir), signatures={SIGNATURE: module.serve})
    if metadata is not None:
        (Path(out_dir) / EXPORT_MARKER).write_text(json.dumps(metadata, indent=1) + "\n")


# ------------------------------------------------------------------------------ TFLite


def export_tflite(
    model: keras.Model,
    out_path: str | Path,
    input_size: Sequence[int],
    quantize: str = "none",
    representative: Iterable[np.ndarray] | None = None,
    metadata: dict | None = None,
) -> TFLiteExport:
    """A TFLite model at out_path: uint8 [1, H, W, 3] RGB -> classes int32 [1, H, W], probabilities float32 [1, H, W, K].

    input_size: (H, W), the one image size the model takes. quantize: "none", "fp16" or "int8".
    representative: uint8 RGB images [h, w, 3] of any size (resized to H x W bilinearly) that int8
    calibrates on (required for int8: a few dozen to a few hundred typical images); for the other modes
    the first one is only a test input. metadata: the segtrain document to embed (see the module doc).

    Refused with an ExportError (one line, nothing written): a conversion that fails (UnsupportedOpError
    names the op), a result that still reads variables, or outputs that are not finite on a test image.
    """
    height, width = _check_size(input_size)
    if quantize not in QUANTIZE_MODES:
        raise ExportError(f"quantize {quantize!r}: choose from {', '.join(QUANTIZE_MODES)}")
    calibration = [_resized(image, height, width, index) for index, image in enumerate(representative or ())]
    if quantize == "int8" and not calibration:
        raise ExportError("int8 quantization needs representative images to calibrate on (none given)")
    module = ServingModule(model)
    function = module.fixed_size(height, width)
    content = convert(function, module, quantize, calibration)
    num_classes = check_tflite(content, [_test_image(height, width)] + calibration[:1])
    document = {**(metadata or {}), "tflite": {"quantize": quantize, "input_size": [height, width]}}
    content = embed_metadata(content, TFLITE_METADATA_NAME, json.dumps(document, indent=1).encode())
    check_tflite(content, [_test_image(height, width)])  # the rewritten flatbuffer still runs
    from segprep.fileio import atomic_write_bytes

    out_path = Path(out_path)
    atomic_write_bytes(out_path, content)
    return TFLiteExport(out_path, quantize, (height, width), num_classes, len(content), tuple(tflite_ops(content)))


def convert(function, trackable: tf.Module, quantize: str = "none", calibration: Sequence[np.ndarray] = ()) -> bytes:  # type: ignore[no-untyped-def]
    """The TFLite flatbuffer of a concrete function (its variables frozen into constants)."""
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], trackable)
    if quantize == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([image[None]] for image in calibration)
    try:
        with _converter_output_held():
            return bytes(converter.convert())
    except Exception as exc:  # noqa: BLE001 - ConverterError, or errors of calibration and freezing
        raise conversion_error(exc) from None


@contextlib.contextmanager
def _converter_output_held() -> Iterator[None]:
    """Drop what the converter's C++ side prints to file descriptor 2 (MLIR diagnostics, calibration
    notices) when TensorFlow runs quiet (TF_CPP_MIN_LOG_LEVEL 3, as segtrain's commands set it unless
    --verbose): a failure still reaches the user, as conversion_error's one line."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") != "3":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as sink:
            os.dup2(sink.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def conversion_error(exc: BaseException) -> ExportError:
    """One line for a failed conversion; UnsupportedOpError naming the op when the converter names one."""
    ops: list[str] = []
    for error in getattr(exc, "errors", None) or ():  # ConverterError's structured errors
        name = getattr(getattr(error, "operator", None), "name", "")
        if name and name not in ops:
            ops.append(name)
    text = str(exc)
    for match in re.finditer(r"'(tf\.\w+)' op is neither a custom op nor a flex op|'(tf\.\w+)' op is not supported|(?:TF Select|Custom) ops: ([\w, ]+)", text):
        for name in (match[1], match[2], *(match[3] or "").split(",")):
            name = (name or "").strip()
            name = name if not name or name.startswith("tf.") else f"tf.{name}"
            if name and name not in ops:
                ops.append(name)
    if ops:
        more = f" (and {', '.join(ops[1:])})" if len(ops) > 1 else ""
        return UnsupportedOpError(f"cannot convert the model to TFLite: TFLite's built-in ops have no {ops[0]}{more}")
    lines = [line.strip() for line in text.splitlines() if "error:" in line] or [line.strip() for line in text.splitlines() if line.strip()]
    detail = re.sub(r"^.*?error:\s*", "", lines[0]) if lines else type(exc).__name__
    return ExportError(f"cannot convert the model to TFLite: {' '.join(detail.split())[:300]}")


def check_tflite(content: bytes, images: Sequence[np.ndarray]) -> int:
    """Refuse a TFLite model that reads variables or gives non-finite outputs on the images; its class count."""
    held = sorted(VARIABLE_OPS.intersection(tflite_ops(content)))
    if held:
        raise ExportError(f"refusing to write a TFLite model whose weights are variables ({', '.join(held)} ops, not frozen constants): it would output garbage")
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_content=content)
        runner = interpreter.get_signature_runner(SIGNATURE)
        num_classes = 0
        for image in images:
            outputs = runner(images=image[None])
            probs = outputs["probabilities"]
            num_classes = int(probs.shape[-1])
            if not np.isfinite(probs).all():
                bad = int(np.size(probs) - np.isfinite(probs).sum())
                raise ExportError(f"refusing to write a TFLite model whose probabilities are not finite on a test image ({bad} of {np.size(probs)} values NaN or infinite)")
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001 - the interpreter raises RuntimeError/ValueError with multi-line text
        detail = " ".join(str(exc).split())[:300]
        raise ExportError(f"refusing to write a TFLite model that the LiteRT interpreter cannot run: {detail}") from None
    return num_classes


def _check_size(size: Sequence[int]) -> tuple[int, int]:
    try:
        height, width = (int(value) for value in size)
        ok = [height, width] == list(size) and height > 0 and width > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ExportError(f"input size {size!r}: need (height, width), two positive integers")
    return height, width


def _resized(image: np.ndarray, height: int, width: int, index: int) -> np.ndarray:
    """A representative image as uint8 [height, width, 3] (bilinear resize, rounded)."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3 or 0 in image.shape:
        raise ExportError(f"representative image {index}: need uint8 RGB [H, W, 3], got {image.dtype} {list(image.shape)}")
    if image.shape[:2] == (height, width):
        return image
    resized = tf.image.resize(tf.cast(image, tf.float32), (height, width), method="bilinear")
    return np.asarray(tf.cast(tf.round(tf.clip_by_value(resized, 0.0, 255.0)), tf.uint8))


def _test_image(height: int, width: int) -> np.ndarray:
    """A deterministic uint8 test image: colour ramps and stripes, every pixel value range used."""
    rows, cols = np.mgrid[0:height, 0:width]
    red = cols * 255 // max(width - 1, 1)
    green = rows * 255 // max(height - 1, 1)
    blue = ((rows // 4 + cols // 4) % 2) * 255
    return np.stack([red, green, blue], axis=-1).astype(np.uint8)


# ------------------------------------------------------------------------------ the flatbuffer


def _schema():  # type: ignore[no-untyped-def]
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError:  # pragma: no cover - the tflite extra is missing
        raise ExportError("TFLite export needs the ai-edge-litert package: pip install 'segprep[tflite]'") from None
    return schema_py_generated


def tflite_ops(content: bytes) -> list[str]:
    """The built-in op names a TFLite flatbuffer declares (custom ops as CUSTOM:name), sorted."""
    schema = _schema()
    codes = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    model = schema.Model.GetRootAs(content, 0)
    names = set()
    for index in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(index)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = codes.get(builtin, str(builtin))
        if name == "CUSTOM":
            name = f"CUSTOM:{(code.CustomCode() or b'').decode(errors='replace')}"
        names.add(name)
    return sorted(names)


def embed_metadata(content: bytes, name: str, data: bytes) -> bytes:
    """content with a metadata entry `name` holding data (an entry of that name replaced)."""
    import flatbuffers

    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    if any(getattr(buffer, "offset", 0) > 1 for buffer in model.buffers or ()):
        raise ExportError("the TFLite model keeps its weights outside the flatbuffer (over 2 GB): cannot embed segtrain's metadata")
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(data, dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = name
    entry.buffer = len(model.buffers) - 1
    model.metadata = [old for old in model.metadata or () if (old.name.decode() if isinstance(old.name, bytes) else old.name) != name] + [entry]
    builder = flatbuffers.Builder(len(content) + len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


# ------------------------------------------------------------------------------ into place


def install_saved_model(model: keras.Model, out_dir: Path, metadata: dict) -> None:
    """The SavedModel and its segtrain document in a hidden folder beside out_dir, moved into place when complete
    (outputs.check_export_target has cleared out_dir: new, empty, or an earlier export)."""
    import shutil

    from segtrain.outputs import install_folder, staging_folder

    staged = staging_folder(out_dir)
    try:
        export_saved_model(model, staged, metadata)
        install_folder(staged, out_dir)
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def write_tflite(model: keras.Model, out_path: Path, input_size: Sequence[int], quantize: str, representative: Iterable[np.ndarray] | None, metadata: dict) -> TFLiteExport:
    """export_tflite into out_path, recorded in the folder's export ledger (outputs.check_file_export_target
    has refused a file export did not write)."""
    from segprep.safewrite import sha256_file
    from segtrain.outputs import ExportFileLedger

    ledger = ExportFileLedger(out_path)
    ledger.begin([out_path.name])
    written: dict[str, str] = {}
    try:
        result = export_tflite(model, out_path, input_size, quantize, representative, metadata)
        digest = sha256_file(out_path)
        if digest is not None:
            written[out_path.name] = digest
    finally:
        ledger.finish(written)
    return result
