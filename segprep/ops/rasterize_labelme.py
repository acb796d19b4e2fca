"""labelme shapes -> one uint8 class-index image, pixel-identical to `labelme.utils.shapes_to_label`.

labelme draws every shape on its own zero canvas with value 1, turns it into a boolean mask and
assigns the class id where the mask is set, in file order. The pixel set a PIL primitive covers
does not depend on what is already on the canvas, so drawing each shape straight onto one mode-L
canvas with fill = outline = the class id, in the same order, gives the same image without a
full-size mask and boolean scatter per shape (the cost that dominates labelme's loop).

Identity needs the same PIL primitives with the same coordinates: polygon (also the four
corners of an oriented_rectangle), rectangle with its corners sorted, ellipse of radius
sqrt(dx² + dy²) for circles and radius 5 for points, line of width 10 for line and linestrip.
The `mask` type is numpy, not PIL: its two points are truncated with `astype(int)` and the
decoded mask is assigned into `[y1:y2 + 1, x1:x2 + 1]` with numpy's slicing and broadcasting
rules (negative starts count from the end, a mask that does not fit raises ValueError), as
labelme does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw

from segprep.formats.labelme_json import LabelmeShape

LINE_WIDTH = 10  # labelme's shape_to_mask default line_width
POINT_RADIUS = 5  # labelme's shape_to_mask default point_size

Points = tuple[tuple[float, float], ...]


def _polygon(draw: ImageDraw.ImageDraw, points: Points, value: int) -> None:
    draw.polygon(list(points), fill=value, outline=value)


def _rectangle(draw: ImageDraw.ImageDraw, points: Points, value: int) -> None:
    (x0, y0), (x1, y1) = points
    draw.rectangle(((min(x0, x1), min(y0, y1)), (max(x0, x1), max(y0, y1))), fill=value, outline=value)


def _circle(draw: ImageDraw.ImageDraw, points: Points, value: int) -> None:
    (cx, cy), (px, py) = points
    radius = math.sqrt((cx - px) ** 2 + (cy - py) ** 2)
    draw.ellipse(((cx - radius, cy - radius), (cx + radius, cy + radius)), fill=value, outline=value)


def _point(draw: ImageDraw.ImageDraw, points: Points, value: int) -> None:
    ((cx, cy),) = points
    draw.ellipse(((cx - POINT_RADIUS, cy - POINT_RADIUS), (cx + POINT_RADIUS, cy + POINT_RADIUS)), fill=value, outline=value)


def _line(draw: ImageDraw.ImageDraw, points: Points, value: int) -> None:
    draw.line(list(points), fill=value, width=LINE_WIDTH)


_DRAW: dict[str, Callable[[ImageDraw.ImageDraw, Points, int], None]] = {
    "polygon": _polygon,
    "oriented_rectangle": _polygon,
    "rectangle": _rectangle,
    "circle": _circle,
    "point": _point,
    "line": _line,
    "linestrip": _line,
}


def _paste_mask(canvas: np.ndarray, shape: LabelmeShape, value: int) -> None:
    """Set `value` where the shape's bitmap is true, placed at its truncated top-left corner."""
    if shape.mask is None:
        raise ValueError("a mask shape without its bitmap")
    (x1, y1), (x2, y2) = np.asarray(shape.points).astype(int)
    region = canvas[y1 : y2 + 1, x1 : x2 + 1]
    hit = np.zeros(region.shape, dtype=bool)
    try:
        hit[...] = shape.mask
    except ValueError:
        raise ValueError(
            f"mask bitmap of shape {'x'.join(map(str, shape.mask.shape[::-1]))} does not fit its box "
            f"({x1}, {y1})-({x2}, {y2}), {region.shape[1]}x{region.shape[0]} inside the image"
        ) from None
    region[hit] = value


def rasterize_shapes(shapes: Sequence[LabelmeShape], class_ids: Mapping[str, int], height: int, width: int) -> np.ndarray:
    """The (height, width) uint8 class image of the shapes, later shapes over earlier ones.

    class_ids maps every label to its stored value (0..255; the ignore label included).
    Raises KeyError for a label that is not in class_ids and ValueError for a shape that cannot
    be drawn (e.g. a mask bitmap that does not fit its box).
    """
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for shape in shapes:
        value = class_ids[shape.label]
        if shape.shape_type == "mask":
            array = np.array(canvas)
            _paste_mask(array, shape, value)
            canvas = Image.fromarray(array)
            draw = ImageDraw.Draw(canvas)
        else:
            _DRAW[shape.shape_type](draw, shape.points, value)
    return np.asarray(canvas)
