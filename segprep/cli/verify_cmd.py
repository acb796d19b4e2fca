"""`segprep verify OUT`: re-read every shard against its manifest, decoding every label (and, on request, image)."""

from __future__ import annotations

from pathlib import Path

import click

from segprep.cli.common import (
    fail,
    print_table,
    progress_bar,
    quiet_option,
    registry_option,
    resolve_workers,
    workers_option,
)


@click.command(epilog="\b\nExample:\n  segprep verify tfrecords/camvid")
@click.argument("out_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--decode-images",
    is_flag=True,
    help="Also decode every image in full (JPEG at full size, every PNG byte inflated); slower.",
)
@registry_option
@workers_option
@quiet_option
def verify(out_dir: Path, decode_images: bool, registry: Path | None, workers: int | None, quiet: bool) -> None:
    """Check every record against its manifest and the contract: CRCs, feature keys, names, sizes, sha256, and contents.

    Every label is decoded: it must be an 8-bit single-channel PNG of its image's size, every value
    a class or the ignore label of the manifest's registry entry, its histogram the manifest's;
    every image's header must give the record's size and format (--decode-images: the image is
    decoded in full too). The manifest's classes and ignore label must agree with the registry's
    entry for the dataset, when the registry has it.

    Trusts nothing: a missing, truncated or inconsistent manifest, a shard that disagrees with
    it, a shard or temporary file no manifest explains, each is an error naming the file (exit 1).
    """
    from segprep.parallel import OrderedPool
    from segprep.registry import RegistryError, load_registry, resolve_registry_path
    from segprep.verify import plan_verify, run_plan

    registry_problems: list[str] = []
    try:
        reg = load_registry(resolve_registry_path(registry))
    except RegistryError as exc:
        # The records can still be checked against their manifests; the registry is reported, not fatal.
        reg = None
        registry_problems.append(f"{exc} (manifests not compared with the registry)")
    plan = plan_verify(out_dir, reg)
    plan.problems[:0] = registry_problems
    with OrderedPool(resolve_workers(workers)) as pool, progress_bar(quiet) as progress:
        report = run_plan(plan, pool, progress.task("verify", plan.total), decode_images=decode_images)
    print_table(f"verify {out_dir}", ["split", "records checked"], [[s, n] for s, n in report.records.items()], quiet)
    if report.problems:
        # One line per problem, even for a file name with a line break in it.
        fail([" ".join(p.splitlines()) for p in report.problems], f"{len(report.problems)} problem(s) in {out_dir}")
    decoded = "labels and images" if decode_images else "labels"
    click.echo(f"ok: {sum(report.records.values())} records in {len(report.records)} split(s) match their manifests ({decoded} decoded)")
