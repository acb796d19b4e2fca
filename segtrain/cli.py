"""segtrain command line; the training commands arrive with their own issue."""

from __future__ import annotations

import sys


def main() -> None:
    """Placeholder entry point so that the console script installs; exits 2 with a clear message."""
    print("segtrain: not yet (fit/eval/score/predict/export are being built; see the README)", file=sys.stderr)
    sys.exit(2)
