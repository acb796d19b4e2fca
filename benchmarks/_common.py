"""What every benchmark script shares: timing a command end to end, and the plain-text result table."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CAMVID = REPO.parent / "shared" / "datasets" / "camvid"


def converted_camvid(work: Path, registry: Path | None = None) -> Path:
    """../shared CamVid converted by segprep into work/camvid, registered in a registry of its own (never the user's)."""
    out = work / "camvid"
    registry = registry or work / "registry.yaml"
    registry.write_text("datasets: {}\n")
    env = {**os.environ, "SEGPREP_REGISTRY": str(registry), "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-m", "segprep.cli.main", "convert", "camvid", "--root", str(CAMVID), "--out", str(out), "--quiet"], check=True, env=env)
    return out


def timed_command(command: list[str], env: dict[str, str] | None = None) -> float:
    """Wall-clock seconds of a command from process start to exit; a failed command ends the benchmark."""
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"command failed with exit status {result.returncode}: {' '.join(command)}")
    return elapsed


def format_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return " | ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip()

    return "\n".join([line(header), "-+-".join("-" * w for w in widths), *(line(row) for row in rows)])
