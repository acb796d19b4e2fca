"""Colour-coded or palette label PNGs -> raw index PNGs (DeepLab's remove_gt_colormap, generalised).

Palette PNGs keep their palette indices (so VOC's 255 border stays 255). RGB labels are mapped
through a colormap; colours not in it are an error listing them, or the ignore label on request.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segprep.colormaps import colors_to_index
from segprep.formats.png import encode_index_png
from segprep.ops.labels import LabelError, decode_label, format_colors


@dataclass(frozen=True)
class ColormapRemoval:
    """How colours become indices: the colormap in index order, extra colours (e.g. void -> 255), and
    whether unknown colours are an error or the ignore label."""

    colormap: tuple[tuple[int, int, int], ...] | None
    extra: tuple[tuple[tuple[int, int, int], int], ...] = ()
    unknown_to_ignore: bool = False
    ignore_label: int = 255


def remove_colormap(data: bytes, how: ColormapRemoval) -> tuple[bytes, str]:
    """The index PNG for one label file and what was done ('palette', 'rgb' or 'unchanged')."""
    array, mode, _ = decode_label(data)
    if mode == "L":
        return data, "unchanged"
    if mode == "P":
        return encode_index_png(np.ascontiguousarray(array, dtype=np.uint8)), "palette"
    if mode in ("RGB", "RGBA"):
        if how.colormap is None:
            raise LabelError(f"{mode} label needs --colormap NAME to map colours to classes")
        rgb = np.ascontiguousarray(array[..., :3])
        index, unknown = colors_to_index(rgb, np.array(how.colormap, dtype=np.uint8), dict(how.extra))
        if unknown and not how.unknown_to_ignore:
            raise LabelError(f"colours not in the colormap: {format_colors(unknown)} (use --unknown ignore to map them to {how.ignore_label})")
        if unknown and how.ignore_label != 255:
            index = np.where(index == 255, np.uint8(how.ignore_label), index)  # colors_to_index marks unknown as 255
        return encode_index_png(index.astype(np.uint8)), "rgb"
    raise LabelError(f"label PNG in mode {mode}; expected palette or RGB colours")


def convert_file(job: tuple[str, ColormapRemoval]) -> tuple[str, bytes | None, str]:
    """(source path, PNG bytes or None, what was done or the error reason) for a worker pool."""
    path, how = job
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        png, what = remove_colormap(data, how)
        return path, png, what
    except LabelError as exc:
        return path, None, str(exc)
    except OSError as exc:
        return path, None, f"cannot read ({exc.strerror})"
