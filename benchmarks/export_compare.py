"""What `segtrain export` costs: a trained checkpoint beside its SavedModel and its float, fp16 and int8 TFLite exports.

CamVid (../shared/datasets/camvid, SegNet layout) is converted by segprep (train and val) into a work
folder with a registry of its own, `segtrain fit` trains a small DeepLabv3+ for --steps (MobileNetV2 at
width 0.5, 128-filter heads, AdamW 3e-3; the fit's wall time is printed), `segtrain export` writes a
SavedModel and three TFLite models at --input-size (360x480, CamVid's own size: no resize), and
`segtrain eval` scores the checkpoint and every export on val. One table: val mIoU, pixel accuracy,
ms/image (the JSON's ms_per_image) and size on disk, ms/image and size as ratios to the checkpoint
(the baseline row). Then agreement on the val images, every export run in this process through
segtrain.exported.load_exported against the SavedModel: float TFLite max and mean |p - p_saved| over all
pixels and classes, fp16 mean and max, the % of pixels whose argmax class is the SavedModel's (float,
fp16, int8), and int8's val mIoU minus the float TFLite's; PASS/FAIL against the targets (float max
<= 1e-3; fp16 mean <= 1e-3, max <= 2e-2, agreement >= 99.8 %; int8 within 2 mIoU points of float).
--quick is a smoke run: 20 steps, 10 calibration images, no eval, agreement on 5 val images.

Run: .venv/bin/python benchmarks/export_compare.py [--steps 300] [--representative-count 100] [--work DIR] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import CAMVID, REPO, format_table

SEGPREP = [sys.executable, "-m", "segprep.cli.main"]
SEGTRAIN = [sys.executable, "-m", "segtrain.cli"]
FIT_OPTIONS = ["--width", "0.5", "--head-filters", "128", "--lr", "3e-3", "--seed", "0"]
QUANTIZATIONS = ["none", "fp16", "int8"]
ROW_NAMES = {"checkpoint": "checkpoint", "saved": "SavedModel", "none": "TFLite float", "fp16": "TFLite fp16", "int8": "TFLite int8"}

# Targets: float TFLite against the SavedModel, fp16 against the SavedModel, int8 against float TFLite.
FLOAT_MAX = 1e-3
FP16_MEAN = 1e-3
FP16_MAX = 2e-2
FP16_AGREEMENT = 99.8  # % of pixels
INT8_MIOU_POINTS = 2.0


def run(command: list[str], env: dict[str, str], log: Path) -> tuple[float, str]:
    """Wall-clock seconds and stdout of a command; its output goes to log; a failed command ends the benchmark."""
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    log.write_text(f"$ {' '.join(command)}\n{result.stdout}{result.stderr}")
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"command failed with exit status {result.returncode} after {elapsed:.1f} s: {' '.join(command)} (log: {log})")
    return elapsed, result.stdout


def checkpoint_files(logdir: Path) -> list[Path]:
    """The .index and .data-* files of the logdir's latest checkpoint (the prefix its `checkpoint` state file names)."""
    state = (logdir / "checkpoint").read_text()
    match = re.search(r'^model_checkpoint_path:\s*"([^"]+)"', state, re.MULTILINE)
    if match is None:
        raise SystemExit(f"{logdir / 'checkpoint'}: names no model_checkpoint_path")
    prefix = Path(match.group(1))
    prefix = prefix if prefix.is_absolute() else logdir / prefix
    files = [Path(f"{prefix}.index"), *sorted(prefix.parent.glob(f"{prefix.name}.data-*"))]
    if len(files) < 2 or not files[0].is_file():
        raise SystemExit(f"{prefix}: no .index and .data-* files")
    return files


def size_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def agreement(saved_path: Path, tflite_paths: dict[str, Path], records: Path, count: int | None) -> tuple[dict, int]:
    """Per quantization: max and mean |p - p_saved|, % of pixels with the SavedModel's argmax; over the first count val images."""
    from segtrain.quiet import quiet_tensorflow

    quiet_tensorflow()  # TensorFlow's start-up lines, as the segtrain commands hide them
    import numpy as np

    from segtrain.data import eval_dataset, record_files
    from segtrain.exported import load_exported

    saved = load_exported(saved_path)
    models = {name: load_exported(path) for name, path in tflite_paths.items()}
    stats = {name: {"max": 0.0, "sum": 0.0, "values": 0, "same": 0, "pixels": 0} for name in models}
    dataset = eval_dataset(record_files(records, "val"))
    images = 0
    for example in dataset if count is None else dataset.take(count):
        image = example["image"].numpy()
        reference = saved.probabilities(image)
        reference_classes = reference.argmax(-1)
        for name, model in models.items():
            if model.input_size != image.shape[:2]:
                raise SystemExit(f"{tflite_paths[name]}: input {model.input_size} is not the val image's {image.shape[:2]}; agreement is measured without a resize")
            probs = model.probabilities(image)
            difference = np.abs(probs.astype(np.float64) - reference)
            entry = stats[name]
            entry["max"] = max(entry["max"], float(difference.max()))
            entry["sum"] += float(difference.sum())
            entry["values"] += difference.size
            entry["same"] += int((probs.argmax(-1) == reference_classes).sum())
            entry["pixels"] += reference_classes.size
        images += 1
    return {
        name: {"max": s["max"], "mean": s["sum"] / s["values"], "agreement": 100.0 * s["same"] / s["pixels"]} for name, s in stats.items()
    }, images


def verdict(value: float | None, ok: bool) -> str:
    return "—" if value is None else ("PASS" if ok else "FAIL")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, help="training steps (default 300; 20 with --quick)")
    parser.add_argument("--crop-size", default="361,481", help="fit's training crop (k*16+1, DeepLab's grid)")
    parser.add_argument("--input-size", default="360,480", help="the TFLite models' input size (CamVid's own: no resize)")
    parser.add_argument("--representative-count", type=int, help="int8 calibration images (default 100; 10 with --quick)")
    parser.add_argument("--agreement-images", type=int, help="val images of the agreement pass (default all; 5 with --quick)")
    parser.add_argument("--root", type=Path, default=CAMVID, help="CamVid in the SegNet layout")
    parser.add_argument("--work", type=Path, help="keep records, run, exports and logs here (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 steps, 10 calibration images, no eval, 5 agreement images")
    args = parser.parse_args()
    steps = args.steps or (20 if args.quick else 300)
    representative = args.representative_count or (10 if args.quick else 100)
    agreement_count = args.agreement_images or (5 if args.quick else None)
    if not (args.root / "val.txt").is_file():
        print(f"CamVid not found at {args.root} (need train.txt, val.txt); nothing to benchmark.")
        return 1

    with tempfile.TemporaryDirectory() as temporary:
        work = args.work or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        logs = work / "logs"
        logs.mkdir(exist_ok=True)
        registry = work / "registry.yaml"
        if not registry.exists():
            registry.write_text("datasets: {}\n")
        env = {**os.environ, "PYTHONPATH": str(REPO), "SEGPREP_REGISTRY": str(registry), "XDG_CONFIG_HOME": str(work / "config")}
        records, logdir, saved = work / "tf", work / "run", work / "saved"
        tflite = {q: work / f"model_{q}.tflite" for q in QUANTIZATIONS}

        def step(message: str) -> None:
            print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

        step(f"convert CamVid train,val -> {records}")
        seconds, _ = run([*SEGPREP, "convert", "camvid", "--root", str(args.root), "--out", str(records), "--splits", "train,val", "--quiet"], env, logs / "convert.log")
        step(f"converted in {seconds:.1f} s; fit {steps} steps")
        fit_seconds, fit_out = run(
            [*SEGTRAIN, "fit", "--dataset", "camvid", "--logdir", str(logdir), "--steps", str(steps), "--crop-size", args.crop_size, *FIT_OPTIONS],
            env,
            logs / "fit.log",
        )
        step_line = next((line for line in fit_out.splitlines() if line.startswith("trained steps")), "")
        step(f"fit: {fit_seconds:.1f} s wall ({step_line})")

        exports = {"saved": saved, **tflite}
        export_seconds = {}
        export_seconds["saved"], _ = run([*SEGTRAIN, "export", "--checkpoint", str(logdir), "--out", str(saved)], env, logs / "export_saved.log")
        for q in QUANTIZATIONS:
            extra = ["--representative-count", str(representative)] if q == "int8" else []
            export_seconds[q], _ = run(
                [*SEGTRAIN, "export", "--checkpoint", str(logdir), "--format", "tflite", "--quantize", q, "--input-size", args.input_size, "--out", str(tflite[q]), *extra],
                env,
                logs / f"export_{q}.log",
            )
        step("exported in " + ", ".join(f"{ROW_NAMES[k]} {v:.1f} s" for k, v in export_seconds.items()))

        reports: dict[str, dict] = {}
        if not args.quick:
            for name in ["checkpoint", *exports]:
                report = work / f"eval_{name}.json"
                source = ["--checkpoint", str(logdir)] if name == "checkpoint" else ["--model", str(exports[name])]
                seconds, _ = run([*SEGTRAIN, "eval", "--dataset", "camvid", *source, "--split", "val", "--json", str(report)], env, logs / f"eval_{name}.log")
                reports[name] = json.loads(report.read_text())
                step(f"eval {ROW_NAMES[name]}: {100 * reports[name]['miou']:.2f} % mIoU, {reports[name]['ms_per_image']:.1f} ms/image ({seconds:.1f} s)")

        sizes = {"checkpoint": sum(p.stat().st_size for p in checkpoint_files(logdir)), **{name: size_of(path) for name, path in exports.items()}}
        step(f"agreement on {agreement_count or 'all'} val image(s)")
        start = time.perf_counter()
        agree, images = agreement(saved, tflite, records, agreement_count)
        step(f"agreement pass: {images} images in {time.perf_counter() - start:.1f} s")

    base_ms = reports.get("checkpoint", {}).get("ms_per_image")
    rows = []
    for name in ["checkpoint", *exports]:
        report = reports.get(name)
        ms = report["ms_per_image"] if report else None
        if name == "checkpoint":
            ms_ratio = size_ratio = "baseline"
        else:
            ms_ratio = f"×{ms / base_ms:.2f}" if ms is not None and base_ms else "—"
            size_ratio = f"×{sizes[name] / sizes['checkpoint']:.2f}"
        rows.append([
            ROW_NAMES[name],
            f"{100 * report['miou']:.2f} %" if report else "—",
            f"{100 * report['pixel_accuracy']:.2f} %" if report else "—",
            f"{ms:.1f}" if ms is not None else "—",
            f"{sizes[name] / 1e6:.2f}",
            ms_ratio,
            size_ratio,
        ])

    float_, fp16, int8 = agree["none"], agree["fp16"], agree["int8"]
    int8_points = 100 * (reports["int8"]["miou"] - reports["none"]["miou"]) if reports else None
    checks = [
        ["float TFLite max |p - p_saved|", f"{float_['max']:.2e}", f"<= {FLOAT_MAX:g}", verdict(float_["max"], float_["max"] <= FLOAT_MAX)],
        ["float TFLite mean |p - p_saved|", f"{float_['mean']:.2e}", "—", "—"],
        ["fp16 mean |p - p_saved|", f"{fp16['mean']:.2e}", f"<= {FP16_MEAN:g}", verdict(fp16["mean"], fp16["mean"] <= FP16_MEAN)],
        ["fp16 max |p - p_saved|", f"{fp16['max']:.2e}", f"<= {FP16_MAX:g}", verdict(fp16["max"], fp16["max"] <= FP16_MAX)],
        ["float class-map agreement", f"{float_['agreement']:.3f} %", "—", "—"],
        ["fp16 class-map agreement", f"{fp16['agreement']:.3f} %", f">= {FP16_AGREEMENT:g} %", verdict(fp16["agreement"], fp16["agreement"] >= FP16_AGREEMENT)],
        ["int8 class-map agreement", f"{int8['agreement']:.3f} %", "—", "—"],
        [
            "int8 mIoU - float TFLite mIoU",
            f"{int8_points:+.2f} points" if int8_points is not None else "— (--quick: no eval)",
            f"within ±{INT8_MIOU_POINTS:g} points",
            verdict(int8_points, int8_points is not None and abs(int8_points) <= INT8_MIOU_POINTS),
        ],
    ]

    height, width = args.input_size.split(",")
    print(
        f"camvid, fit {steps} steps (crop {args.crop_size}, {' '.join(FIT_OPTIONS)}, batch 8) in {fit_seconds:.1f} s wall "
        f"[{step_line}]; TFLite input {height}x{width}, int8 calibrated on {representative} train images; {os.cpu_count()} CPUs"
    )
    print("val at full resolution (segtrain eval); checkpoint size: its .index + .data files; SavedModel: the folder" + (" — --quick: no eval" if args.quick else ""))
    print(format_table(["model", "val mIoU", "pixel acc.", "ms/image", "size MB", "ms vs ckpt", "size vs ckpt"], rows))
    print()
    print(f"agreement with the SavedModel on {images} val image(s) at {height}x{width} (argmax: % of pixels with the SavedModel's class)")
    print(format_table(["measure", "value", "target", "result"], checks))
    failed = [row[0] for row in checks if row[3] == "FAIL"]
    print()
    print("all targets met" if not failed else f"targets NOT met: {', '.join(failed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
