"""Tests for segprep.colormaps: published colour values and both conversions."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

from segprep.colormaps import (
    BUILTIN_COLORMAPS,
    IGNORE_DISPLAY_COLOR,
    builtin_colormap,
    colorize,
    colors_to_index,
    palette_for_png,
    resolve_colormap,
    void_color,
)

EXPECTED_COUNTS = {
    "pascal": 256,
    "cityscapes": 19,
    "ade20k": 151,
    "camvid": 11,
    "kitti_road": 2,
    "mapillary_vistas": 66,
}


def _canonical_index(cmap: np.ndarray) -> np.ndarray:
    """For each index, the lowest index that has the same colour."""
    first: dict[tuple[int, ...], int] = {}
    out = []
    for i, colour in enumerate(map(tuple, cmap.tolist())):
        out.append(first.setdefault(colour, i))
    return np.array(out, dtype=np.uint8)


# ---------------------------------------------------------------- tables


def test_builtin_names():
    assert BUILTIN_COLORMAPS == (
        "pascal", "cityscapes", "ade20k", "camvid", "kitti_road", "mapillary_vistas",
    )
    assert IGNORE_DISPLAY_COLOR == (224, 224, 192)


@pytest.mark.parametrize("name", BUILTIN_COLORMAPS)
def test_builtin_shape_dtype_count(name):
    cmap = builtin_colormap(name)
    assert cmap.dtype == np.uint8
    assert cmap.shape == (EXPECTED_COUNTS[name], 3)


def test_builtin_returns_a_fresh_copy():
    a = builtin_colormap("cityscapes")
    a[0] = (1, 2, 3)
    assert tuple(builtin_colormap("cityscapes")[0]) == (128, 64, 128)


def test_unknown_builtin_name_lists_known_names():
    with pytest.raises(ValueError) as info:
        builtin_colormap("pascal_voc")
    for name in BUILTIN_COLORMAPS:
        assert name in str(info.value)


def test_pascal_values():
    cmap = builtin_colormap("pascal")
    assert tuple(cmap[0]) == (0, 0, 0)
    assert tuple(cmap[1]) == (128, 0, 0)      # aeroplane
    assert tuple(cmap[2]) == (0, 128, 0)      # bicycle
    assert tuple(cmap[3]) == (128, 128, 0)    # bird
    assert tuple(cmap[15]) == (192, 128, 128)  # person
    assert tuple(cmap[20]) == (0, 64, 128)    # tvmonitor
    assert tuple(cmap[255]) == (224, 224, 192)  # VOC border / ignore
    assert len({tuple(c) for c in cmap.tolist()}) == 256


def test_cityscapes_values():
    cmap = builtin_colormap("cityscapes")
    assert tuple(cmap[0]) == (128, 64, 128)    # road
    assert tuple(cmap[1]) == (244, 35, 232)    # sidewalk
    assert tuple(cmap[2]) == (70, 70, 70)      # building
    assert tuple(cmap[10]) == (70, 130, 180)   # sky
    assert tuple(cmap[11]) == (220, 20, 60)    # person
    assert tuple(cmap[13]) == (0, 0, 142)      # car
    assert tuple(cmap[18]) == (119, 11, 32)    # bicycle
    assert len({tuple(c) for c in cmap.tolist()}) == 19


def test_ade20k_values():
    cmap = builtin_colormap("ade20k")
    assert tuple(cmap[0]) == (0, 0, 0)           # "other"
    assert tuple(cmap[1]) == (120, 120, 120)     # wall
    assert tuple(cmap[2]) == (180, 120, 120)     # building
    assert tuple(cmap[3]) == (6, 230, 230)       # sky
    assert tuple(cmap[13]) == (150, 5, 61)       # person
    assert tuple(cmap[21]) == (0, 102, 200)      # car
    assert tuple(cmap[100]) == (255, 112, 0)     # buffet
    assert tuple(cmap[149]) == (102, 255, 0)     # clock
    assert tuple(cmap[150]) == (92, 0, 255)      # flag
    # DeepLab's table reuses one colour for classes 7 (bed) and 49 (skyscraper).
    assert tuple(cmap[7]) == tuple(cmap[49]) == (140, 140, 140)
    assert len({tuple(c) for c in cmap.tolist()}) == 150


def test_camvid_values():
    assert builtin_colormap("camvid").tolist() == [
        [128, 128, 128],  # Sky
        [128, 0, 0],      # Building
        [192, 192, 128],  # Pole
        [128, 64, 128],   # Road
        [60, 40, 222],    # Pavement
        [128, 128, 0],    # Tree
        [192, 128, 128],  # SignSymbol
        [64, 64, 128],    # Fence
        [64, 0, 128],     # Car
        [64, 64, 0],      # Pedestrian
        [0, 128, 192],    # Bicyclist
    ]


def test_kitti_road_values():
    assert builtin_colormap("kitti_road").tolist() == [[255, 0, 0], [255, 0, 255]]


def test_mapillary_vistas_values():
    # Official Vistas v1.2 label colours (config_v1.2.json), not DeepLab's copy.
    cmap = builtin_colormap("mapillary_vistas")
    assert tuple(cmap[0]) == (165, 42, 42)     # Bird
    assert tuple(cmap[2]) == (196, 196, 196)   # Curb
    assert tuple(cmap[5]) == (90, 120, 150)    # Barrier (DeepLab: = Wall)
    assert tuple(cmap[6]) == (102, 102, 156)   # Wall
    assert tuple(cmap[13]) == (128, 64, 128)   # Road
    assert tuple(cmap[19]) == (220, 20, 60)    # Person
    assert tuple(cmap[20]) == (255, 0, 0)      # Bicyclist
    assert tuple(cmap[21]) == (255, 0, 100)    # Motorcyclist
    assert tuple(cmap[22]) == (255, 0, 200)    # Other Rider
    assert tuple(cmap[27]) == (70, 130, 180)   # Sky
    assert tuple(cmap[34]) == (100, 140, 180)  # Bike Rack (DeepLab: black)
    assert tuple(cmap[42]) == (142, 0, 0)      # Phone Booth
    assert tuple(cmap[55]) == (0, 0, 142)      # Car
    assert tuple(cmap[63]) == (32, 32, 32)     # Car Mount
    assert tuple(cmap[64]) == (120, 10, 10)    # Ego Vehicle
    assert tuple(cmap[65]) == (0, 0, 0)        # Unlabeled
    # Every class has its own colour, so RGB labels decode unambiguously;
    # black occurs only once, at Unlabeled.
    colours = [tuple(c) for c in cmap.tolist()]
    assert len(set(colours)) == 66
    assert colours.index((0, 0, 0)) == 65


def test_void_color():
    assert void_color("camvid") == (0, 0, 0)
    assert void_color("kitti_road") == (0, 0, 0)
    assert void_color("cityscapes") == (0, 0, 0)
    assert void_color("pascal") is None
    assert void_color("ade20k") is None
    assert void_color("mapillary_vistas") is None
    with pytest.raises(ValueError):
        void_color("nope")


# ---------------------------------------------------------------- resolve


def test_resolve_builtin_name():
    assert np.array_equal(resolve_colormap("camvid"), builtin_colormap("camvid"))


def test_resolve_user_list():
    cmap = resolve_colormap([[0, 0, 0], (255, 128, 1), [np.int64(7), 8, 9]])
    assert cmap.dtype == np.uint8
    assert cmap.tolist() == [[0, 0, 0], [255, 128, 1], [7, 8, 9]]


def test_resolve_numpy_array_is_copied():
    src = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int32)
    cmap = resolve_colormap(src)
    assert cmap.dtype == np.uint8 and cmap.tolist() == src.tolist()


@pytest.mark.parametrize(
    "bad",
    [
        "not_a_colormap",
        [],
        [[1, 2]],
        [[1, 2, 3, 4]],
        [[0, 0, 256]],
        [[-1, 0, 0]],
        [[1.0, 2, 3]],
        [[True, 0, 0]],
        [["1", 2, 3]],
        ["abc"],
        [[1, 2, 3], 5],
        [[0, 0, 0]] * 257,
        np.array([[1.5, 2, 3]]),
        np.array([[1, 2]]),
        42,
    ],
)
def test_resolve_rejects_bad_specs(bad):
    with pytest.raises(ValueError):
        resolve_colormap(bad)


# ---------------------------------------------------------------- palette


def test_palette_for_png_layout():
    cmap = builtin_colormap("cityscapes")
    pal = palette_for_png(cmap)
    assert len(pal) == 768 and all(type(v) is int for v in pal)
    assert pal[:3] == [128, 64, 128]
    assert pal[18 * 3:19 * 3] == [119, 11, 32]
    assert pal[19 * 3:255 * 3] == [0] * ((255 - 19) * 3)
    assert pal[255 * 3:] == list(IGNORE_DISPLAY_COLOR)


def test_palette_keeps_colormap_entry_at_ignore_index():
    cmap = np.zeros((256, 3), dtype=np.uint8)
    cmap[255] = (1, 2, 3)
    assert palette_for_png(cmap)[255 * 3:] == [1, 2, 3]
    assert palette_for_png(builtin_colormap("pascal"))[255 * 3:] == [224, 224, 192]


def test_palette_custom_ignore_label():
    pal = palette_for_png(builtin_colormap("camvid"), ignore_label=11)
    assert pal[11 * 3:12 * 3] == list(IGNORE_DISPLAY_COLOR)
    assert pal[255 * 3:] == [0, 0, 0]


def test_png_with_palette_decodes_to_same_indices():
    rng = np.random.default_rng(0)
    cmap = builtin_colormap("cityscapes")
    labels = rng.integers(0, 19, size=(37, 53), dtype=np.uint8)
    labels[:3, :5] = 255
    img = Image.frombytes("P", (labels.shape[1], labels.shape[0]), labels.tobytes())
    img.putpalette(palette_for_png(cmap))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    buf.seek(0)
    back = Image.open(buf)
    assert back.mode == "P"
    assert np.array_equal(np.asarray(back), labels)
    # The viewer-side colours are exactly what colorize draws.
    assert np.array_equal(np.asarray(back.convert("RGB")), colorize(labels, cmap))


# ---------------------------------------------------------------- colorize


def test_colorize_values_ignore_and_out_of_range():
    cmap = builtin_colormap("kitti_road")
    labels = np.array([[0, 1], [255, 7]], dtype=np.uint8)
    rgb = colorize(labels, cmap)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [255, 0, 0]
    assert rgb[0, 1].tolist() == [255, 0, 255]
    assert rgb[1, 0].tolist() == list(IGNORE_DISPLAY_COLOR)
    assert rgb[1, 1].tolist() == [0, 0, 0]


def test_colorize_wider_int_dtype_matches_uint8():
    rng = np.random.default_rng(1)
    cmap = builtin_colormap("ade20k")
    labels = rng.integers(0, 256, size=(20, 30), dtype=np.uint8)
    wide = labels.astype(np.int32)
    wide[0, 0] = -5
    wide[0, 1] = 1000
    expected = colorize(labels, cmap)
    expected[0, :2] = 0
    assert np.array_equal(colorize(wide, cmap), expected)


def test_colorize_rejects_float_labels():
    with pytest.raises(ValueError):
        colorize(np.zeros((2, 2), dtype=np.float32), builtin_colormap("camvid"))


# ---------------------------------------------------------------- colors_to_index


@pytest.mark.parametrize("name", BUILTIN_COLORMAPS)
def test_round_trip_every_builtin(name):
    rng = np.random.default_rng(100 + BUILTIN_COLORMAPS.index(name))
    cmap = builtin_colormap(name)
    k = cmap.shape[0]
    labels = rng.integers(0, k, size=(48, 64), dtype=np.uint8)
    labels.flat[:k] = np.arange(k, dtype=np.uint8)  # every index present
    index, unknown = colors_to_index(colorize(labels, cmap), cmap)
    assert index.dtype == np.uint8 and index.shape == labels.shape
    assert unknown == {}
    # Exact for tables with unique colours; shared colours fold to the lowest index.
    assert np.array_equal(index, _canonical_index(cmap)[labels])
    if name != "ade20k":  # ade20k alone has a shared colour (7 and 49)
        assert np.array_equal(index, labels)


def test_round_trip_with_ignore_pixels():
    cmap = builtin_colormap("camvid")
    labels = np.array([[0, 255, 10], [255, 3, 255]], dtype=np.uint8)
    rgb = colorize(labels, cmap)
    assert (rgb[labels == 255] == IGNORE_DISPLAY_COLOR).all()
    # Without telling it about the display colour it is unknown (but still 255).
    index, unknown = colors_to_index(rgb, cmap)
    assert np.array_equal(index, labels)
    assert unknown == {IGNORE_DISPLAY_COLOR: 3}
    index, unknown = colors_to_index(rgb, cmap, extra={IGNORE_DISPLAY_COLOR: 255})
    assert np.array_equal(index, labels) and unknown == {}


def test_unknown_colours_reported_with_counts():
    cmap = builtin_colormap("kitti_road")
    rgb = np.zeros((4, 5, 3), dtype=np.uint8)
    rgb[...] = (255, 0, 0)
    rgb[0, :3] = (1, 2, 3)       # 3 pixels
    rgb[1, :] = (10, 20, 30)     # 5 pixels
    rgb[2, 0] = (255, 0, 255)    # road
    rgb[3, 4] = (0, 0, 0)        # void, not declared -> unknown, 1 pixel
    index, unknown = colors_to_index(rgb, cmap)
    assert unknown == {(10, 20, 30): 5, (1, 2, 3): 3, (0, 0, 0): 1}
    assert list(unknown) == [(10, 20, 30), (1, 2, 3), (0, 0, 0)]  # largest first
    assert all(type(c) is int for colour in unknown for c in colour)
    assert index[0, :3].tolist() == [255] * 3
    assert (index[1] == 255).all()
    assert index[2, 0] == 1 and index[2, 1] == 0 and index[3, 4] == 255
    assert int((index == 255).sum()) == 9


def test_extra_maps_void_colour():
    cmap = builtin_colormap("camvid")
    rgb = np.array([[[128, 128, 128], [0, 0, 0]], [[0, 128, 192], [0, 0, 0]]], dtype=np.uint8)
    index, unknown = colors_to_index(rgb, cmap, extra={void_color("camvid"): 255})
    assert index.tolist() == [[0, 255], [10, 255]]
    assert unknown == {}
    index, unknown = colors_to_index(rgb, cmap, extra={(0, 0, 0): 11})
    assert index.tolist() == [[0, 11], [10, 11]]


def test_extra_overrides_colormap_colour():
    cmap = builtin_colormap("ade20k")  # index 0 is black
    rgb = np.zeros((1, 2, 3), dtype=np.uint8)
    assert colors_to_index(rgb, cmap)[0].tolist() == [[0, 0]]
    assert colors_to_index(rgb, cmap, extra={(0, 0, 0): 255})[0].tolist() == [[255, 255]]


@pytest.mark.parametrize(
    "extra",
    [{(0, 0, 256): 1}, {(0, 0): 1}, {(0, 0, 0): 256}, {(0, 0, 0): -1}, {(0, 0, 0): 1.0}],
)
def test_extra_validated(extra):
    with pytest.raises(ValueError):
        colors_to_index(np.zeros((1, 1, 3), np.uint8), builtin_colormap("camvid"), extra=extra)


def test_duplicate_colour_picks_lower_index():
    cmap = resolve_colormap([[9, 9, 9], [1, 2, 3], [4, 5, 6], [1, 2, 3]])
    rgb = np.array([[[1, 2, 3], [4, 5, 6], [9, 9, 9]]], dtype=np.uint8)
    index, unknown = colors_to_index(rgb, cmap)
    assert index.tolist() == [[1, 2, 0]] and unknown == {}
    # Built-in example: ade20k's bed (7) and skyscraper (49) share a colour.
    ade = builtin_colormap("ade20k")
    grey = np.array([[[140, 140, 140]]], dtype=np.uint8)
    assert colors_to_index(grey, ade)[0].item() == 7


def test_mapillary_vistas_riders_and_black_decode_distinctly():
    # The official palette separates what DeepLab's copy merged.
    vistas = builtin_colormap("mapillary_vistas")
    rgb = np.array(
        [[[255, 0, 0], [255, 0, 100], [255, 0, 200]],
         [[100, 140, 180], [120, 10, 10], [0, 0, 0]]],
        dtype=np.uint8,
    )
    index, unknown = colors_to_index(rgb, vistas)
    assert index.tolist() == [[20, 21, 22], [34, 64, 65]] and unknown == {}


@pytest.mark.parametrize(
    "rgb",
    [np.zeros((2, 2, 3), dtype=np.float32), np.zeros((2, 2, 4), dtype=np.uint8),
     np.zeros((2, 2), dtype=np.uint8)],
)
def test_colors_to_index_rejects_bad_input(rgb):
    with pytest.raises(ValueError):
        colors_to_index(rgb, builtin_colormap("camvid"))


def test_colors_to_index_is_vectorised():
    # A 1024x2048 (Cityscapes-sized) image; the implementation takes a few tens
    # of ms. The bound is loose on purpose: it only catches per-pixel loops.
    rng = np.random.default_rng(2)
    cmap = builtin_colormap("cityscapes")
    labels = rng.integers(0, 19, size=(1024, 2048), dtype=np.uint8)
    rgb = colorize(labels, cmap)
    start = time.perf_counter()
    index, unknown = colors_to_index(rgb, cmap)
    elapsed = time.perf_counter() - start
    assert np.array_equal(index, labels) and unknown == {}
    assert elapsed < 0.5, f"colors_to_index took {elapsed:.3f}s"
