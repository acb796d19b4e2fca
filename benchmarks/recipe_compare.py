"""The recipe comparison behind `segtrain fit`'s from-scratch advice: arms trained for equal wall time, val mIoU per arm.

Every arm is a set of `segtrain fit` options on the same records. Its seconds per step are measured
first (a short calibration fit, tracing excluded), then it trains from scratch for as many steps as
fit in --minutes, with the poly schedule over exactly those steps, and `segtrain eval` scores the
val split at full resolution. The first arm is the baseline (DeepLab's recipe: MobileNetV2 1.0,
256-filter ASPP/decoder, SGD 0.007, scales 0.5-2.0, no class weights); each other arm's val mIoU is
printed as a ratio to it. Default data: ../shared/datasets/camvid converted by segprep (median-
frequency class weights from train, as `segprep inspect --class-weights` writes them), or
--data/--dataset/--registry for records you converted yourself.

Run: .venv/bin/python benchmarks/recipe_compare.py [--minutes 6] [--batch-size 8] [--arms deeplab,adamw,...]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import REPO, converted_camvid, format_table

SEGTRAIN = [sys.executable, "-m", "segtrain.cli"]

# name -> the fit options that make the arm; each arm changes one thing of the arm before it.
ARMS: dict[str, list[str]] = {
    "deeplab": ["--optimizer", "sgd", "--no-class-weights"],
    "adamw": ["--optimizer", "adamw", "--no-class-weights"],
    "adamw+small": ["--optimizer", "adamw", "--no-class-weights", "--width", "0.5", "--head-filters", "128"],
    "adamw+small+cw": ["--optimizer", "adamw", "--class-weights", "--width", "0.5", "--head-filters", "128"],
    "adamw+small+cw+lr3e-3": ["--optimizer", "adamw", "--class-weights", "--width", "0.5", "--head-filters", "128", "--lr", "3e-3"],
}
STEP_TIME = re.compile(r"trained steps \d+\.\.\d+: ([0-9.]+) s/step")


def run_fit(env: dict[str, str], dataset: str, logdir: Path, steps: int, batch_size: int, options: list[str], final: bool) -> float:
    """Seconds per step of one fit; a calibration fit skips batch-norm recomputation and checkpoints."""
    extra = [] if final else ["--bn-recompute-batches", "0", "--checkpoint-every", str(steps + 1)]
    command = [*SEGTRAIN, "fit", "--dataset", dataset, "--logdir", str(logdir), "--steps", str(steps), "--batch-size", str(batch_size), "--seed", "0", *options, *extra]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    match = STEP_TIME.search(result.stdout)
    if result.returncode != 0 or match is None:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"fit failed ({result.returncode}): {' '.join(command)}")
    return float(match.group(1))


def val_miou(env: dict[str, str], dataset: str, logdir: Path, split: str) -> float:
    report = logdir / f"{split}.json"
    command = [*SEGTRAIN, "eval", "--dataset", dataset, "--checkpoint", str(logdir), "--split", split, "--json", str(report)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"eval failed ({result.returncode}): {' '.join(command)}")
    return float(json.loads(report.read_text())["miou"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=6.0, help="training wall time of every arm")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--calibration-steps", type=int, default=12)
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, the first is the baseline (of {', '.join(ARMS)})")
    parser.add_argument("--data", type=Path, help="records converted by segprep (default: CamVid from ../shared)")
    parser.add_argument("--dataset", default="camvid")
    parser.add_argument("--registry", type=Path, help="the registry that names --dataset (with --data)")
    parser.add_argument("--split", default="val", help="the split every arm is scored on")
    parser.add_argument("--common", default="", help="fit options given to every arm, e.g. \"--min-scale 0.75 --max-scale 1.25\"")
    args = parser.parse_args()
    arms = args.arms.split(",")
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise SystemExit(f"unknown arm(s) {', '.join(unknown)}; known: {', '.join(ARMS)}")
    with tempfile.TemporaryDirectory() as work_name:
        work = Path(work_name)
        env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_CONFIG_HOME": str(work / "config")}
        if args.data is None:
            registry = work / "registry.yaml"
            converted_camvid(work, registry)
            subprocess.run([sys.executable, "-m", "segprep.cli.main", "inspect", "camvid", "--class-weights", "--json"], check=True, capture_output=True, env={**env, "SEGPREP_REGISTRY": str(registry)})
        else:
            registry = args.registry
        if registry is not None:
            env["SEGPREP_REGISTRY"] = str(registry)
        rows, baseline = [], None
        for name in arms:
            options = ARMS[name] + shlex.split(args.common)
            per_step = run_fit(env, args.dataset, work / f"{name}-calibration", args.calibration_steps, args.batch_size, options, final=False)
            steps = max(1, int(args.minutes * 60 / per_step))
            run_fit(env, args.dataset, work / name, steps, args.batch_size, options, final=True)
            miou = val_miou(env, args.dataset, work / name, args.split)
            baseline = miou if baseline is None else baseline
            ratio = "baseline" if name == arms[0] else (f"×{miou / baseline:.2f}" if baseline > 0 else "—")
            rows.append([name, " ".join(ARMS[name]), f"{per_step:.3f}", str(steps), f"{100 * miou:.1f} %", ratio])
            print(f"{name}: {steps} steps at {per_step:.3f} s/step, {args.split} mIoU {100 * miou:.1f} %", file=sys.stderr, flush=True)
    common = f", every arm with {args.common}" if args.common else ""
    print(f"{args.dataset}, {args.minutes:g} min of training per arm, batch {args.batch_size}, from scratch{common}, {os.cpu_count()} CPUs; {args.split} mIoU at full resolution")
    print(format_table(["arm", "fit options", "s/step", "steps", f"{args.split} mIoU", "vs baseline"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
