"""Cityscapes annotations -> trainId arrays: polygons JSON, official labelIds PNGs, class subsets.

`rasterize_polygons` must give the same pixels as cityscapesScripts' `json2labelImg(..., "trainIds")`,
because every published Cityscapes number was measured against labels made that way. The
reference fills polygons with PIL's `ImageDraw.polygon`, whose scan conversion (edge rounding,
which pixels of a slanted edge are inside, self-intersections filled even-odd) is not something
to re-implement and hope; so the same PIL primitive is called here, with the same coordinates,
in the same order, on the same canvas. What differs is everything around it: the JSON is read
once into plain lists (no per-point objects), and the points go to PIL as parsed.

Reference rules reproduced: canvas imgWidth x imgHeight filled with unlabeled's trainId (255);
objects drawn in file order, later ones on top; a truthy `deleted` skips the object; a label not
in the table but ending in `group` falls back to the name without it (`cargroup` -> `car`);
labels with a negative id (license plate) are not drawn; an unknown label is an error. Cases
where the reference crashes (fewer than two points, malformed points, `ignore` regions) are
AnnotationErrors here. Deleted objects are skipped without being examined, where the reference
would still parse (and could crash on) their points.

Sizes are never trusted: the canvas (or a labelIds PNG's pixels) is allocated only once the size
the file declares has been compared with the real image's (`ImageSize`, from the leftImg8bit
image's header) and found equal. Where there is no image to compare with, the size is bounded by
MAX_PIXELS_WITHOUT_IMAGE (8192 x 8192, 32 Cityscapes frames) and the error says so; a file
declaring 100000 x 100000 is refused instead of asking for 10 GB.

Pure functions over bytes and arrays; callers add the file name to error messages.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from segprep.errors import SegprepError
from segprep.ops.cityscapes_labels import (
    BY_NAME,
    IGNORE_TRAIN_ID,
    LABEL_IDS,
    TRAIN_CLASS_NAMES,
    CityscapesLabel,
    resolve_classes,
)
from segprep.ops.labels import format_values

_GROUP_SUFFIX = "group"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_HEADER_BYTES = 33  # signature, IHDR length and type, its 13 bytes and CRC

MAX_PIXELS_WITHOUT_IMAGE = 8192 * 8192
"""The most pixels an annotation may declare when there is no image to compare its size with."""


class AnnotationError(SegprepError, ValueError):
    """An annotation that cannot be turned into trainIds; the message is a one-line reason."""


@dataclass(frozen=True)
class ImageSize:
    """What an annotation's size is checked against: the real image's size and its name for messages.

    width/height None: there is no image (`name` says why), and the size is only bounded by
    MAX_PIXELS_WITHOUT_IMAGE.
    """

    width: int | None
    height: int | None
    name: str

    def check(self, what: str, width: int, height: int) -> None:
        """AnnotationError unless `what` (e.g. "imgWidth x imgHeight") of width x height may be allocated."""
        size = f"{_number(width)}x{_number(height)}"
        if self.width is not None and self.height is not None:
            if (width, height) != (self.width, self.height):
                raise AnnotationError(f"{what} is {size} but the image {self.name} is {self.width}x{self.height}")
        elif width * height > MAX_PIXELS_WITHOUT_IMAGE:
            raise AnnotationError(
                f"{what} is {size}, over the {MAX_PIXELS_WITHOUT_IMAGE} pixels (8192x8192) accepted "
                f"without an image to compare with ({self.name})"
            )


def _number(value: int) -> str:
    """A declared number for a one-line message: absurdly long ones shortened."""
    text = str(value)
    return text if len(text) <= 20 else text[:17] + "..."


NO_IMAGE = ImageSize(None, None, "no image given")


def png_header_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR (its first 33 bytes suffice), CRC checked; AnnotationError otherwise."""
    if not data.startswith(_PNG_SIGNATURE):
        head = data[:8].hex(" ") if data else "empty file"
        raise AnnotationError(f"not a PNG (starts with {head})")
    if len(data) < PNG_HEADER_BYTES:
        raise AnnotationError("truncated PNG header")
    length, kind = struct.unpack_from(">I4s", data, 8)
    if length != 13 or kind != b"IHDR":
        raise AnnotationError("corrupt PNG (first chunk is not IHDR)")
    (crc,) = struct.unpack_from(">I", data, 29)
    if zlib.crc32(data[12:29]) != crc:
        raise AnnotationError("corrupt PNG (bad CRC in chunk 'IHDR')")
    width, height = struct.unpack_from(">II", data, 16)
    if width == 0 or height == 0:
        raise AnnotationError(f"corrupt PNG header (size {width}x{height})")
    return width, height


def resolve_label(name: str) -> CityscapesLabel | None:
    """The table entry for a polygon's label, with the reference's `...group` fallback; None if unknown."""
    label = BY_NAME.get(name)
    if label is None and name.endswith(_GROUP_SUFFIX):
        label = BY_NAME.get(name[: -len(_GROUP_SUFFIX)])
    return label


def _image_size(document: Any) -> tuple[int, int]:
    if not isinstance(document, dict):
        raise AnnotationError(f"expected a JSON object with imgWidth, imgHeight and objects, got {type(document).__name__}")
    try:
        width, height = int(document["imgWidth"]), int(document["imgHeight"])
    except KeyError as exc:
        raise AnnotationError(f"no {exc.args[0]!r} in the annotation") from None
    except (TypeError, ValueError, OverflowError):  # OverflowError: Infinity
        raise AnnotationError(f"imgWidth/imgHeight are not integers: {document['imgWidth']!r} x {document['imgHeight']!r}") from None
    if width < 1 or height < 1:
        raise AnnotationError(f"image size {width}x{height} is empty")
    return width, height


def _drawable_points(polygon: Any) -> Any:
    """What to hand to PIL: the parsed list itself when every point is an [x, y] pair (real data),
    else (x, y) tuples of each point's first two values, as the reference builds them (so a point
    with extra values behaves the same; a malformed one raises)."""
    try:
        if set(map(len, polygon)) == {2}:
            return polygon
    except TypeError:  # a bare number where a point should be
        pass
    return [(point[0], point[1]) for point in polygon]


def parse_polygons(data: bytes) -> tuple[int, int, list[tuple[Any, int]]]:
    """(width, height, [(points, trainId), ...]) of the objects to draw, in drawing order."""
    try:
        document = json.loads(data)
    except UnicodeDecodeError:
        raise AnnotationError("not valid JSON (not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"not valid JSON ({exc})") from None
    except (ValueError, RecursionError) as exc:  # an integer over Python's 4300-digit limit; absurd nesting
        raise AnnotationError(f"unreadable JSON ({str(exc) or type(exc).__name__})") from None
    width, height = _image_size(document)
    if document.get("ignore"):
        raise AnnotationError("has 'ignore' regions, which are not polygons (json2labelImg cannot draw them either)")
    objects = document.get("objects")
    if not isinstance(objects, list):
        raise AnnotationError("no 'objects' list in the annotation")
    shapes: list[tuple[Any, int]] = []
    for index, obj in enumerate(objects):
        if not isinstance(obj, dict):
            raise AnnotationError(f"object {index} is not a JSON object")
        if obj.get("deleted"):
            continue
        if "label" not in obj:
            raise AnnotationError(f"object {index} has no 'label'")
        name = str(obj["label"])
        label = resolve_label(name)
        if label is None:
            raise AnnotationError(f"unknown label {name!r} (object {index})")
        if label.id < 0:
            continue
        try:
            shapes.append((_drawable_points(obj["polygon"]), label.train_id))
        except KeyError:
            raise AnnotationError(f"object {index} ({name}) has no 'polygon'") from None
        except (TypeError, IndexError):
            raise AnnotationError(f"object {index} ({name}): polygon points are not [x, y] pairs") from None
    return width, height, shapes


def rasterize_polygons(data: bytes, image: ImageSize = NO_IMAGE) -> np.ndarray:
    """A Cityscapes *_polygons.json (its bytes) -> (H, W) uint8 trainIds, as json2labelImg draws them.

    The declared imgWidth x imgHeight must equal the image's size (or stay within
    MAX_PIXELS_WITHOUT_IMAGE when there is none) before the canvas is allocated.
    """
    width, height, shapes = parse_polygons(data)
    image.check("imgWidth x imgHeight", width, height)
    canvas = Image.new("L", (width, height), IGNORE_TRAIN_ID)
    drawer = ImageDraw.Draw(canvas)
    for index, (points, train_id) in enumerate(shapes):
        try:
            drawer.polygon(points, fill=train_id)
        except (TypeError, ValueError, OverflowError) as exc:
            raise AnnotationError(f"polygon {index} cannot be drawn ({exc})") from None
    return np.frombuffer(canvas.tobytes(), dtype=np.uint8).reshape(height, width)


def decode_label_ids(data: bytes, image: ImageSize = NO_IMAGE) -> np.ndarray:
    """An official *_labelIds.png (its bytes) -> (H, W) uint8 ids, every value checked to be a Cityscapes id.

    The size in its header must equal the image's (or stay within MAX_PIXELS_WITHOUT_IMAGE when
    there is none) before any pixel is decoded. Map the result to trainIds with
    cityscapes_labels.ID_TO_TRAIN_ID (e.g. while encoding).
    """
    try:
        width, height = png_header_size(data)
    except AnnotationError as exc:
        raise AnnotationError(f"cannot decode labelIds PNG ({exc})") from None
    image.check("the labelIds PNG", width, height)
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            mode = image.mode
            histogram = image.histogram() if mode == "L" else None
            array = np.asarray(image)
    except Exception as exc:  # noqa: BLE001 - PIL raises many types (OSError, SyntaxError, ValueError...) for damaged files
        raise AnnotationError(f"cannot decode labelIds PNG ({exc})") from None
    if histogram is None:
        raise AnnotationError(f"labelIds image in mode {mode}; expected a single-channel 8-bit PNG of Cityscapes ids")
    bad = {value: count for value, count in enumerate(histogram) if count and value not in LABEL_IDS}
    if bad:
        raise AnnotationError(f"values that are not Cityscapes label ids (0..33): {format_values(bad)}")
    return array


def subset_lookup(classes: Sequence[str]) -> np.ndarray:
    """256-entry uint8 table trainId -> subset id: the chosen classes 1..k in the order given, every
    other train class 0 (background), 255 (void) stays 255.

    Values that are no trainId (19..254) map to themselves, so that such a value still stands out
    as invalid after the mapping. Unknown class names raise UnknownClassError (a ValueError).
    """
    chosen = resolve_classes(list(classes))
    table = np.arange(256, dtype=np.uint8)
    for train_id, name in enumerate(TRAIN_CLASS_NAMES):
        table[train_id] = chosen.index(name) + 1 if name in chosen else 0
    return table
