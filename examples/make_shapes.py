#!/usr/bin/env python3
"""Generate a small, deterministic synthetic semantic-segmentation dataset.

The output uses the "folder" layout::

    OUT_DIR/images/shape_0000.jpg   RGB photo-like image (JPEG, quality 90)
    OUT_DIR/labels/shape_0000.png   palette ('P') PNG, PASCAL VOC style
    OUT_DIR/class_names.txt         background / circle / rectangle / triangle

Label pixel values are class indices (0 background, 1 circle, 2 rectangle,
3 triangle) plus 255 ("ignore") in a band about 2 px wide along each shape's
outline, exactly like VOC's SegmentationClass PNGs; the palette is the PASCAL
VOC colormap.  Image and label are drawn from the same boolean masks, so every
non-ignore label pixel agrees with what is drawn in the image.

Usage::

    python examples/make_shapes.py OUT_DIR [--count 60] [--size 160x120] [--seed 0]

Only the standard library, numpy and Pillow are used (nothing from segprep).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image

CLASS_NAMES = ("background", "circle", "rectangle", "triangle")
IGNORE_INDEX = 255
JPEG_QUALITY = 90
# Minimum Euclidean RGB distance between a shape's base colour and the mean
# background colour underneath it, so shapes stand out from their surroundings.
MIN_CONTRAST = 90.0


def voc_colormap(n: int = 256) -> list[tuple[int, int, int]]:
    """PASCAL VOC colormap (DeepLab's bit-shift construction)."""
    cmap = []
    for i in range(n):
        colour = [0, 0, 0]
        ind = i
        for shift in range(7, -1, -1):
            for channel in range(3):
                colour[channel] |= ((ind >> channel) & 1) << shift
            ind >>= 3
        cmap.append((colour[0], colour[1], colour[2]))
    return cmap


_VOC_PALETTE = [v for rgb in voc_colormap(256) for v in rgb]


# --------------------------------------------------------------------------
# small morphology helpers (3x3 square structuring element)
# --------------------------------------------------------------------------

def _dilate(mask: np.ndarray) -> np.ndarray:
    p = np.pad(mask, 1, mode="constant", constant_values=False)
    h, w = mask.shape
    out = np.zeros_like(mask)
    for dy in range(3):
        for dx in range(3):
            out |= p[dy:dy + h, dx:dx + w]
    return out


def _erode(mask: np.ndarray) -> np.ndarray:
    # Pixels outside the frame count as "inside" so that a shape cut by the
    # image border gets no ignore band along the border itself.
    p = np.pad(mask, 1, mode="edge")
    h, w = mask.shape
    out = np.ones_like(mask)
    for dy in range(3):
        for dx in range(3):
            out &= p[dy:dy + h, dx:dx + w]
    return out


# --------------------------------------------------------------------------
# drawing
# --------------------------------------------------------------------------

def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a coarse random grid, bilinearly upsampled."""
    gh = max(2, cells)
    gw = max(2, int(round(cells * w / h)))
    grid = rng.uniform(-1.0, 1.0, size=(gh, gw, 3))
    ys = np.linspace(0.0, gh - 1.0, h)
    xs = np.linspace(0.0, gw - 1.0, w)
    y0 = np.minimum(ys.astype(int), gh - 2)
    x0 = np.minimum(xs.astype(int), gw - 2)
    fy = (ys - y0)[:, None, None]
    fx = (xs - x0)[None, :, None]
    g00 = grid[y0][:, x0]
    g01 = grid[y0][:, x0 + 1]
    g10 = grid[y0 + 1][:, x0]
    g11 = grid[y0 + 1][:, x0 + 1]
    top = g00 * (1 - fx) + g01 * fx
    bottom = g10 * (1 - fx) + g11 * fx
    return top * (1 - fy) + bottom * fy


def _background(rng: np.random.Generator, h: int, w: int,
                yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    c0 = rng.uniform(30, 225, size=3)
    c1 = rng.uniform(30, 225, size=3)
    angle = rng.uniform(0, 2 * math.pi)
    t = (xx - w / 2) * math.cos(angle) + (yy - h / 2) * math.sin(angle)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = c0 + (c1 - c0) * t[..., None]
    img += _smooth_noise(rng, h, w, int(rng.integers(3, 7))) * rng.uniform(10, 30)
    img += rng.normal(0.0, rng.uniform(3, 9), size=(h, w, 3))
    return img


def _shape_mask(rng: np.random.Generator, cls: int, h: int, w: int,
                yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Boolean mask of one random shape; its centre is inside the frame but the
    shape itself may extend past the border."""
    m = min(h, w)
    cx = rng.uniform(0.05 * w, 0.95 * w)
    cy = rng.uniform(0.05 * h, 0.95 * h)
    px = xx + 0.5 - cx  # pixel centres relative to the shape centre
    py = yy + 0.5 - cy
    if cls == 1:  # circle / ellipse
        a = rng.uniform(0.08, 0.28) * m
        b = a * rng.uniform(0.6, 1.0) if rng.random() < 0.6 else a
        th = rng.uniform(0, math.pi)
        u = px * math.cos(th) + py * math.sin(th)
        v = -px * math.sin(th) + py * math.cos(th)
        return (u / a) ** 2 + (v / b) ** 2 <= 1.0
    if cls == 2:  # rectangle, sometimes rotated
        hw = rng.uniform(0.08, 0.3) * m
        hh = rng.uniform(0.08, 0.3) * m
        th = rng.uniform(-math.pi / 6, math.pi / 6) if rng.random() < 0.5 else 0.0
        u = px * math.cos(th) + py * math.sin(th)
        v = -px * math.sin(th) + py * math.cos(th)
        return (np.abs(u) <= hw) & (np.abs(v) <= hh)
    # triangle: three vertices roughly 120 degrees apart around the centre
    r = rng.uniform(0.12, 0.35) * m
    start = rng.uniform(0, 2 * math.pi)
    verts = []
    for k in range(3):
        ang = start + k * 2 * math.pi / 3 + rng.uniform(-0.35, 0.35)
        rad = r * rng.uniform(0.7, 1.0)
        verts.append((rad * math.cos(ang), rad * math.sin(ang)))
    inside_pos = np.ones((h, w), dtype=bool)
    inside_neg = np.ones((h, w), dtype=bool)
    for k in range(3):
        (x1, y1), (x2, y2) = verts[k], verts[(k + 1) % 3]
        cross = (x2 - x1) * (py - y1) - (y2 - y1) * (px - x1)
        inside_pos &= cross >= 0
        inside_neg &= cross <= 0
    return inside_pos | inside_neg


def _shape_texture(rng: np.random.Generator, base: np.ndarray, h: int, w: int,
                   yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    angle = rng.uniform(0, 2 * math.pi)
    t = ((xx - w / 2) * math.cos(angle) + (yy - h / 2) * math.sin(angle)) / max(h, w)
    tex = base + t[..., None] * rng.uniform(-1, 1, size=3) * 30.0
    if rng.random() < 0.4:  # faint stripes on some shapes
        period = rng.uniform(5, 12)
        tex += (np.sin(2 * math.pi * (xx * math.cos(angle) - yy * math.sin(angle)) / period)
                [..., None] * rng.uniform(4, 10))
    tex += rng.normal(0.0, rng.uniform(2, 6), size=(h, w, 3))
    return tex


def _pick_colour(rng: np.random.Generator, bg_mean: np.ndarray) -> np.ndarray:
    best, best_d = None, -1.0
    for _ in range(30):
        c = rng.uniform(0, 255, size=3)
        d = float(np.linalg.norm(c - bg_mean))
        if d >= MIN_CONTRAST:
            return c
        if d > best_d:
            best, best_d = c, d
    return best


def _render(rng: np.random.Generator, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    bg = _background(rng, h, w, yy, xx)
    img = bg.copy()
    label = np.zeros((h, w), dtype=np.uint8)
    n_shapes = int(rng.integers(1, 5))
    for _ in range(n_shapes):
        cls = int(rng.integers(1, 4))
        mask = None
        for _try in range(20):
            cand = _shape_mask(rng, cls, h, w, yy, xx)
            # keep shapes with a reasonable visible interior
            if int(_erode(_erode(cand)).sum()) >= 40:
                mask = cand
                break
        if mask is None:
            continue
        colour = _pick_colour(rng, bg[mask].mean(axis=0))
        tex = _shape_texture(rng, colour, h, w, yy, xx)
        img[mask] = tex[mask]
        label[mask] = cls
        # void band ~2 px wide: one pixel outside, one inside the outline
        band = _dilate(mask) & ~_erode(mask)
        label[band] = IGNORE_INDEX
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), label


def make_shapes(out_dir: Path, count: int = 60, size: tuple[int, int] = (160, 120),
                seed: int = 0) -> list[str]:
    """Write ``count`` samples of size ``size`` (W, H) under ``out_dir``.

    Returns the sample stems (``shape_0000``, ``shape_0001``, ...).  The same
    arguments always produce byte-identical files.
    """
    out_dir = Path(out_dir)
    w, h = int(size[0]), int(size[1])
    if w < 8 or h < 8:
        raise ValueError(f"size must be at least 8x8, got {w}x{h}")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    img_dir = out_dir / "images"
    lbl_dir = out_dir / "labels"
    img_dir.mkdir(parents=True, exist_ok=True)
    lbl_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "class_names.txt").write_text("".join(n + "\n" for n in CLASS_NAMES),
                                              encoding="utf-8")
    rng = np.random.default_rng(seed)
    stems = []
    for i in range(count):
        stem = f"shape_{i:04d}"
        img, label = _render(rng, w, h)
        Image.fromarray(img).save(img_dir / f"{stem}.jpg", format="JPEG", quality=JPEG_QUALITY)
        lbl = Image.frombytes("P", (w, h), label.tobytes())
        lbl.putpalette(_VOC_PALETTE)
        lbl.save(lbl_dir / f"{stem}.png", format="PNG")
        stems.append(stem)
    return stems


def _parse_size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"size must look like WxH, got {text!r}")
    try:
        w, h = int(parts[0]), int(parts[1])
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like WxH, got {text!r}") from None
    if w < 8 or h < 8:
        raise argparse.ArgumentTypeError(f"size must be at least 8x8, got {text!r}")
    return w, h


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Generate a synthetic shapes segmentation dataset (folder layout, "
                    "VOC-style palette labels).")
    parser.add_argument("out_dir", type=Path, help="output directory")
    parser.add_argument("--count", type=int, default=60, help="number of samples (default 60)")
    parser.add_argument("--size", type=_parse_size, default=(160, 120),
                        help="image size WxH (default 160x120)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    if args.count < 0:
        parser.error("--count must be >= 0")
    stems = make_shapes(args.out_dir, count=args.count, size=args.size, seed=args.seed)
    print(f"wrote {len(stems)} samples to {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
