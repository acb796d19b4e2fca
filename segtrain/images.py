"""Reading `segtrain predict`'s input images as the 8-bit RGB the model was trained on.

Training decodes records with TensorFlow's decode_image(channels=3); predict must give the model
the same pixels for the same file, whatever PIL mode the file opens in:

- 16-bit samples (PNG bit depth 16, 16-bit TIFF: PIL modes I;16*, or I for a PNG) keep their high
  byte (value >> 8). That is what TensorFlow's PNG decoder and PIL's own 16-bit RGB reader do, so
  predict, fit and eval agree pixel for pixel; PIL's convert("RGB") would instead clip every value
  above 255 to white.
- Alpha is dropped (RGBA, LA, PA, palette transparency) and the stored colours kept, as
  decode_image(channels=3) does. Palette, 1-bit, grey, CMYK and YCbCr images convert to RGB.
- 32-bit float (F) and 32-bit integer (I, other than a 16-bit PNG) images have no defined 0..255
  range (0..1? 0..255? 0..4095?): they are refused with that reason rather than guessed.
- EXIF orientation is not applied: TensorFlow's decoders (fit, eval) ignore it, so predict does too.
- Grey and RGB JPEGs are decoded by TensorFlow's decode_image, as fit and eval decode them: PIL's
  decoder uses a more accurate IDCT and differs by up to a few levels. Other JPEGs (CMYK, YCCK)
  go through PIL.

Every failure is an ImageReadError whose message starts with the file's path.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from PIL import Image

from segtrain.errors import ImageReadError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# What PIL raises for damaged files varies by format (SyntaxError for a broken PNG, struct.error
# for short headers, EOFError for truncated GIFs); all mean "this file cannot be decoded".
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, Image.DecompressionBombError)


def _sixteen_bit_to_rgb(values: np.ndarray) -> np.ndarray:
    high = (np.clip(values.astype(np.int64), 0, 65535) >> 8).astype(np.uint8)
    return np.repeat(high[..., None], 3, axis=-1)


def to_rgb(image: Image.Image, path: Path, file_format: str | None = None) -> np.ndarray:
    """uint8 [H, W, 3] for a PIL image of any mode, or ImageReadError naming path and the reason.

    file_format: the format the file was opened as (a converted copy no longer knows it).
    """
    mode = image.mode
    if mode.startswith("I;16") or (mode == "I" and (file_format or image.format) == "PNG"):
        return _sixteen_bit_to_rgb(np.asarray(image))
    if mode == "I":
        raise ImageReadError(f"{path}: 32-bit integer image (PIL mode I) has no defined 0..255 range; save it as 8- or 16-bit")
    if mode == "F":
        raise ImageReadError(f"{path}: 32-bit float image (PIL mode F) has no defined 0..255 range; save it as 8- or 16-bit")
    if mode == "RGB":
        return np.asarray(image)
    try:
        return np.asarray(image.convert("RGB"))
    except ValueError as exc:
        raise ImageReadError(f"{path}: cannot convert PIL mode {mode} to RGB ({exc})") from None


def read_rgb(path: Path) -> np.ndarray:
    """The image at path as uint8 RGB [H, W, 3], as stored: an EXIF orientation tag is NOT applied.

    segprep convert stores the image bytes as they are and fit and eval decode them with
    TensorFlow, whose decoders ignore EXIF orientation; predict must see the same pixels (and
    write predictions of the stored size, which also match the labels drawn on those pixels).
    The file is read only when it is a regular file (a FIFO named like an image would block).
    """
    import io

    from segprep.errors import describe_os_error
    from segtrain.files import NotRegularFileError, read_regular

    try:
        data = read_regular(path)
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            if image.format in ("JPEG", "MPO") and image.mode in ("L", "RGB"):  # MPO: a camera's multi-picture JPEG
                rgb = _tensorflow_jpeg(data, path)
            else:
                rgb = to_rgb(image, path, image.format)
    except ImageReadError:
        raise
    except NotRegularFileError as exc:
        raise ImageReadError(str(exc)) from None
    except OSError as exc:
        if exc.errno is not None:  # the OS's error (missing, permission denied), not PIL's
            raise ImageReadError(describe_os_error(exc)) from None
        raise ImageReadError(f"{path}: cannot read image ({_detail(exc)})") from None
    except _DECODE_ERRORS as exc:
        raise ImageReadError(f"{path}: cannot read image ({_detail(exc)})") from None
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ImageReadError(f"{path}: decoded to shape {rgb.shape}, not an RGB image")
    return np.ascontiguousarray(rgb)


def _tensorflow_jpeg(data: bytes, path: Path) -> np.ndarray:
    """A JPEG's RGB pixels as fit and eval get them: TensorFlow's decode_image, whose default IDCT
    (libjpeg's fast integer one) differs from PIL's by a few levels in most pixels."""
    import tensorflow as tf

    from segtrain.errors import tf_message

    try:
        return tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
    except tf.errors.OpError as exc:
        raise ImageReadError(f"{path}: cannot read image ({tf_message(exc)})") from None


def _detail(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
