"""fit on several workers: TF_CONFIG, MultiWorkerMirroredStrategy, the chief writes, resume, then eval."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import make_folder_dataset

from segtrain.distribute import Cluster, ClusterConfigError, cluster_from_env, localhost_addresses


def tf_config(workers: list[str], index: int, kind: str = "worker", chief: list[str] | None = None) -> dict[str, str]:
    cluster = {"worker": workers, **({"chief": chief} if chief else {})}
    return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": kind, "index": index}})}


def test_cluster_from_tf_config():
    assert cluster_from_env({}) == Cluster() and Cluster().is_chief and not Cluster().multi_worker
    two = ["localhost:1", "localhost:2"]
    first, second = cluster_from_env(tf_config(two, 0)), cluster_from_env(tf_config(two, 1))
    assert (first.workers, first.is_chief, second.is_chief, second.multi_worker) == (2, True, False, True)
    with_chief = cluster_from_env(tf_config(two, 0, chief=["localhost:3"]))
    assert with_chief.workers == 3 and not with_chief.is_chief  # worker 0 is not the chief when a chief task exists
    assert cluster_from_env(tf_config(two, 0, "chief", chief=["localhost:3"])).is_chief
    with pytest.raises(ClusterConfigError, match="has 2 worker"):
        cluster_from_env(tf_config(two, 2))
    with pytest.raises(ClusterConfigError, match="parameter servers"):
        cluster_from_env(tf_config(two, 0, "ps"))
    with pytest.raises(ClusterConfigError, match="not a TensorFlow cluster description"):
        cluster_from_env({"TF_CONFIG": "{not json"})


def run_workers(tmp_path, registry, data, steps: int, *extra: str) -> list[subprocess.CompletedProcess]:
    """Two worker processes of one cluster on this machine (localhost ports), run to the end."""
    workers = localhost_addresses(2)
    scratch = tmp_path / "tmp"
    scratch.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "segtrain.cli", "fit", "--dataset", "toy", "--data", str(data), "--logdir", str(tmp_path / "run"),
               "--steps", str(steps), "--batch-size", "4", "--crop-size", "33,33", "--width", "0.35", "--head-filters", "16",
               "--seed", "0", "--bn-recompute-batches", "2", "--checkpoint-every", "2", "--eval-every", "2", *extra]
    env = dict(os.environ, SEGPREP_REGISTRY=str(registry), TMPDIR=str(scratch))
    processes = [subprocess.Popen(command, env={**env, **tf_config(workers, i)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for i in range(2)]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=600)
        results.append(subprocess.CompletedProcess(command, process.returncode, out, err))
    assert not list(scratch.iterdir()), "a worker left its scratch folder behind"
    return results


def test_two_workers_train_resume_and_eval(tmp_path, registry, run_cli):
    root = make_folder_dataset(tmp_path / "data", count=12, size=(48, 40))
    data = tmp_path / "tf"
    assert run_cli("convert", "folder", "--root", root, "--out", data, "--name", "toy", "--split", "train=0.75", "--split", "val=0.25",
                   "--num-shards", "2", "--quiet").exit_code == 0
    chief, other = run_workers(tmp_path, registry, data, 4)
    assert chief.returncode == 0 and other.returncode == 0, chief.stderr + other.stderr
    assert "trained steps 0..4" in chief.stdout and "2 worker(s), 2 replica(s) in sync, global batch 4" in chief.stdout
    assert "step 4: val mIoU" in chief.stdout and "step 4: val mIoU" not in other.stdout  # the chief reports
    assert "the chief wrote the checkpoints" in other.stdout
    assert "step 4/4" in chief.stderr and "step 4/4" not in other.stderr  # only the chief shows progress
    run = tmp_path / "run"
    assert sorted(p.name for p in run.glob("ckpt-*.index")) == ["ckpt-2.index", "ckpt-4.index"]
    assert json.loads((run / "eval_history.json").read_text())["best"]["step"] in (2, 4)

    chief, other = run_workers(tmp_path, registry, data, 6, "--sync-bn")  # resumes at step 4 on both workers
    assert chief.returncode == 0 and other.returncode == 0, chief.stderr + other.stderr
    assert "trained steps 4..6" in chief.stdout and "trained steps 4..6" in other.stdout
    assert (run / "ckpt-6.index").is_file()
    evaluated = subprocess.run([sys.executable, "-m", "segtrain.cli", "eval", "--dataset", "toy", "--data", str(data), "--checkpoint", str(run),
                                "--split", "val", "--json", "-"], env=dict(os.environ, SEGPREP_REGISTRY=str(registry)), capture_output=True, text=True)
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert report["num_images"] == 3 and 0 <= report["miou"] <= 1
