"""Tests for examples/make_shapes.py, the synthetic shapes dataset generator."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "examples" / "make_shapes.py"


def _load_module():
    spec = importlib.util.spec_from_file_location("_segprep_example_make_shapes", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ms = _load_module()


def _voc_colour(index: int) -> tuple[int, int, int]:
    # Independent re-implementation of the PASCAL VOC colormap.
    r = g = b = 0
    c = index
    for j in range(8):
        r |= ((c >> 0) & 1) << (7 - j)
        g |= ((c >> 1) & 1) << (7 - j)
        b |= ((c >> 2) & 1) << (7 - j)
        c >>= 3
    return r, g, b


def _img(path: Path) -> Image.Image:
    """Open an image fully and close the file (no ResourceWarnings)."""
    with Image.open(path) as im:
        im.load()
        return im.copy()


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _shift_or(mask: np.ndarray, r: int, fill: bool) -> np.ndarray:
    """Dilation (fill=False) of a mask by a (2r+1)^2 square."""
    h, w = mask.shape
    p = np.pad(mask, r, mode="constant", constant_values=fill)
    out = np.zeros_like(mask)
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            out |= p[dy:dy + h, dx:dx + w]
    return out


def _erode(mask: np.ndarray, r: int) -> np.ndarray:
    return ~_shift_or(~mask, r, fill=True)


def _components(mask: np.ndarray) -> list[np.ndarray]:
    """4-connected components via iterative min-label propagation."""
    h, w = mask.shape
    big = h * w + 1
    ids = np.where(mask, np.arange(h * w).reshape(h, w), big)
    while True:
        p = np.pad(ids, 1, mode="constant", constant_values=big)
        nb = np.minimum.reduce([ids, p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]])
        new = np.where(mask, nb, big)
        if np.array_equal(new, ids):
            break
        ids = new
    return [ids == v for v in np.unique(ids[mask])]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("shapes20")
    stems = ms.make_shapes(out, count=20, size=(160, 120), seed=0)
    return out, stems


def test_stems_and_layout(dataset):
    out, stems = dataset
    assert stems == [f"shape_{i:04d}" for i in range(20)]
    assert sorted(p.name for p in (out / "images").iterdir()) == [s + ".jpg" for s in stems]
    assert sorted(p.name for p in (out / "labels").iterdir()) == [s + ".png" for s in stems]


def test_class_names(dataset):
    out, _ = dataset
    assert (out / "class_names.txt").read_text(encoding="utf-8") == \
        "background\ncircle\nrectangle\ntriangle\n"


def test_determinism(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    ms.make_shapes(a, count=4, size=(96, 64), seed=7)
    ms.make_shapes(b, count=4, size=(96, 64), seed=7)
    ms.make_shapes(c, count=4, size=(96, 64), seed=8)
    fa, fb, fc = _files(a), _files(b), _files(c)
    assert len(fa) == 4 * 2 + 1
    assert fa == fb
    assert fa.keys() == fc.keys()
    for name in fa:
        if name != "class_names.txt":
            assert fa[name] != fc[name], name


def test_sizes_and_modes(dataset, tmp_path):
    out, stems = dataset
    for stem in stems:
        with Image.open(out / "images" / f"{stem}.jpg") as im:
            assert im.format == "JPEG" and im.mode == "RGB" and im.size == (160, 120)
        with Image.open(out / "labels" / f"{stem}.png") as lb:
            assert lb.format == "PNG" and lb.mode == "P" and lb.size == (160, 120)
    # a non-default size is honoured too
    ms.make_shapes(tmp_path, count=2, size=(50, 70), seed=1)
    for stem in ("shape_0000", "shape_0001"):
        assert _img(tmp_path / "images" / f"{stem}.jpg").size == (50, 70)
        assert _img(tmp_path / "labels" / f"{stem}.png").size == (50, 70)


def test_voc_palette(dataset):
    out, _ = dataset
    with Image.open(out / "labels" / "shape_0000.png") as lb:
        pal = lb.getpalette()
    assert len(pal) == 768
    colours = [tuple(pal[3 * i:3 * i + 3]) for i in range(256)]
    assert colours[0] == (0, 0, 0)
    assert colours[1] == (128, 0, 0)
    assert colours[2] == (0, 128, 0)
    assert colours[3] == (128, 128, 0)
    assert colours[255] == (224, 224, 192)
    assert colours == [_voc_colour(i) for i in range(256)]
    assert ms.voc_colormap(256) == colours


def test_label_values(dataset):
    out, stems = dataset
    seen: set[int] = set()
    for stem in stems:
        lab = np.array(_img(out / "labels" / f"{stem}.png"))
        values = set(np.unique(lab).tolist())
        assert values <= {0, 1, 2, 3, 255}
        assert 0 in values and 255 in values  # background and a void band
        assert values & {1, 2, 3}  # at least one visible shape
        seen |= values
    assert seen == {0, 1, 2, 3, 255}


def test_ignore_band_separates_classes(dataset):
    # As in VOC, two different classes never touch directly: the 255 band lies
    # between them (4-neighbourhood).
    out, stems = dataset
    for stem in stems:
        lab = np.array(_img(out / "labels" / f"{stem}.png")).astype(int)
        for a, b in ((lab[:, 1:], lab[:, :-1]), (lab[1:, :], lab[:-1, :])):
            diff = (a != b) & (a != 255) & (b != 255)
            assert not diff.any(), stem


def test_label_matches_drawn_shapes(dataset):
    out, stems = dataset
    checked = good = 0
    for stem in stems:
        img = np.array(_img(out / "images" / f"{stem}.jpg")).astype(float)
        lab = np.array(_img(out / "labels" / f"{stem}.png"))
        background = lab == 0
        for cls in (1, 2, 3):
            for comp in _components(lab == cls):
                core = _erode(comp, 2)
                # background pixels just outside the shape's void band
                ring = _shift_or(comp, 5, fill=False) & background
                if core.sum() < 20 or ring.sum() < 20:
                    continue
                checked += 1
                inside = img[core].mean(axis=0)
                around = img[ring].mean(axis=0)
                # the interior is more uniform than interior + surroundings
                # together, i.e. the labelled region does not straddle an edge
                mixed = np.concatenate([img[core], img[ring]]).std(axis=0).sum()
                uniform = img[core].std(axis=0).sum() < mixed
                # and practically every interior pixel is unlike the background
                far = np.linalg.norm(img[core] - around, axis=1) > 25
                if np.linalg.norm(inside - around) > 40 and uniform and far.mean() >= 0.99:
                    good += 1
    assert checked >= 25
    assert good >= 0.9 * checked, (good, checked)


def test_cli(tmp_path):
    out = tmp_path / "cli_out"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(out), "--count", "3", "--size", "64x48",
         "--seed", "3"],
        capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == f"wrote 3 samples to {out}"
    for i in range(3):
        assert _img(out / "images" / f"shape_{i:04d}.jpg").size == (64, 48)
        assert _img(out / "labels" / f"shape_{i:04d}.png").mode == "P"
    assert (out / "class_names.txt").is_file()
    # same arguments through the importable function give identical bytes
    again = tmp_path / "api_out"
    ms.make_shapes(again, count=3, size=(64, 48), seed=3)
    assert _files(out) == _files(again)


def test_cli_rejects_bad_size(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "x"), "--size", "160by120"],
        capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0
    assert "WxH" in proc.stderr
