"""Label validation and conversion: what is stored as is, what is converted, what is refused and why."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import jpeg_bytes, png_bytes
from PIL import Image

from segprep.colormaps import builtin_colormap, palette_for_png
from segprep.ops.labels import LabelError, LabelPolicy, prepare_label
from segprep.ops.remove_colormap import ColormapRemoval, remove_colormap

RNG = np.random.default_rng(0)
LABEL = RNG.integers(0, 5, (9, 13), dtype=np.uint8)
LABEL[0, 0] = 255


def decoded(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "L"
        return np.asarray(image)


def test_valid_index_png_is_stored_byte_for_byte():
    data = png_bytes(LABEL, "L")
    prepared = prepare_label(data, LabelPolicy(num_classes=5))
    assert prepared.png == data and prepared.conversion is None
    assert (prepared.width, prepared.height) == (13, 9)
    np.testing.assert_array_equal(prepared.histogram, np.bincount(LABEL.ravel(), minlength=256))


def test_palette_png_becomes_index_png_keeping_255():
    data = png_bytes(LABEL, "P", palette_for_png(builtin_colormap("pascal")))
    prepared = prepare_label(data, LabelPolicy(num_classes=5))
    assert prepared.conversion == "palette→index"
    np.testing.assert_array_equal(decoded(prepared.png), LABEL)


def test_documented_remap_applies_and_updates_histogram():
    label = LABEL.copy()
    label[1, :] = 11
    prepared = prepare_label(png_bytes(label, "L"), LabelPolicy(num_classes=11, remap=((11, 255),)))
    expected = np.where(label == 11, 255, label)
    np.testing.assert_array_equal(decoded(prepared.png), expected)
    assert prepared.histogram[11] == 0 and prepared.histogram[255] == (expected == 255).sum()
    assert prepared.conversion == "remap 11→255"
    # Without any pixel to remap, the original bytes are kept.
    clean = png_bytes(LABEL, "L")
    assert prepare_label(clean, LabelPolicy(num_classes=11, remap=((11, 255),))).png == clean


def test_out_of_range_values_are_listed_with_counts():
    label = LABEL.copy()
    label[2, :3] = 12
    label[3, 0] = 37
    with pytest.raises(LabelError) as info:
        prepare_label(png_bytes(label, "L"), LabelPolicy(num_classes=5))
    message = str(info.value)
    assert "outside [0, 5) ∪ {255}" in message and "12 (3 px)" in message and "37 (1 px)" in message


def test_ignore_label_other_than_255():
    label = LABEL.copy()  # holds a 255
    with pytest.raises(LabelError, match=r"255 \(1 px\)"):
        prepare_label(png_bytes(label, "L"), LabelPolicy(num_classes=5, ignore_label=0))


@pytest.mark.parametrize(
    "data, reason",
    [
        (png_bytes(np.zeros((4, 4, 3), np.uint8)), "RGB label"),
        (png_bytes(np.zeros((4, 4), np.uint16) + 300, "I;16"), "16-bit"),
        (jpeg_bytes(np.zeros((8, 8, 3), np.uint8)), "not a PNG .*JPEG"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "cannot decode"),
        (png_bytes(np.zeros((4, 4, 4), np.uint8) + 255), "RGBA"),
    ],
)
def test_refused_labels(data, reason):
    with pytest.raises(LabelError, match=reason):
        prepare_label(data, LabelPolicy(num_classes=5))


def test_rgb_label_through_a_colormap_when_the_dataset_allows_it():
    colors = builtin_colormap("kitti_road")
    rgb = np.zeros((6, 7, 3), np.uint8)
    rgb[:3] = colors[1]
    rgb[3:] = colors[0]
    rgb[5, 6] = (0, 0, 0)
    policy = LabelPolicy(num_classes=2, colormap=tuple(map(tuple, colors.tolist())), extra_colors=(((0, 0, 0), 255),))
    out = decoded(prepare_label(png_bytes(rgb), policy).png)
    assert (out[:3] == 1).all() and (out[3:5] == 0).all() and out[5, 6] == 255 and out[5, 0] == 0
    rgb[0, 0] = (1, 2, 3)
    with pytest.raises(LabelError, match=r"rgb\(1, 2, 3\) \(1 px\)"):
        prepare_label(png_bytes(rgb), policy)


def test_remove_colormap_palette_rgb_and_unknown():
    how = ColormapRemoval(None)
    palette_label = png_bytes(LABEL, "P", palette_for_png(builtin_colormap("pascal")))
    out, what = remove_colormap(palette_label, how)
    assert what == "palette"
    np.testing.assert_array_equal(decoded(out), LABEL)
    index = png_bytes(LABEL, "L")
    assert remove_colormap(index, how) == (index, "unchanged")

    camvid = builtin_colormap("camvid")
    truth = RNG.integers(0, 11, (5, 8), dtype=np.uint8)
    rgb = camvid[truth]
    rgb[0, 0] = (0, 0, 0)  # CamVid's void colour
    how = ColormapRemoval(tuple(map(tuple, camvid.tolist())), (((0, 0, 0), 255),))
    out, what = remove_colormap(png_bytes(rgb), how)
    expected = truth.copy()
    expected[0, 0] = 255
    np.testing.assert_array_equal(decoded(out), expected)
    rgb[1, 1] = (9, 9, 9)
    with pytest.raises(LabelError, match=r"rgb\(9, 9, 9\)"):
        remove_colormap(png_bytes(rgb), how)
    lenient = ColormapRemoval(how.colormap, how.extra, unknown_to_ignore=True)
    assert decoded(remove_colormap(png_bytes(rgb), lenient)[0])[1, 1] == 255
