"""`segprep register`. STUB."""

from __future__ import annotations

import click


@click.command("register")
def register() -> None:
    """Not yet."""
    raise click.UsageError("not yet")
