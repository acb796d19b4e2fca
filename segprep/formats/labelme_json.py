"""Read and validate one labelme annotation file: JSON bytes -> shapes + the image labelme would show.

labelme's own loader (`labelme._label_file.read_label_file`, 6.3.1) decides what the annotated
image *is*, and the masks must be drawn on exactly that pixel grid, so its rules are followed:

- The JSON is UTF-8 (a UTF-8 byte-order mark is tolerated; labelme would refuse it).
- `imageData` (base64), when present and not null, is the image, used as is: no EXIF rotation.
- Otherwise `imagePath` is read relative to the JSON's folder, with Windows backslashes turned
  into slashes (`..\\images\\a.jpg` works on Linux), and EXIF orientation 2-8 is applied the way
  labelme applies it. A rotated image is re-encoded as labelme does (JPEG quality 95, PNG when
  it has alpha); an image that needs no rotation keeps its original bytes. To learn that without
  decoding pixels, the orientation is read from the header (PIL opens files lazily; for PNG a
  chunk walk first checks that there is any metadata chunk at all, because PIL finds late
  eXIf chunks only by decoding).
- `imageHeight` / `imageWidth`, when given, must match that image.

Nothing is allocated from a size the file declares: imageHeight / imageWidth are compared with the
image's own header before the mask is drawn, and a `mask` shape's bitmap is decoded only once its
header size is known to fit the image (a bitmap larger than the image cannot fit its box in
labelme either). The image file is opened only when it is a regular file (a FIFO must not hang).

Deliberate differences, all on inputs labelme cannot convert either: coordinates must be finite
numbers (not booleans), an image whose mode labelme refuses (16-bit, CMYK, float) is refused for
imageData too, and an image that is neither JPEG nor PNG (BMP, TIFF, WebP, ...) is re-encoded
with labelme's rule so the TFRecords get a JPEG or PNG (labelme re-encodes these for imagePath).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import json
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from segprep.errors import SegprepError, describe_os_error
from segprep.fileio import read_regular_file
from segprep.formats.images import PNG_SIGNATURE, sniff_format

# Shape types of labelme 6.3.1 (labelme/utils/shape.py) and how many points each needs:
# (minimum, maximum); None = no maximum.
POINT_COUNTS: dict[str, tuple[int, int | None]] = {
    "polygon": (3, None),
    "rectangle": (2, 2),
    "oriented_rectangle": (4, 4),
    "circle": (2, 2),
    "line": (2, 2),
    "linestrip": (1, None),
    "point": (1, 1),
    "mask": (2, 2),
}

# PIL modes labelme opens (labelme._label_file._DISPLAYABLE_MODES).
_DISPLAYABLE_MODES = frozenset({"1", "L", "P", "RGB", "RGBA", "LA", "PA"})
_EXIF_ORIENTATION_TAG = 0x0112
# PNG chunks in which PIL may find EXIF data (eXIf, or ImageMagick's "Raw profile type exif" text).
_PNG_METADATA_CHUNKS = frozenset({b"eXIf", b"tEXt", b"zTXt", b"iTXt"})


# What PIL raises on damaged or hostile image bytes besides OSError (found by fuzzing the reader):
# truncated or malformed chunks, absurd dimensions, bad zlib streams.
_PIL_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error, Image.DecompressionBombError)


class LabelmeFormatError(SegprepError, ValueError):
    """The file cannot be used; the message is one line, without the file name (the caller adds it)."""


@dataclass(frozen=True)
class LabelmeShape:
    """One shape as drawn: points keep the JSON's own numbers (int or float) so drawing matches labelme."""

    label: str
    shape_type: str
    points: tuple[tuple[float, float], ...]
    group_id: int | None = None
    mask: np.ndarray | None = None  # shape_type "mask": the decoded PNG as a bool array


@dataclass(frozen=True)
class LabelmeImage:
    """The annotated image as labelme loads it.

    data: JPEG or PNG bytes to store (the original bytes unless `reencoded` says why not).
    """

    data: bytes
    format: str  # "jpeg" or "png", from the bytes
    width: int
    height: int
    source: str  # "imageData" or the image file's path
    reencoded: str | None = None  # e.g. "EXIF orientation 6"

    @property
    def extension(self) -> str:
        return ".png" if self.format == "png" else ".jpg"


@dataclass(frozen=True)
class LabelmeFile:
    shapes: tuple[LabelmeShape, ...]
    image: LabelmeImage


def parse_labelme(data: bytes, json_path: Path) -> LabelmeFile:
    """Validate a labelme JSON document and load its image; LabelmeFormatError with the reason otherwise.

    json_path is only used to resolve a relative imagePath.
    """
    document = _decode_json(data)
    shapes_raw = document.get("shapes")
    if not isinstance(shapes_raw, list):
        raise LabelmeFormatError(f"'shapes' must be a list, got {_describe(shapes_raw)}")
    parsed = [_parse_shape(raw, index) for index, raw in enumerate(shapes_raw)]
    image = load_image(document, json_path)
    for key, actual in (("imageHeight", image.height), ("imageWidth", image.width)):
        declared = document.get(key)
        if declared is None:
            continue
        if isinstance(declared, bool) or not isinstance(declared, int | float):
            raise LabelmeFormatError(f"'{key}' must be an integer, got {_describe(declared)}")
        if declared != actual:
            raise LabelmeFormatError(f"{key} is {_short_number(declared)} but the image ({image.source}) is {image.width}x{image.height}")
    # Mask bitmaps last: their size is checked against the image before any is decoded.
    shapes = tuple(
        shape if text is None else dataclasses.replace(shape, mask=_decode_mask(text, _where(index, shape.label), image))
        for index, (shape, text) in enumerate(parsed)
    )
    return LabelmeFile(shapes, image)


def _where(index: int, label: str) -> str:
    return f"shape {index} ({label!r})"


def _decode_json(data: bytes) -> dict[str, Any]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LabelmeFormatError(
            f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); labelme writes UTF-8, re-save the file as UTF-8"
        ) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LabelmeFormatError(f"broken JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:  # an integer over Python's 4300-digit limit; absurd nesting
        raise LabelmeFormatError(f"unreadable JSON ({str(exc) or type(exc).__name__})") from None
    if not isinstance(document, dict):
        raise LabelmeFormatError(f"expected a JSON object, got {_describe(document)}")
    return document


def _short_number(value: int | float) -> str:
    """A declared number for a message; integers too long for a float are shortened, not converted."""
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return text if len(text) <= 20 else text[:17] + "..."


def _describe(value: Any) -> str:
    try:
        text = json.dumps(value) if not isinstance(value, bytes) else repr(value)
    except (ValueError, RecursionError):  # an integer too long to print; absurd nesting
        text = "..."
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}" if value is not None else "null"


def _parse_shape(raw: Any, index: int) -> tuple[LabelmeShape, str | None]:
    """The shape, and for a mask shape its base64 bitmap (decoded once the image's size is known)."""
    where = f"shape {index}"
    if not isinstance(raw, dict):
        raise LabelmeFormatError(f"{where}: expected an object, got {_describe(raw)}")
    label = raw.get("label")
    if not isinstance(label, str):
        raise LabelmeFormatError(f"{where}: 'label' must be a string, got {_describe(label)}")
    where = _where(index, label)
    shape_type = raw.get("shape_type")
    if not isinstance(shape_type, str):
        raise LabelmeFormatError(f"{where}: 'shape_type' must be a string, got {_describe(shape_type)}")
    if shape_type not in POINT_COUNTS:
        known = ", ".join(POINT_COUNTS)
        raise LabelmeFormatError(f"{where}: unsupported shape_type {shape_type!r} (labelme knows {known})")
    points = _parse_points(raw.get("points"), where)
    low, high = POINT_COUNTS[shape_type]
    if len(points) < low or (high is not None and len(points) > high):
        wanted = f"{low}" if low == high else f"at least {low}"
        raise LabelmeFormatError(f"{where}: a {shape_type} needs {wanted} point(s), got {len(points)}")
    group_id = raw.get("group_id")
    if group_id is not None and not isinstance(group_id, int):
        raise LabelmeFormatError(f"{where}: 'group_id' must be an integer or null, got {_describe(group_id)}")
    flags = raw.get("flags")
    if flags is not None and not (isinstance(flags, dict) and all(isinstance(v, bool) for v in flags.values())):
        raise LabelmeFormatError(f"{where}: 'flags' must map names to true/false, got {_describe(flags)}")
    description = raw.get("description")
    if description is not None and not isinstance(description, str):
        raise LabelmeFormatError(f"{where}: 'description' must be a string, got {_describe(description)}")
    mask = raw.get("mask")
    if mask is not None and not isinstance(mask, str):
        raise LabelmeFormatError(f"{where}: 'mask' must be a base64 PNG string, got {_describe(mask)}")
    if shape_type == "mask" and mask is None:
        raise LabelmeFormatError(f"{where}: a mask shape needs its 'mask' (base64 PNG)")
    return LabelmeShape(label, shape_type, points, group_id), mask if shape_type == "mask" else None


def _parse_points(raw: Any, where: str) -> tuple[tuple[float, float], ...]:
    if not isinstance(raw, list) or not raw:
        raise LabelmeFormatError(f"{where}: 'points' must be a non-empty list of [x, y], got {_describe(raw)}")
    points = []
    for point in raw:
        if not (
            isinstance(point, list)
            and len(point) == 2
            and all(_is_coordinate(v) for v in point)
        ):
            raise LabelmeFormatError(f"{where}: every point must be [x, y] with finite numbers, got {_describe(point)}")
        points.append((point[0], point[1]))
    return tuple(points)


def _is_coordinate(value: Any) -> bool:
    """A finite number that is not a boolean; an integer too large for a float is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _decode_mask(text: str, where: str, image: LabelmeImage) -> np.ndarray:
    """The mask PNG as labelme reads it: all channels kept, any non-zero value is True.

    Its header size is checked first: a bitmap wider or taller than the image cannot fit its box
    (labelme fails on it too), and is refused before its pixels are allocated.
    """
    try:
        bitmap = Image.open(io.BytesIO(base64.b64decode(text)))
    except (binascii.Error, *_PIL_ERRORS) as exc:
        raise LabelmeFormatError(f"{where}: 'mask' is not a base64-encoded image ({_reason(exc)})") from None
    with bitmap:
        if bitmap.width > image.width or bitmap.height > image.height:
            raise LabelmeFormatError(
                f"{where}: mask bitmap is {bitmap.width}x{bitmap.height}, larger than the image "
                f"({image.source}, {image.width}x{image.height}); it cannot fit its box"
            )
        try:
            return np.asarray(bitmap).astype(bool)
        except _PIL_ERRORS as exc:
            raise LabelmeFormatError(f"{where}: 'mask' is not a base64-encoded image ({_reason(exc)})") from None


def load_image(document: dict[str, Any], json_path: Path) -> LabelmeImage:
    """The image of a labelme document: embedded imageData as is, else imagePath read and EXIF-oriented."""
    embedded = document.get("imageData")
    if embedded is not None:
        if not isinstance(embedded, str):
            raise LabelmeFormatError(f"'imageData' must be a base64 string or null, got {_describe(embedded)}")
        try:
            data = base64.b64decode(embedded)
        except (binascii.Error, ValueError) as exc:  # ValueError: characters outside ASCII
            raise LabelmeFormatError(f"'imageData' is not valid base64 ({exc})") from None
        return _open_image(data, "imageData", apply_exif=False)
    image_path = document.get("imagePath")
    if not isinstance(image_path, str) or not image_path:
        raise LabelmeFormatError(f"no imageData and 'imagePath' is {_describe(image_path)}; labelme needs one of them")
    path = json_path.parent / PureWindowsPath(image_path).as_posix()
    try:
        data = read_regular_file(path)  # a FIFO or /dev/zero named as the image must not hang the run
    except FileNotFoundError:
        raise LabelmeFormatError(f"image not found: {_printable(path)} (imagePath {image_path!r})") from None
    except OSError as exc:  # a folder, a FIFO or a device named as the image; no permission
        reason = describe_os_error(OSError(exc.errno, exc.strerror)) if exc.errno is not None else str(exc)
        raise LabelmeFormatError(f"cannot read image {_printable(path)}: {reason}") from None
    except ValueError:  # a NUL character in the path
        raise LabelmeFormatError(f"'imagePath' {_describe(image_path)} is not a usable path") from None
    return _open_image(data, _printable(path), apply_exif=True)


def _printable(path: Path) -> str:
    """The path as text for a one-line message: quoted when it holds a line break or other control character."""
    text = str(path)
    return text if text.isprintable() else repr(text)


def _open_image(data: bytes, source: str, apply_exif: bool) -> LabelmeImage:
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        head = data[:8].hex(" ") if data else "empty"
        raise LabelmeFormatError(f"{source}: not an image PIL can read (starts with {head})") from None
    except _PIL_ERRORS as exc:
        raise LabelmeFormatError(f"{source}: unreadable image ({_reason(exc)})") from None
    with image:
        if image.mode not in _DISPLAYABLE_MODES:
            raise LabelmeFormatError(f"{source}: image mode {image.mode} is not supported (labelme opens 1, L, P, RGB, RGBA, LA, PA)")
        kind = sniff_format(data)
        orientation = _exif_orientation(image, data, kind) if apply_exif else None
        if orientation in _ORIENTATION_TRANSPOSE:
            try:
                oriented = image.transpose(_ORIENTATION_TRANSPOSE[orientation])
            except _PIL_ERRORS as exc:
                raise LabelmeFormatError(f"{source}: cannot decode image ({_reason(exc)})") from None
            encoded = _encode_like_labelme(oriented)
            return LabelmeImage(encoded, sniff_format(encoded) or "jpeg", oriented.width, oriented.height, source, f"EXIF orientation {orientation}")
        if kind is None:
            try:
                encoded = _encode_like_labelme(image)
            except _PIL_ERRORS as exc:
                raise LabelmeFormatError(f"{source}: cannot decode image ({_reason(exc)})") from None
            return LabelmeImage(encoded, sniff_format(encoded) or "jpeg", image.width, image.height, source, f"{image.format} image re-encoded")
        return LabelmeImage(data, kind, image.width, image.height, source)


def _reason(exc: BaseException) -> str:
    """PIL's message on one line, or the exception's type when it has none."""
    return " ".join(str(exc).split()) or type(exc).__name__


# EXIF orientation -> the PIL transpose that shows the image upright (the EXIF 2.3 definitions).
_ORIENTATION_TRANSPOSE: dict[Any, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _exif_orientation(image: Image.Image, data: bytes, kind: str | None) -> Any:
    """The EXIF Orientation value as labelme reads it (PIL's merged EXIF dict; None when absent).

    Formats whose PIL plugin has no EXIF reader (TIFF, BMP, GIF) get no orientation in labelme
    either. For PNG, PIL looks for EXIF after the image data only by decoding the image, so the
    chunk list is walked first and the decode is paid only when a metadata chunk exists.
    """
    reader = getattr(image, "_getexif", None)
    if reader is None:
        return None
    if kind == "png" and not _png_has_metadata(data):
        return None
    try:
        exif = reader()
    except Exception as exc:  # noqa: BLE001 - PIL raises many types on corrupt EXIF
        raise LabelmeFormatError(f"unreadable EXIF data ({type(exc).__name__}: {_reason(exc)})") from None
    if not exif:
        return None
    orientation = exif.get(_EXIF_ORIENTATION_TAG)
    # labelme compares with ==; a malformed (unhashable) value matches nothing there either.
    return orientation if isinstance(orientation, int | float) else None


def _png_has_metadata(data: bytes) -> bool:
    """Whether any chunk of the PNG could hold EXIF; a structure problem says True (let PIL decide)."""
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        if kind in _PNG_METADATA_CHUNKS:
            return True
        if kind == b"IEND":
            return False
        pos += 12 + length
    return True


def _encode_like_labelme(image: Image.Image) -> bytes:
    """labelme's re-encoding of an image it changed: PNG when there is alpha, else JPEG quality 95.

    Modes JPEG cannot hold (palette) are converted to RGB first; labelme would fail on them.
    """
    buffer = io.BytesIO()
    if "A" in image.mode:
        image.save(buffer, format="PNG")
    else:
        if image.mode not in ("1", "L", "RGB"):
            image = image.convert("RGB")
        image.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()
