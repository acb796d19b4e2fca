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
from segprep.formats.example import decode_example
from segprep.formats.tfrecord import iter_records
from segprep import schema


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
        with Image.open(io.BytesIO(example[schema.IMAGE][0])) as image:
            rgb = np.asarray(image.convert("RGB"))
        with Image.open(io.BytesIO(example[schema.LABEL][0])) as label_image:
            label = np.asarray(label_image)
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
        raise ValueError("no records to preview")
    sheet_width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, 4), (0, sheet_width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return Image.fromarray(np.concatenate(padded, axis=0))
