"""`segprep trainids`. STUB: to be written (issue 3)."""

from __future__ import annotations

import click


@click.command("trainids")
def trainids() -> None:
    """Not yet."""
    raise click.UsageError("not yet")
