"""Options, progress bars and error reporting shared by every segprep command."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

EXIT_DATA_ERROR = 1


def workers_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--workers", type=click.IntRange(min=1), default=None, help="Worker processes (default: all cores)."
    )(fn)


def quiet_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary table.")(fn)


def registry_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--registry",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="SEGPREP_REGISTRY",
        default=None,
        help="Your registry file, layered over the built-in datasets (default: $SEGPREP_REGISTRY, else ~/.config/segprep/registry.yaml).",
    )(fn)


def resolve_workers(workers: int | None) -> int:
    from segprep.parallel import default_workers

    return workers or default_workers()


def fail(lines: list[str], summary: str) -> None:
    """Print one 'error:' line per bad file and a summary to stderr, then exit 1."""
    for line in lines:
        click.echo(f"error: {line}", err=True)
    click.echo(f"error: {summary}", err=True)
    sys.exit(EXIT_DATA_ERROR)


def load_registry_or_exit(path: Path | None) -> Any:
    """The loaded registry; a broken or missing registry is a data error (exit 1) with its reason."""
    from segprep.registry import RegistryError, load_registry, resolve_registry_path

    try:
        return load_registry(resolve_registry_path(path))
    except RegistryError as exc:
        fail([], str(exc))


class _RichProgress:
    """segprep.progress.ProgressSink over a rich Progress: one bar per task."""

    def __init__(self, progress: Any) -> None:
        self._progress = progress

    def task(self, description: str, total: int) -> Callable[[int], None]:
        task_id = self._progress.add_task(description, total=total)
        return lambda n: self._progress.advance(task_id, n)


@contextmanager
def progress_bar(quiet: bool) -> Iterator[Any]:
    """A rich progress bar on stderr when it is a terminal and not --quiet; otherwise a silent sink."""
    if quiet or not sys.stderr.isatty():
        from segprep.progress import NoProgress

        yield NoProgress()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        yield _RichProgress(progress)


def print_table(title: str, columns: list[str], rows: list[list[Any]], quiet: bool = False) -> None:
    """A summary table on stdout: rich when stdout is a terminal, plain aligned text otherwise."""
    if quiet:
        return
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title)
        for column in columns:
            table.add_column(column, justify="left" if column == columns[0] else "right")
        for row in rows:
            table.add_row(*[str(v) for v in row])
        Console().print(table)
        return
    cells = [columns] + [[str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    click.echo(title)
    for row in cells:
        click.echo("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))


def report_split_results(results: list[Any], out_dir: Path | str, quiet: bool) -> None:
    """Summary table of written splits; every refused file on stderr; exit 1 if any split failed."""
    rows = [[r.split, r.status, r.records, r.shards, len(r.bad), r.resumed_shards] for r in results]
    print_table(f"TFRecords in {out_dir}", ["split", "status", "records", "shards", "skipped/bad", "resumed"], rows, quiet)
    # A file of two splits (train and trainval, or every split for an unpaired file) is one line.
    skipped = unique_lines(bad.line() for r in results if r.status != "failed" for bad in r.bad)
    for line in skipped:
        click.echo(f"warning: skipped {line}", err=True)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        lines = unique_lines(bad.line() for r in failed for bad in r.bad)
        names = ", ".join(f"{r.split} ({len(r.bad)} bad)" for r in failed)
        fail(lines, f"{len(lines)} bad file(s); nothing written for split(s) {names}; fix them or use --skip-invalid")


def unique_lines(lines: Iterable[str]) -> list[str]:
    """The lines in their first order, each once."""
    return list(dict.fromkeys(lines))


def report_notes(notes: list[str]) -> None:
    """What a command wants the user to know that is not an error (images left out of every split)."""
    for line in unique_lines(notes):
        click.echo(f"note: {line}", err=True)
