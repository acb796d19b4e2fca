"""End-to-end speed of `segprep labelme` against labelme's own rasterization in a single-process loop.

    python benchmarks/labelme_speed.py [--files 200] [--repeat 3] [--workers N] [--keep DIR]

A synthetic labelme folder is made in a temporary directory (seed 0): --files JPEGs of 1280x720
(smooth gradients plus noise, ~150 KB each) with 5-30 shapes each, of every kind labelme draws
with PIL (polygon, rectangle, oriented_rectangle, circle, line, linestrip, point) plus a few
bitmap masks, referenced by imagePath as labelme saves them.

Contenders, each its own process, timed from process start to exit (median of --repeat runs,
after one untimed pass that reads every input so the page cache is equally warm):

- reference: labelme 6.3.1 in one process, per file: `read_label_file` (JSON, image bytes, EXIF
  check), the image size from the header (no pixel decode), `labelme.utils.shapes_to_label`,
  __ignore__ -1 -> 255 and the label saved as a PNG with PIL. Only the label is written.
- segprep: `segprep labelme SRC OUT --labels L --quiet` (all cores unless --workers), which also
  copies every image, decodes it and writes a colour visualization, the lists and class names.

The masks of both are compared pixel for pixel; a difference aborts the benchmark. The reference
is a function of this file, run as `python benchmarks/labelme_speed.py --_run-reference SRC OUT
LABELS`.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import format_table, timed_command
from PIL import Image

GOAL = 1.8
LABELS = ["__ignore__", "_background_", "person", "car", "road", "tree", "sign"]
WIDTH, HEIGHT = 1280, 720
SHAPE_TYPES = ("polygon", "polygon", "rectangle", "oriented_rectangle", "circle", "line", "linestrip", "point")


# --------------------------------------------------------------------------- synthetic data


def make_dataset(src: Path, count: int, seed: int = 0) -> int:
    """count labelme JSON + JPEG pairs in src; returns the number of shapes."""
    rng = np.random.default_rng(seed)
    src.mkdir(parents=True)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    total = 0
    for i in range(count):
        base = (xx * rng.uniform(0.05, 0.2) + yy * rng.uniform(0.05, 0.3) + rng.uniform(0, 255)) % 256
        pixels = np.stack([base, np.roll(base, 100 + i, 1), 255 - base], axis=2)
        pixels = np.clip(pixels + rng.normal(0, 6, pixels.shape), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(src / f"img_{i:04d}.jpg", "JPEG", quality=90)
        shapes = []
        for k in range(int(rng.integers(5, 31))):
            shape_type = "mask" if k == 3 and i % 4 == 0 else SHAPE_TYPES[int(rng.integers(0, len(SHAPE_TYPES)))]
            shapes.append(_random_shape(rng, shape_type))
        total += len(shapes)
        document = {"version": "6.3.1", "flags": {}, "shapes": shapes, "imagePath": f"img_{i:04d}.jpg",
                    "imageData": None, "imageHeight": HEIGHT, "imageWidth": WIDTH}
        (src / f"img_{i:04d}.json").write_text(json.dumps(document, indent=2), encoding="utf-8")
    return total


def _random_shape(rng: np.random.Generator, shape_type: str) -> dict:
    label = str(rng.choice(LABELS, p=[0.05, 0.1, 0.2, 0.2, 0.2, 0.15, 0.1]))
    cx, cy = float(rng.uniform(0, WIDTH)), float(rng.uniform(0, HEIGHT))
    size = float(rng.uniform(20, 300))

    def around(n: int) -> list[list[float]]:
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radii = rng.uniform(0.3, 1.0, n) * size
        return [[cx + r * np.cos(a), cy + r * np.sin(a)] for a, r in zip(angles, radii)]

    shape = {"label": label, "group_id": None, "description": "", "shape_type": shape_type, "flags": {}, "mask": None}
    if shape_type == "polygon":
        points = around(int(rng.integers(3, 40)))
    elif shape_type == "rectangle":
        points = [[cx, cy], [cx + rng.uniform(-size, size), cy + rng.uniform(-size, size)]]
    elif shape_type == "oriented_rectangle":
        points = around(4)
    elif shape_type == "circle":
        points = [[cx, cy], [cx + size / 2, cy]]
    elif shape_type in ("line", "linestrip"):
        points = around(2 if shape_type == "line" else int(rng.integers(2, 10)))
    elif shape_type == "point":
        points = [[cx, cy]]
    else:
        x1, y1 = int(min(cx, WIDTH - 200)), int(min(cy, HEIGHT - 150))
        bitmap = rng.random((150, 200)) < 0.5
        buffer = io.BytesIO()
        Image.fromarray(bitmap.astype(np.uint8) * 255).save(buffer, "PNG")
        shape["mask"] = base64.b64encode(buffer.getvalue()).decode()
        points = [[x1, y1], [x1 + 199, y1 + 149]]
    shape["points"] = [[float(x), float(y)] for x, y in points]
    return shape


# --------------------------------------------------------------------------- the reference


def run_reference(src: Path, out: Path, labels_file: Path) -> None:
    """labelme's own loop: read_label_file + shapes_to_label + PIL PNG save, one process."""
    from labelme._label_file import read_label_file
    from labelme.utils import shapes_to_label
    from loguru import logger

    logger.disable("labelme")
    names = [line.strip() for line in labels_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    name_to_value = {name: index - 1 for index, name in enumerate(names)}  # __ignore__ first: -1
    out.mkdir(parents=True)
    for json_path in sorted(src.glob("*.json")):
        loaded = read_label_file(str(json_path))
        width, height = Image.open(io.BytesIO(loaded.image_data)).size
        cls, _ = shapes_to_label((height, width), loaded.shapes, name_to_value)
        cls[cls == -1] = 255
        Image.fromarray(cls.astype(np.uint8)).save(out / f"{json_path.stem}.png")


# --------------------------------------------------------------------------- timing


def warm_page_cache(src: Path) -> int:
    total = 0
    for path in src.iterdir():
        total += len(path.read_bytes())
    return total


def compare_masks(reference: Path, ours: Path, count: int) -> None:
    files = sorted(reference.glob("*.png"))
    if len(files) != count:
        raise SystemExit(f"reference wrote {len(files)} masks, expected {count}")
    for path in files:
        with Image.open(path) as a, Image.open(ours / path.name) as b:
            if a.mode != "L" or b.mode != "L" or not np.array_equal(np.asarray(a), np.asarray(b)):
                raise SystemExit(f"{path.name}: segprep's mask differs from labelme's")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=200, help="labelme files to make (default 200)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per contender (median)")
    parser.add_argument("--workers", type=int, help="passed to segprep labelme --workers")
    parser.add_argument("--keep", type=Path, help="make (or reuse) the synthetic data here instead of a temp dir")
    parser.add_argument("--_run-reference", dest="run_reference", nargs=3, metavar=("SRC", "OUT", "LABELS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_reference:
        src, out, labels = (Path(p) for p in args.run_reference)
        run_reference(src, out, labels)
        return 0
    if args.repeat < 1 or args.files < 1:
        parser.error("--repeat and --files must be at least 1")

    segprep = Path(sys.executable).parent / "segprep"
    if not segprep.exists():
        segprep = Path(shutil.which("segprep") or "segprep")
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores

    with tempfile.TemporaryDirectory(prefix="segprep-labelme-bench-") as tmp:
        work = args.keep or Path(tmp)
        src, labels = work / "src", work / "labels.txt"
        if not src.is_dir():
            start = time.perf_counter()
            shapes = make_dataset(src, args.files)
            labels.write_text("".join(f"{n}\n" for n in LABELS), encoding="utf-8")
            print(f"made {args.files} labelme files with {shapes} shapes in {time.perf_counter() - start:.1f} s")
        count = len(list(src.glob("*.json")))
        size = warm_page_cache(src)
        print(f"data: {count} files, {size / 2**20:.0f} MiB in {src}")
        print(f"cores: {cores} (usable: {usable}); segprep workers: "
              f"{args.workers if args.workers is not None else 'default (all cores)'}; repeat: {args.repeat}", flush=True)

        times: dict[str, list[float]] = {"segprep": [], "reference": []}
        for run in range(args.repeat):
            for name in ("segprep", "reference"):
                out = work / f"out-{name}"
                shutil.rmtree(out, ignore_errors=True)
                if name == "segprep":
                    command = [str(segprep), "labelme", str(src), str(out), "--labels", str(labels), "--quiet"]
                    if args.workers is not None:
                        command += ["--workers", str(args.workers)]
                else:
                    command = [sys.executable, str(Path(__file__).resolve()), "--_run-reference", str(src), str(out), str(labels)]
                times[name].append(timed_command(command))
                print(f"  {name}: run {run + 1}/{args.repeat} {times[name][-1]:.2f} s", flush=True)
        compare_masks(work / "out-reference", work / "out-segprep" / "SegmentationClass", count)
        print(f"masks: all {count} identical to labelme's")
        for name in ("segprep", "reference"):
            shutil.rmtree(work / f"out-{name}", ignore_errors=True)

    t_segprep, t_reference = statistics.median(times["segprep"]), statistics.median(times["reference"])
    ratio = t_reference / t_segprep
    header = ["figure", "seconds", "baseline", "baseline seconds", "ratio"]
    rows = [[f"segprep labelme ({count} files, {usable} cores)", f"{t_segprep:.2f}",
             "labelme read_label_file + shapes_to_label + PIL save (1 process)", f"{t_reference:.2f}", f"×{ratio:.2f} faster"]]
    print()
    print(f"median of {args.repeat} end-to-end runs (process start to exit)")
    print(format_table(header, rows))
    print()
    for name, seconds in (("segprep", t_segprep), ("reference", t_reference)):
        print(f"{name:<10} {count / seconds:8.1f} files/s")
    print()
    print(f"goal ≥ {GOAL}× faster than the reference: {'met' if ratio >= GOAL else 'NOT met'} (×{ratio:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
