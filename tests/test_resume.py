"""kill -9 in the middle of a run: nothing looks finished, staged shards are complete; a re-run resumes and verify passes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import make_folder_dataset, read_records

from segprep.formats.tfrecord import iter_records
from segprep import schema


@pytest.mark.fault("writer", "convert")
def test_kill_dash_nine_then_resume(tmp_path, registry):
    root = make_folder_dataset(tmp_path / "data", count=400, size=(96, 64))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "segprep.cli.main", "convert", "folder", "--root", str(root), "--out", str(out),
               "--name", "big", "--split", "train=1", "--num-shards", "40", "--workers", "1", "--quiet"]
    env = {**os.environ, "SEGPREP_REGISTRY": str(registry)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(out.glob(".staged-train-*"))) < 3:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"

    assert not list(out.glob("train-*")), "a killed run left a shard under its final name"
    assert not (out / "train.manifest.json").exists()
    finished = sorted(out.glob(".staged-train-*"))
    assert 3 <= len(finished) < 40
    for shard in finished:  # complete: every record of a staged shard is intact, 10 records each
        assert len(list(iter_records(shard))) == 10
    unfinished = subprocess.run([sys.executable, "-m", "segprep.cli.main", "verify", str(out)], capture_output=True, text=True)
    assert unfinished.returncode == 1 and "Traceback" not in unfinished.stderr
    registry_before = registry.read_bytes()

    rerun = subprocess.run(command[:-1], env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    resumed = int(rerun.stdout.splitlines()[2].split()[-1])
    assert resumed >= len(finished) - 1  # at most the shard being journalled at the kill is redone
    assert not list(out.glob(".tmp-*")) and not list(out.glob(".*journal*")) and not list(out.glob(".staged-*"))
    assert not (out / ".segprep.lock").exists()
    assert registry.read_bytes() != registry_before  # registered only by the run that succeeded
    verify = subprocess.run([sys.executable, "-m", "segprep.cli.main", "verify", str(out)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    names = [r[schema.FILENAME].decode() for r in read_records(out, "train")]
    assert names == sorted(p.stem for p in (root / "images").iterdir())
