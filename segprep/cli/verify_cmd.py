"""`segprep verify OUT`: re-read every shard against its manifest."""

from __future__ import annotations

from pathlib import Path

import click

from segprep.cli.common import (
    fail,
    print_table,
    progress_bar,
    quiet_option,
    resolve_workers,
    workers_option,
)


@click.command(epilog="\b\nExample:\n  segprep verify tfrecords/camvid")
@click.argument("out_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@workers_option
@quiet_option
def verify(out_dir: Path, workers: int | None, quiet: bool) -> None:
    """Check record CRCs, feature keys, names, sizes and the sha256 of every image and label against the manifests.

    Trusts nothing: a missing, truncated or inconsistent manifest, a shard that disagrees with
    it, a shard or temporary file no manifest explains, each is an error naming the file (exit 1).
    """
    from segprep.parallel import OrderedPool
    from segprep.verify import plan_verify, run_plan

    plan = plan_verify(out_dir)
    with OrderedPool(resolve_workers(workers)) as pool, progress_bar(quiet) as progress:
        report = run_plan(plan, pool, progress.task("verify", plan.total))
    print_table(f"verify {out_dir}", ["split", "records checked"], [[s, n] for s, n in report.records.items()], quiet)
    if report.problems:
        # One line per problem, even for a file name with a line break in it.
        fail([" ".join(p.splitlines()) for p in report.problems], f"{len(report.problems)} problem(s) in {out_dir}")
    click.echo(f"ok: {sum(report.records.values())} records in {len(report.records)} split(s) match their manifests")
