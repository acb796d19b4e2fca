"""A contact sheet of written records: image | colour label | overlay, one row per sample.

Drawn from the records themselves (not the source files), so it shows exactly what training
will read, and a label that does not line up with its image is visible at a glance.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from segprep.colormaps import colorize, overlay
from segprep.errors import SegprepError
from segprep.formats.example import decode_example
from segprep.formats.tfrecord import iter_records
from segprep import schema


class PreviewError(SegprepError, ValueError):
    """A split with no record to draw, or a record whose image or label cannot be decoded."""


def first_records(shards: list[Path], count: int) -> list[dict[str, list]]:
    """The first `count` examples of a split, in shard order."""
    found: list[dict[str, list]] = []
    for shard in shards:
        for payload in iter_records(shard):
            found.append(decode_example(payload))
            if len(found) == count:
                return found
    return found


def render_preview(examples: list[dict[str, list]], colormap: np.ndarray, ignore_label: int, row_height: int = 160) -> Image.Image:
    """One row per example, each panel scaled to row_height (labels with nearest neighbour)."""
    rows = []
    for example in examples:
        try:
            with Image.open(io.BytesIO(example[schema.IMAGE][0])) as image:
                rgb = np.asarray(image.convert("RGB"))
            with Image.open(io.BytesIO(example[schema.LABEL][0])) as label_image:
                label = np.asarray(label_image)
        except Exception as exc:  # noqa: BLE001 - PIL raises many types (OSError, SyntaxError, ValueError...) for damaged bytes
            raise PreviewError(f"record {_record_name(example)}: cannot decode its image or label ({str(exc) or type(exc).__name__})") from None
        if label.ndim != 2 or label.shape != rgb.shape[:2] or label.dtype.kind not in "iu":
            raise PreviewError(f"record {_record_name(example)}: label {label.dtype} {label.shape} does not fit image {rgb.shape[1]}x{rgb.shape[0]}")
        colour = colorize(label, colormap, ignore_label)
        blended = overlay(rgb, label, colormap, ignore_label)
        width = max(1, round(rgb.shape[1] * row_height / rgb.shape[0]))
        panels = [
            Image.fromarray(rgb).resize((width, row_height), Image.BILINEAR),
            Image.fromarray(colour).resize((width, row_height), Image.NEAREST),
            Image.fromarray(blended).resize((width, row_height), Image.BILINEAR),
        ]
        rows.append(np.concatenate([np.asarray(p) for p in panels], axis=1))
    if not rows:
        raise PreviewError("no records to preview")
    sheet_width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, 4), (0, sheet_width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return Image.fromarray(np.concatenate(padded, axis=0))


def _record_name(example: dict[str, list]) -> str:
    names = example.get(schema.FILENAME) or [b"?"]
    name = names[0]
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
