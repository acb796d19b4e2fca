"""What every benchmark script shares: timing a command end to end, and the plain-text result table."""

from __future__ import annotations

import subprocess
import sys
import time


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
