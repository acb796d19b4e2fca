"""End-to-end speed of `segprep trainids` against cityscapesScripts' createTrainIdLabelImgs loop.

    python benchmarks/trainids_speed.py [--files 100] [--repeat 3] [--workers N] [--seed 0]

A synthetic Cityscapes-like tree is made in a temporary folder: --files annotations of
2048x1024 under gtFine/train/{city}/, each with background regions and 60-120 polygons of 20-200
vertices (labels drawn from the whole table, `...group` names, void classes, license plates and
a few deleted objects), pretty-printed with indent 4 as the real files are. Seeded: the same
--seed gives the same files.

Contenders, each its own process, timed from process start to exit (time.perf_counter around
subprocess.run); the figure is the median of --repeat runs, run alternately so that a change of
machine load hits both alike, after one untimed pass that reads every file into the page cache:

- reference: what createTrainIdLabelImgs does, one process: json2labelImg(f, dst, "trainIds") for
  every *_gtFine_polygons.json, sorted (run as `python benchmarks/trainids_speed.py
  --_run-reference ROOT`).
- segprep: `segprep trainids ROOT --quiet` (all cores unless --workers).

Both write the same *_labelTrainIds.png files. After the last run of each, every output is
decoded and hashed; the two sets of pixels must be identical, or the benchmark fails.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import format_table, timed_command

REPO = Path(__file__).resolve().parent.parent
WIDTH, HEIGHT = 2048, 1024
GOAL = 1.8
CITIES = ("aachen", "bochum", "bremen", "cologne", "darmstadt")
BACKGROUND = ("road", "sidewalk", "building", "vegetation", "sky", "terrain")
OBJECT_LABELS = (
    "car", "car", "car", "person", "person", "rider", "bicycle", "motorcycle", "truck", "bus", "train",
    "pole", "pole", "traffic sign", "traffic light", "fence", "wall", "vegetation", "static", "dynamic",
    "cargroup", "persongroup", "bicyclegroup", "polegroup", "license plate", "parking", "ground",
)
REFERENCE_NAME = "cityscapesScripts createTrainIdLabelImgs loop (1 process)"


# --------------------------------------------------------------------------- synthetic data


def make_annotation(rng: random.Random) -> dict:
    """One frame: ego vehicle / out of roi, a few big background regions, then 60-120 objects."""
    objects = [
        {"label": "out of roi", "polygon": [[0, 0], [WIDTH, 0], [WIDTH, HEIGHT], [0, HEIGHT]]},
        {"label": "sky", "polygon": [[0, 0], [WIDTH, 0], [WIDTH, 380], [0, 420]]},
        {"label": "road", "polygon": [[0, 1024], [700, 560], [1350, 560], [2048, 1024]]},
    ]
    for _ in range(rng.randint(3, 6)):
        objects.append(_blob(rng, rng.choice(BACKGROUND), radius=(200, 600), vertices=(40, 200)))
    for _ in range(rng.randint(60, 120)):
        obj = _blob(rng, rng.choice(OBJECT_LABELS), radius=(8, 260), vertices=(20, 200))
        if rng.random() < 0.03:
            obj["deleted"] = 1
        objects.append(obj)
    objects.append({"label": "ego vehicle", "polygon": [[0, 1024], [0, 900], [2048, 900], [2048, 1024]]})
    return {"imgHeight": HEIGHT, "imgWidth": WIDTH, "objects": objects}


def _blob(rng: random.Random, label: str, radius: tuple[int, int], vertices: tuple[int, int]) -> dict:
    """A star-shaped (often concave) polygon of integer vertices, sometimes crossing the border."""
    count = rng.randint(*vertices)
    cx, cy, r = rng.uniform(-50, WIDTH + 50), rng.uniform(-50, HEIGHT + 50), rng.uniform(*radius)
    points = []
    for k in range(count):
        angle = 2 * math.pi * k / count
        rr = r * rng.uniform(0.6, 1.0)
        points.append([int(cx + rr * math.cos(angle)), int(cy + rr * math.sin(angle))])
    return {"label": label, "polygon": points}


def make_tree(root: Path, files: int, seed: int) -> tuple[int, int]:
    """Write the annotations; return (objects, vertices) in total."""
    rng = random.Random(seed)
    objects = vertices = 0
    for i in range(files):
        city = CITIES[i % len(CITIES)]
        folder = root / "gtFine" / "train" / city
        folder.mkdir(parents=True, exist_ok=True)
        document = make_annotation(rng)
        objects += len(document["objects"])
        vertices += sum(len(o["polygon"]) for o in document["objects"])
        (folder / f"{city}_{i:06d}_000019_gtFine_polygons.json").write_text(json.dumps(document, indent=4))
    return objects, vertices


# --------------------------------------------------------------------------- contenders


def run_reference(root: Path) -> None:
    """createTrainIdLabelImgs' loop over the fine annotations: one json2labelImg per file."""
    from cityscapesscripts.preparation.json2labelImg import json2labelImg

    for path in sorted(root.glob("gtFine/*/*/*_gtFine_polygons.json")):
        json2labelImg(str(path), str(path).replace("_polygons.json", "_labelTrainIds.png"), "trainIds")


def output_digests(root: Path) -> dict[str, str]:
    """sha256 of the decoded pixels (and size) of every *_labelTrainIds.png: encoders differ, pixels must not."""
    from PIL import Image

    digests = {}
    for path in sorted(root.glob("gtFine/*/*/*_labelTrainIds.png")):
        with Image.open(path) as image:
            if image.mode != "L":
                raise SystemExit(f"{path}: mode {image.mode}, expected L")
            digests[path.name] = hashlib.sha256(f"{image.size}".encode() + image.tobytes()).hexdigest()
    return digests


def clear_outputs(root: Path) -> None:
    for path in root.glob("gtFine/*/*/*_labelTrainIds.png"):
        path.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100, help="annotations in the synthetic tree")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per contender (median)")
    parser.add_argument("--workers", type=int, help="passed to segprep trainids --workers")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic annotations")
    parser.add_argument("--_run-reference", dest="run_reference", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.run_reference:
        run_reference(args.run_reference)
        return 0
    if args.repeat < 1 or args.files < 1:
        parser.error("--repeat and --files must be at least 1")
    try:
        import cityscapesscripts  # noqa: F401
    except ImportError:
        print("cityscapesScripts is not installed (pip install -e '.[dev]'); nothing to compare against.")
        return 0

    segprep = Path(sys.executable).parent / "segprep"
    if not segprep.exists():
        segprep = Path(shutil.which("segprep") or "segprep")
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores

    with tempfile.TemporaryDirectory(prefix="segprep-trainids-bench-") as tmp:
        root = Path(tmp) / "cityscapes"
        start = time.perf_counter()
        objects, vertices = make_tree(root, args.files, args.seed)
        size = sum(p.stat().st_size for p in root.rglob("*.json"))
        print(f"made {args.files} annotations of {WIDTH}x{HEIGHT} in {time.perf_counter() - start:.1f} s: "
              f"{objects} objects ({objects / args.files:.0f} per file), {vertices} vertices, {size / 2**20:.0f} MiB of JSON")
        for path in root.rglob("*.json"):  # page cache warm-up
            path.read_bytes()
        registry = Path(tmp) / "dataset_registry.yaml"
        shutil.copyfile(REPO / "dataset_registry.yaml", registry)
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        reference_cmd = [sys.executable, str(Path(__file__).resolve()), "--_run-reference", str(root)]
        segprep_cmd = [str(segprep), "trainids", str(root), "--quiet", "--registry", str(registry)]
        if args.workers is not None:
            segprep_cmd += ["--workers", str(args.workers)]
        print(f"cores: {cores} (usable by this process: {usable}); segprep workers: "
              f"{args.workers if args.workers is not None else 'default (all cores)'}; repeat: {args.repeat}", flush=True)

        times: dict[str, list[float]] = {"reference": [], "segprep": []}
        digests: dict[str, dict[str, str]] = {}
        for run in range(args.repeat):
            for name, command in (("reference", reference_cmd), ("segprep", segprep_cmd)):
                clear_outputs(root)
                times[name].append(timed_command(command, env))
                print(f"  {name}: run {run + 1}/{args.repeat} {times[name][-1]:.2f} s", flush=True)
                if run == args.repeat - 1:
                    digests[name] = output_digests(root)

    if len(digests["segprep"]) != args.files or digests["segprep"] != digests["reference"]:
        differ = sorted(k for k in digests["reference"] if digests["segprep"].get(k) != digests["reference"][k])
        raise SystemExit(f"outputs differ from the reference in {len(differ)} file(s), e.g. {differ[:3]}")

    t_ref, t_seg = statistics.median(times["reference"]), statistics.median(times["segprep"])
    ratio = t_ref / t_seg
    print()
    print(f"median of {args.repeat} end-to-end runs (process start to exit), {args.files} annotations of "
          f"{WIDTH}x{HEIGHT}, {usable} usable cores; outputs identical pixel for pixel")
    print(format_table(
        ["figure", "seconds", "files/s", "baseline", "baseline seconds", "baseline files/s", "ratio"],
        [[f"segprep trainids ({args.files} files)", f"{t_seg:.2f}", f"{args.files / t_seg:.1f}", REFERENCE_NAME,
          f"{t_ref:.2f}", f"{args.files / t_ref:.1f}", f"×{ratio:.2f} faster"]],
    ))
    print()
    print(f"goal ≥ {GOAL}× the reference's throughput: {'met' if ratio >= GOAL else 'NOT met'} (×{ratio:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
