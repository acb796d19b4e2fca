"""`python -m segtrain.cli`: the segtrain command (what multi-worker launchers and the tests run)."""

from segtrain.cli import main

main()
