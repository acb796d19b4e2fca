"""segtrain commands print no TensorFlow start-up lines (oneDNN, CUDA, CPU features) unless --verbose."""

from __future__ import annotations

import os
import subprocess
import sys

from segtrain.quiet import _START_UP_NOTICES


def _import(tmp_path, *flags: str) -> subprocess.CompletedProcess:
    """import-deeplab of a missing checkpoint: fails after TensorFlow has started."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    command = [sys.executable, "-m", "segtrain.cli", *flags, "import-deeplab", str(tmp_path / "zoo" / "model.ckpt-5"), "--out", str(tmp_path / "out")]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def test_tensorflow_start_up_lines_are_held_back_unless_verbose(tmp_path):
    quiet = _import(tmp_path)
    assert quiet.returncode == 1
    lines = [line for line in quiet.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "model.ckpt-5" in lines[0], quiet.stderr
    verbose = _import(tmp_path, "--verbose")
    assert verbose.returncode == 1 and verbose.stderr.splitlines()[-1] == lines[0]
    shown = [line for line in verbose.stderr.splitlines() if _START_UP_NOTICES.search(line)]
    print(f"--verbose showed {len(shown)} start-up line(s)")  # how many depends on the machine, not on segtrain
