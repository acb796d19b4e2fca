"""`segprep labelme`. STUB: to be written (issue 3)."""

from __future__ import annotations

import click


@click.command("labelme")
def labelme() -> None:
    """Not yet."""
    raise click.UsageError("not yet")
