"""Training speed of `segtrain fit` on two workers (MultiWorkerMirroredStrategy) beside one, then eval of its checkpoint.

Both runs train the same model on ../shared CamVid (converted by segprep into a temporary
registry) with the same global batch. The baseline is one process; the figure is two worker
processes of one cluster on this machine (TF_CONFIG with two localhost ports), each reading its
own shards and computing half of every batch. Seconds per step come from fit's own line (the
first, tracing step excluded); the two-worker checkpoint is then scored on val by `segtrain eval`.
On one machine the workers share its cores, so this shows that the cluster trains and what the
collectives cost, not the speed-up of two machines.

Run: .venv/bin/python benchmarks/multiworker_speed.py [--steps 30] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import CAMVID, converted_camvid, format_table

from segtrain.distribute import localhost_addresses

SEGTRAIN = [sys.executable, "-m", "segtrain.cli"]
STEP_TIME = re.compile(r"trained steps \d+\.\.\d+: ([0-9.]+) s/step")


def fit(env: dict[str, str], logdir: Path, workers: int, args: argparse.Namespace) -> tuple[float, str]:
    """Seconds per step (the chief's) and the chief's output, for a cluster of `workers` processes."""
    command = [*SEGTRAIN, "fit", "--dataset", "camvid", "--logdir", str(logdir), "--steps", str(args.steps), "--batch-size", str(args.batch_size),
               "--width", "0.5", "--head-filters", "128", "--seed", "0", "--bn-recompute-batches", "2", "--checkpoint-every", str(args.steps)]
    addresses = localhost_addresses(workers)
    processes = []
    for index in range(workers):
        config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
        worker_env = {**env, "TF_CONFIG": json.dumps(config)} if workers > 1 else env
        processes.append(subprocess.Popen(command, env=worker_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [process.communicate() for process in processes]
    for process, (out, err) in zip(processes, outputs):
        if process.returncode != 0:
            sys.stderr.write(out + err)
            raise SystemExit(f"fit failed with {workers} worker(s)")
    chief = outputs[0][0]
    match = STEP_TIME.search(chief)
    assert match is not None, chief
    return float(match.group(1)), chief


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    if not CAMVID.is_dir():
        print(f"CamVid not found at {CAMVID}; nothing to benchmark.")
        return 0
    with tempfile.TemporaryDirectory(prefix="segtrain-multiworker-") as work_name:
        work = Path(work_name)
        registry = work / "registry.yaml"
        converted_camvid(work, registry)
        env = {**os.environ, "SEGPREP_REGISTRY": str(registry)}
        env.pop("TF_CONFIG", None)
        one, _ = fit(env, work / "one", 1, args)
        two, chief = fit(env, work / "two", 2, args)
        cluster_line = next((line for line in chief.splitlines() if "worker(s)" in line), "")
        scored = subprocess.run([*SEGTRAIN, "eval", "--dataset", "camvid", "--checkpoint", str(work / "two"), "--split", "val", "--json", "-"],
                                env=env, capture_output=True, text=True, check=True)
        report = json.loads(scored.stdout)
    print(f"CamVid train, MobileNetV2 0.5 / 128-filter heads, crop 369x481, global batch {args.batch_size}, {args.steps} steps, from scratch, {os.cpu_count()} CPUs")
    rows = [
        ["1 worker (baseline)", f"{one:.3f}", f"{1 / one:.3f}", f"{args.batch_size / one:.1f}", "×1.00"],
        ["2 workers on localhost", f"{two:.3f}", f"{1 / two:.3f}", f"{args.batch_size / two:.1f}", f"×{one / two:.2f}"],
    ]
    print(format_table(["fit", "s/step", "steps/s", "images/s", "steps/s vs 1 worker"], rows))
    print(f"chief: {cluster_line}")
    print(f"segtrain eval of the 2-worker checkpoint (step {args.steps}): val mIoU {100 * report['miou']:.2f} % over {report['num_images']} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
