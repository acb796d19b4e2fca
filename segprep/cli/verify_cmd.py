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
    """Check record CRCs, feature keys, names, sizes and the sha256 of every image and label against the manifests."""
    from segprep.manifest import find_manifests
    from segprep.parallel import OrderedPool
    from segprep.verify import verify_output

    total = sum(m["num_records"] for m in find_manifests(out_dir).values())
    with OrderedPool(resolve_workers(workers)) as pool, progress_bar(quiet) as progress:
        report = verify_output(out_dir, pool, progress.task("verify", total))
    print_table(f"verify {out_dir}", ["split", "records checked"], [[s, n] for s, n in report.records.items()], quiet)
    if report.problems:
        fail(report.problems, f"{len(report.problems)} problem(s) in {out_dir}")
    click.echo(f"ok: {sum(report.records.values())} records in {len(report.records)} split(s) match their manifests")
