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

Pure functions over bytes and arrays; callers add the file name to error messages.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

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


class AnnotationError(ValueError):
    """An annotation that cannot be turned into trainIds; the message is a one-line reason."""


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
    except (TypeError, ValueError):
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


def rasterize_polygons(data: bytes) -> np.ndarray:
    """A Cityscapes *_polygons.json (its bytes) -> (H, W) uint8 trainIds, as json2labelImg draws them."""
    width, height, shapes = parse_polygons(data)
    canvas = Image.new("L", (width, height), IGNORE_TRAIN_ID)
    drawer = ImageDraw.Draw(canvas)
    for index, (points, train_id) in enumerate(shapes):
        try:
            drawer.polygon(points, fill=train_id)
        except (TypeError, ValueError, OverflowError) as exc:
            raise AnnotationError(f"polygon {index} cannot be drawn ({exc})") from None
    return np.frombuffer(canvas.tobytes(), dtype=np.uint8).reshape(height, width)


def decode_label_ids(data: bytes) -> np.ndarray:
    """An official *_labelIds.png (its bytes) -> (H, W) uint8 ids, every value checked to be a Cityscapes id.

    Map the result to trainIds with cityscapes_labels.ID_TO_TRAIN_ID (e.g. while encoding).
    """
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
