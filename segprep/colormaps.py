"""Semantic-segmentation colormaps: class index <-> RGB colour.

Label images in segprep are single-channel ``uint8`` arrays of class indices.
People look at them through a colormap, and some datasets ship their ground
truth *only* as colour-coded RGB images, so both directions are needed:

* :func:`colorize` turns an index image into an RGB picture;
* :func:`palette_for_png` gives the same mapping as a PNG palette, so an index
  image can be saved as a palettised ('P' mode) PNG that stays an index image
  for training code but shows colours in an image viewer;
* :func:`colors_to_index` turns a colour-coded label image back into indices
  and reports every colour it could not place, so that a wrong colormap is
  noticed instead of silently producing a garbage mask.

Everything here is plain numpy; no image library is imported, so the module
can be used from any I/O layer.

Where the built-in tables come from (numbers only, checked entry by entry):

* ``pascal``, ``cityscapes``, ``ade20k``: DeepLab's
  ``research/deeplab/utils/get_dataset_colormap.py`` in tensorflow/models.
  ``pascal`` is computed with the same bit-interleaving rule instead of being
  typed in; ``cityscapes`` keeps only the 19 train-id entries.
* ``mapillary_vistas``: the official Vistas v1.2 label colours (the dataset's
  ``config_v1.2.json``), cross-checked against openvinotoolkit/datumaro and
  open-mmlab/mmsegmentation.  Not DeepLab's copy, which repeats colours and so
  cannot decode Vistas' colour-coded labels.
* ``camvid``: the 11-class SegNet palette (alexgkendall/SegNet-Tutorial,
  ``Scripts/test_segmentation_camvid.py``).
* ``kitti_road``: the colours of the KITTI road benchmark ground truth
  (``gt_image_2``): red background, magenta road, black "don't care".
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from segprep.errors import SegprepError

__all__ = [
    "BUILTIN_COLORMAPS",
    "IGNORE_DISPLAY_COLOR",
    "builtin_colormap",
    "colorize",
    "colors_to_index",
    "overlay",
    "palette_for_png",
    "resolve_colormap",
    "void_color",
]

BUILTIN_COLORMAPS: tuple[str, ...] = (
    "pascal",
    "cityscapes",
    "ade20k",
    "camvid",
    "kitti_road",
    "mapillary_vistas",
)

# PASCAL VOC draws its 255 "border / difficult" label in this cream colour.
# It is used for the ignore label of every colormap so that ignored pixels look
# the same whichever dataset is shown, and because it is a colour that none of
# the other built-in tables uses for a real class.
IGNORE_DISPLAY_COLOR: tuple[int, int, int] = (224, 224, 192)

# Label images are uint8, so no colormap can meaningfully have more entries.
_MAX_ENTRIES = 256


class ColormapError(SegprepError, ValueError):
    """An unknown colormap name or a malformed colour table (from a registry, a manifest or an option)."""


# --------------------------------------------------------------------------
# Colour tables (facts; see the module docstring for the sources).
# --------------------------------------------------------------------------

# Cityscapes train ids 0..18: road, sidewalk, building, wall, fence, pole,
# traffic light, traffic sign, vegetation, terrain, sky, person, rider, car,
# truck, bus, train, motorcycle, bicycle.
_CITYSCAPES = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156),
    (190, 153, 153), (153, 153, 153), (250, 170, 30), (220, 220, 0),
    (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
    (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
    (0, 80, 100), (0, 0, 230), (119, 11, 32),
)

# ADE20K SceneParsing: index 0 is "other" (not one of the 150 classes), then
# the 150 classes of objectInfo150 in order.  Note that DeepLab's table gives
# classes 7 and 49 the same colour (140, 140, 140).
_ADE20K = (
    (0, 0, 0), (120, 120, 120), (180, 120, 120), (6, 230, 230),
    (80, 50, 50), (4, 200, 3), (120, 120, 80), (140, 140, 140),
    (204, 5, 255), (230, 230, 230), (4, 250, 7), (224, 5, 255),
    (235, 255, 7), (150, 5, 61), (120, 120, 70), (8, 255, 51),
    (255, 6, 82), (143, 255, 140), (204, 255, 4), (255, 51, 7),
    (204, 70, 3), (0, 102, 200), (61, 230, 250), (255, 6, 51),
    (11, 102, 255), (255, 7, 71), (255, 9, 224), (9, 7, 230),
    (220, 220, 220), (255, 9, 92), (112, 9, 255), (8, 255, 214),
    (7, 255, 224), (255, 184, 6), (10, 255, 71), (255, 41, 10),
    (7, 255, 255), (224, 255, 8), (102, 8, 255), (255, 61, 6),
    (255, 194, 7), (255, 122, 8), (0, 255, 20), (255, 8, 41),
    (255, 5, 153), (6, 51, 255), (235, 12, 255), (160, 150, 20),
    (0, 163, 255), (140, 140, 140), (250, 10, 15), (20, 255, 0),
    (31, 255, 0), (255, 31, 0), (255, 224, 0), (153, 255, 0),
    (0, 0, 255), (255, 71, 0), (0, 235, 255), (0, 173, 255),
    (31, 0, 255), (11, 200, 200), (255, 82, 0), (0, 255, 245),
    (0, 61, 255), (0, 255, 112), (0, 255, 133), (255, 0, 0),
    (255, 163, 0), (255, 102, 0), (194, 255, 0), (0, 143, 255),
    (51, 255, 0), (0, 82, 255), (0, 255, 41), (0, 255, 173),
    (10, 0, 255), (173, 255, 0), (0, 255, 153), (255, 92, 0),
    (255, 0, 255), (255, 0, 245), (255, 0, 102), (255, 173, 0),
    (255, 0, 20), (255, 184, 184), (0, 31, 255), (0, 255, 61),
    (0, 71, 255), (255, 0, 204), (0, 255, 194), (0, 255, 82),
    (0, 10, 255), (0, 112, 255), (51, 0, 255), (0, 194, 255),
    (0, 122, 255), (0, 255, 163), (255, 153, 0), (0, 255, 10),
    (255, 112, 0), (143, 255, 0), (82, 0, 255), (163, 255, 0),
    (255, 235, 0), (8, 184, 170), (133, 0, 255), (0, 255, 92),
    (184, 0, 255), (255, 0, 31), (0, 184, 255), (0, 214, 255),
    (255, 0, 112), (92, 255, 0), (0, 224, 255), (112, 224, 255),
    (70, 184, 160), (163, 0, 255), (153, 0, 255), (71, 255, 0),
    (255, 0, 163), (255, 204, 0), (255, 0, 143), (0, 255, 235),
    (133, 255, 0), (255, 0, 235), (245, 0, 255), (255, 0, 122),
    (255, 245, 0), (10, 190, 212), (214, 255, 0), (0, 204, 255),
    (20, 0, 255), (255, 255, 0), (0, 153, 255), (0, 41, 255),
    (0, 255, 204), (41, 0, 255), (41, 255, 0), (173, 0, 255),
    (0, 245, 255), (71, 0, 255), (122, 0, 255), (0, 255, 184),
    (0, 92, 255), (184, 255, 0), (0, 133, 255), (255, 214, 0),
    (25, 194, 194), (102, 255, 0), (92, 0, 255),
)

# SegNet's CamVid palette, class order: Sky, Building, Pole, Road, Pavement,
# Tree, SignSymbol, Fence, Car, Pedestrian, Bicyclist.  This is SegNet's
# display palette for its 11-class index labels; a few colours (e.g. Pavement)
# differ from the original 32-class CamVid colour-coded ground truth.
_CAMVID = (
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128),
    (60, 40, 222), (128, 128, 0), (192, 128, 128), (64, 64, 128),
    (64, 0, 128), (64, 64, 0), (0, 128, 192),
)

# KITTI road ground truth: 0 background = red, 1 road = magenta.
_KITTI_ROAD = (
    (255, 0, 0), (255, 0, 255),
)

# Mapillary Vistas v1.2, 66 classes in the dataset's own order (index 65 is
# "Unlabeled" = black).  These are the colours of Vistas' colour-coded label
# PNGs as listed in the dataset's config_v1.2.json; values checked against two
# copies of that list (openvinotoolkit/datumaro ``MapillaryVistasLabelMap_V12``
# and open-mmlab/mmsegmentation ``MapillaryDataset_v1_2`` palette).  DeepLab's
# get_dataset_colormap.py table is deliberately NOT used: it repeats colours
# at 14 indices (e.g. the three riders all (255, 0, 0), Bike Rack / Ego Vehicle
# / Unlabeled all black), so it cannot decode real Vistas RGB labels.  In this
# table every colour is distinct, so colour <-> index is a bijection.
_MAPILLARY_VISTAS = (
    (165, 42, 42), (0, 192, 0), (196, 196, 196), (190, 153, 153),
    (180, 165, 180), (90, 120, 150), (102, 102, 156), (128, 64, 255),
    (140, 140, 200), (170, 170, 170), (250, 170, 160), (96, 96, 96),
    (230, 150, 140), (128, 64, 128), (110, 110, 110), (244, 35, 232),
    (150, 100, 100), (70, 70, 70), (150, 120, 90), (220, 20, 60),
    (255, 0, 0), (255, 0, 100), (255, 0, 200), (200, 128, 128),
    (255, 255, 255), (64, 170, 64), (230, 160, 50), (70, 130, 180),
    (190, 255, 255), (152, 251, 152), (107, 142, 35), (0, 170, 30),
    (255, 255, 128), (250, 0, 30), (100, 140, 180), (220, 220, 220),
    (220, 128, 128), (222, 40, 40), (100, 170, 30), (40, 40, 40),
    (33, 33, 33), (100, 128, 160), (142, 0, 0), (70, 100, 150),
    (210, 170, 100), (153, 153, 153), (128, 128, 128), (0, 0, 80),
    (250, 170, 30), (192, 192, 192), (220, 220, 0), (140, 140, 20),
    (119, 11, 32), (150, 0, 255), (0, 60, 100), (0, 0, 142),
    (0, 0, 90), (0, 0, 230), (0, 80, 100), (128, 64, 64),
    (0, 0, 110), (0, 0, 70), (0, 0, 192), (32, 32, 32),
    (120, 10, 10), (0, 0, 0),
)

_TABLES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "cityscapes": _CITYSCAPES,
    "ade20k": _ADE20K,
    "camvid": _CAMVID,
    "kitti_road": _KITTI_ROAD,
    "mapillary_vistas": _MAPILLARY_VISTAS,
}

# Colour that a dataset's *colour-coded* ground truth uses for "void / don't
# care".  Only datasets whose labels are distributed as RGB images and where
# that colour is not also a real class are listed.
_VOID_COLORS: dict[str, tuple[int, int, int]] = {
    "camvid": (0, 0, 0),
    "kitti_road": (0, 0, 0),
    "cityscapes": (0, 0, 0),
}


def _pascal_colormap(n: int = _MAX_ENTRIES) -> np.ndarray:
    """Build the PASCAL VOC colormap by DeepLab's bit-interleaving rule.

    It is computed rather than typed in because the rule is the definition:
    bit ``c`` of each successive 3-bit group of the index goes into channel
    ``c``, filling the channel from its most significant bit downwards.  The
    result gives every one of the 256 indices a distinct colour.
    """
    cmap = np.zeros((n, 3), dtype=np.int64)
    ind = np.arange(n, dtype=np.int64)
    for shift in range(7, -1, -1):
        for channel in range(3):
            cmap[:, channel] |= ((ind >> channel) & 1) << shift
        ind >>= 3
    return cmap.astype(np.uint8)


def builtin_colormap(name: str) -> np.ndarray:
    """Return the built-in colormap ``name`` as a fresh ``(K, 3)`` uint8 array.

    A new array is returned on every call so that a caller who edits it (for
    instance to recolour one class for a figure) cannot change what everybody
    else gets.

    Raises:
        ColormapError (a ValueError): ``name`` is not one of :data:`BUILTIN_COLORMAPS`; the
            message lists the known names so a typo is easy to fix.
    """
    if name == "pascal":
        return _pascal_colormap()
    table = _TABLES.get(name) if isinstance(name, str) else None
    if table is None:
        raise ColormapError(
            f"unknown colormap {name!r}; known colormaps: "
            + ", ".join(BUILTIN_COLORMAPS)
        )
    return np.array(table, dtype=np.uint8)


def _is_int(value: object) -> bool:
    # bool is an int subclass, but True/False in a colour table is a mistake.
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _validate_rgb(value: object, what: str) -> tuple[int, int, int]:
    """Check that ``value`` is three ints in 0..255 and return it as a tuple."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise ColormapError(f"{what} must be a sequence of 3 ints, got {value!r}")
    if len(value) != 3:
        raise ColormapError(f"{what} must have exactly 3 components (r, g, b), got {value!r}")
    out = []
    for component in value:
        if not _is_int(component):
            raise ColormapError(f"{what} must contain ints only, got {value!r}")
        if not 0 <= int(component) <= 255:
            raise ColormapError(f"{what} components must be in 0..255, got {value!r}")
        out.append(int(component))
    return (out[0], out[1], out[2])


def _as_colormap(colormap: object) -> np.ndarray:
    """Validate an already-built colormap array and return it as uint8.

    The public functions accept arrays from :func:`builtin_colormap` or
    :func:`resolve_colormap`, but also arrays a caller made by hand; checking
    here turns a silently wrapped value (e.g. 256 -> 0 in a uint8 cast) into a
    clear error.
    """
    arr = np.asarray(colormap)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ColormapError(f"colormap must have shape (K, 3), got {arr.shape}")
    if not 1 <= arr.shape[0] <= _MAX_ENTRIES:
        raise ColormapError(
            f"colormap must have 1..{_MAX_ENTRIES} entries, got {arr.shape[0]}"
        )
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype.kind not in "iu":
        raise ColormapError(f"colormap must have an integer dtype, got {arr.dtype}")
    if arr.min() < 0 or arr.max() > 255:
        raise ColormapError("colormap values must be in 0..255")
    return arr.astype(np.uint8)


def resolve_colormap(spec: str | Sequence[Sequence[int]]) -> np.ndarray:
    """Turn a colormap specification from a config or CLI into a ``(K, 3)`` array.

    ``spec`` is either the name of a built-in colormap or an explicit list of
    ``[r, g, b]`` entries (index ``i`` gets entry ``i``).  Explicit lists are
    validated strictly -- three ints in 0..255 per entry, at most 256 entries --
    because a malformed user table would otherwise only show up later as
    wrongly coloured or wrongly decoded labels.

    Raises:
        ColormapError (a ValueError): unknown name, or a malformed list.
    """
    if isinstance(spec, str):
        return builtin_colormap(spec)
    if isinstance(spec, np.ndarray):
        if spec.ndim != 2 or spec.shape[1] != 3:
            raise ColormapError(f"colormap must have shape (K, 3), got {spec.shape}")
        if spec.dtype.kind not in "iu":
            raise ColormapError(f"colormap must contain ints, got dtype {spec.dtype}")
        return _as_colormap(spec).copy()
    if isinstance(spec, bytes) or not isinstance(spec, Sequence):
        raise ColormapError(
            "colormap must be a built-in name or a list of [r, g, b] entries, "
            f"got {type(spec).__name__}"
        )
    if len(spec) == 0:
        raise ColormapError("colormap list is empty")
    if len(spec) > _MAX_ENTRIES:
        raise ColormapError(
            f"colormap has {len(spec)} entries; at most {_MAX_ENTRIES} fit uint8 labels"
        )
    rows = [_validate_rgb(entry, f"colormap entry {i}") for i, entry in enumerate(spec)]
    return np.array(rows, dtype=np.uint8)


def void_color(name: str) -> tuple[int, int, int] | None:
    """Colour that dataset ``name`` uses for "void / don't care" in RGB labels.

    When colour-coded ground truth is converted with :func:`colors_to_index`,
    this colour is normally passed in ``extra`` mapped to the ignore label
    (e.g. ``{void_color("camvid"): 255}``) so that void pixels become ignored
    instead of being reported as unknown colours.

    Returns ``(0, 0, 0)`` for camvid, kitti_road and cityscapes, and ``None``
    for the other built-ins: pascal uses an index (255) rather than a colour
    for its void label, and in ade20k (index 0, "other") and mapillary_vistas
    (index 65, "Unlabeled") black is already an entry of the table, so it
    cannot double as a separate void colour.  For Vistas, decode normally and
    treat index 65 as ignore downstream if wanted.

    Raises:
        ColormapError (a ValueError): ``name`` is not a built-in colormap name.
    """
    if name not in BUILTIN_COLORMAPS:
        raise ColormapError(
            f"unknown colormap {name!r}; known colormaps: "
            + ", ".join(BUILTIN_COLORMAPS)
        )
    return _VOID_COLORS.get(name)


def _lookup_table(colormap: np.ndarray, ignore_label: int) -> np.ndarray:
    """256-entry RGB table: colormap first, black after, ignore entry cream."""
    cmap = _as_colormap(colormap)
    lut = np.zeros((_MAX_ENTRIES, 3), dtype=np.uint8)
    lut[: cmap.shape[0]] = cmap
    if cmap.shape[0] <= ignore_label < _MAX_ENTRIES:
        lut[ignore_label] = IGNORE_DISPLAY_COLOR
    return lut


def palette_for_png(colormap: np.ndarray, ignore_label: int = 255) -> list[int]:
    """Return 768 ints (256 RGB triples) for PIL's ``Image.putpalette``.

    Saving labels as a palettised PNG keeps the pixel values equal to the class
    indices (so training code reads them unchanged) while image viewers show
    the colours.  Entries beyond the colormap are black; the ``ignore_label``
    entry is :data:`IGNORE_DISPLAY_COLOR` unless the colormap itself defines
    that index (pascal does, with the same colour), so ignored pixels stand out
    from real classes.  An ``ignore_label`` outside 0..255 is simply not drawn.
    """
    return [int(v) for v in _lookup_table(colormap, ignore_label).ravel()]


def colorize(labels: np.ndarray, colormap: np.ndarray, ignore_label: int = 255) -> np.ndarray:
    """Render an index image as RGB for viewing: ``(H, W)`` -> ``(H, W, 3)`` uint8.

    Index ``i`` gets ``colormap[i]``; the ignore label gets
    :data:`IGNORE_DISPLAY_COLOR` unless the colormap defines that index; any
    other index the colormap does not cover is drawn black rather than raising,
    because a visualisation should still come out for a slightly wrong mask.
    Values outside 0..255 (possible with wider integer dtypes) are also black.

    Raises:
        ValueError: ``labels`` is not an integer array, or the colormap is
            malformed.
    """
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise ValueError(f"labels must have an integer dtype, got {labels.dtype}")
    lut = _lookup_table(colormap, ignore_label)
    if labels.dtype == np.uint8:
        # Fast path: direct gather through the 256-entry table.
        return lut[labels]
    out = np.zeros(labels.shape + (3,), dtype=np.uint8)
    in_range = (labels >= 0) & (labels < _MAX_ENTRIES)
    out[in_range] = lut[labels[in_range]]
    if not 0 <= ignore_label < _MAX_ENTRIES:
        out[labels == ignore_label] = IGNORE_DISPLAY_COLOR
    return out


def _pack(rgb: np.ndarray) -> np.ndarray:
    """Pack the last axis (r, g, b) of a uint8 array into one uint32 key."""
    keys = np.left_shift(rgb[..., 0], 16, dtype=np.uint32)
    keys |= np.left_shift(rgb[..., 1], 8, dtype=np.uint32)
    keys |= rgb[..., 2]
    return keys


def colors_to_index(
    rgb: np.ndarray,
    colormap: np.ndarray,
    extra: Mapping[tuple[int, int, int], int] | None = None,
) -> tuple[np.ndarray, dict[tuple[int, int, int], int]]:
    """Convert a colour-coded label image ``(H, W, 3)`` uint8 to indices ``(H, W)`` uint8.

    Each pixel whose colour is ``colormap[i]`` becomes ``i``.  ``extra`` maps
    further colours to indices -- typically the dataset's void colour to the
    ignore label (255) -- and takes precedence over the colormap for a colour
    present in both, since it states the caller's explicit intent.  If a colour
    appears more than once in the colormap, the lowest index wins, so the
    result does not depend on hashing or sort order.

    Pixels with any other colour are set to 255 and *reported*: the second
    return value maps each unknown colour to its pixel count, largest first.
    A non-empty report usually means the wrong colormap was chosen or the
    image was saved lossily (JPEG), which is worth failing loudly on upstream.

    The work is vectorised: colours are packed into one uint32 key
    (``r << 16 | g << 8 | b``) and looked up in a temporary 2**24-entry table
    (16 MiB), so a 1024x2048 image takes roughly 10-20 ms.  Counting unknown
    colours sorts only the unknown pixels, so it costs time only when there
    are many of them (a photograph passed by mistake takes about a second).

    Raises:
        ValueError: ``rgb`` is not uint8 with a last axis of 3, the colormap is
            malformed, or ``extra`` holds an invalid colour or index.
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be a uint8 array, got dtype {rgb.dtype}")
    if rgb.ndim < 1 or rgb.shape[-1] != 3:
        raise ValueError(f"rgb must have a last axis of size 3, got shape {rgb.shape}")
    cmap = _as_colormap(colormap)

    # colour key -> index; iterate in index order so the first (lowest) wins.
    table: dict[int, int] = {}
    for index, key in enumerate(_pack(cmap).tolist()):
        table.setdefault(key, index)
    if extra:
        for colour, index in extra.items():
            r, g, b = _validate_rgb(colour, "extra colour")
            if not _is_int(index) or not 0 <= int(index) <= 255:
                raise ValueError(
                    f"extra index for colour {colour!r} must be an int in 0..255, got {index!r}"
                )
            table[(r << 16) | (g << 8) | b] = int(index)

    table_keys = np.fromiter(table.keys(), dtype=np.uint32, count=len(table))
    table_values = np.fromiter(table.values(), dtype=np.uint8, count=len(table))

    # One gather through a 2**24-entry table (16 MiB, filled with 255) is far
    # cheaper than a binary search per pixel.  255 doubles as "unknown", so the
    # few pixels that come out as 255 are re-checked against the colours that
    # legitimately map to 255 (e.g. pascal's ignore colour, or extra void).
    keys = _pack(rgb)
    lut = np.full(1 << 24, 255, dtype=np.uint8)
    lut[table_keys] = table_values
    out = lut[keys]
    del lut
    flat_keys = keys.reshape(-1)
    candidates = np.flatnonzero(out.reshape(-1) == 255)
    keys_to_255 = table_keys[table_values == 255]
    if keys_to_255.size and candidates.size:
        candidates = candidates[~np.isin(flat_keys[candidates], keys_to_255)]
    unknown_keys = flat_keys[candidates]

    unknown: dict[tuple[int, int, int], int] = {}
    if unknown_keys.size:
        colours, counts = np.unique(unknown_keys, return_counts=True)
        order = np.lexsort((colours, -counts.astype(np.int64)))
        for key, count in zip(colours[order].tolist(), counts[order].tolist()):
            unknown[((key >> 16) & 0xFF, (key >> 8) & 0xFF, key & 0xFF)] = int(count)
    return out, unknown


def overlay(image: np.ndarray, labels: np.ndarray, colormap: object, ignore_label: int = 255, alpha: float = 0.5) -> np.ndarray:
    """The :func:`colorize` colours blended over an RGB image (``alpha`` is the colours' share).

    Ignored pixels show the image alone, so that what was not labelled is not painted over.
    Used by `segprep inspect --preview` and `segtrain predict`.
    """
    colours = colorize(labels, colormap, ignore_label).astype(np.float32)  # type: ignore[arg-type]
    blended = (1 - alpha) * np.asarray(image, np.float32) + alpha * colours
    ignored = np.asarray(labels) == ignore_label
    blended[ignored] = np.asarray(image)[ignored]
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


class ColormapFileError(ColormapError):
    """A --colormap file that cannot be read or parsed; the message names the file (and line)."""


_COMPONENT = re.compile(r"[0-9]{1,3}")


def parse_colormap_text(text: str, source: Path | str) -> list[list[int]]:
    """Colours from "r g b" (or "r,g,b") lines, '#' comments and blank lines skipped; each value 0..255.

    Only ASCII digits count: str.isdigit() also accepts '²' or '٣', which int() then refuses.
    """
    colors = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.replace(",", " ").split()
        if len(fields) != 3 or not all(_COMPONENT.fullmatch(f) for f in fields) or any(int(f) > 255 for f in fields):
            raise ColormapFileError(f"{source}:{number}: expected 'r g b' with values in 0..255, got {line.strip()!r}")
        colors.append([int(f) for f in fields])
    if not colors:
        raise ColormapFileError(f"{source}: no colours (expected one 'r g b' line per class)")
    if len(colors) > _MAX_ENTRIES:
        raise ColormapFileError(f"{source}: {len(colors)} colours; at most {_MAX_ENTRIES} fit uint8 labels")
    return colors


def colormap_option(spec: str, num_classes: int | None = None) -> str | list[list[int]]:
    """A --colormap value as a registry entry holds it: a built-in name stays a name, anything else is
    a file of r g b lines read into a list. Errors name the file (not the registry the entry goes to):
    not found, not a regular file, not UTF-8, a bad line, or fewer colours than num_classes."""
    from segprep.fileio import read_regular_file

    if spec in BUILTIN_COLORMAPS:
        return spec
    try:
        data = read_regular_file(Path(spec))
    except FileNotFoundError:
        raise ColormapFileError(f"{spec}: --colormap is neither a built-in colormap ({', '.join(BUILTIN_COLORMAPS)}) nor a file") from None
    except OSError as exc:
        raise ColormapFileError(f"{spec}: cannot read the colormap file ({exc.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ColormapFileError(f"{spec}: colormap file is not UTF-8 text") from None
    colors = parse_colormap_text(text, spec)
    if num_classes is not None and len(colors) < num_classes:
        raise ColormapFileError(f"{spec}: {len(colors)} colour(s) for {num_classes} classes (one 'r g b' line per class)")
    return colors
