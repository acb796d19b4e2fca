"""`segprep inspect DIR|DATASET`: what is in a converted dataset, and what is wrong with it."""

from __future__ import annotations

import json
from pathlib import Path

import click

from segprep.cli.common import fail, load_registry_or_exit, print_table, registry_option


@click.command(
    "inspect",
    epilog="""\b
Examples:
  segprep inspect tfrecords/camvid
  segprep inspect camvid --json          # a registered dataset, through its data_dir
  segprep inspect camvid --preview camvid.png --preview-split val
  segprep inspect camvid --class-weights                 # median-frequency weights of train -> registry
  segprep inspect camvid --class-weights inverse --weights-split trainval
""",
)
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON document instead of tables.")
@click.option("--dataset", default=None, help="Registry entry for the classes of records without manifests.")
@click.option("--preview", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write a PNG contact sheet (image | colour label | overlay) of the first records.")
@click.option("--preview-split", default=None, help="Split to preview (default: the first).")
@click.option("--preview-count", type=click.IntRange(1, 64), default=6, show_default=True, help="Rows in the preview.")
@click.option(
    "--class-weights",
    "weights_method",
    type=click.Choice(["median-frequency", "inverse"]),
    is_flag=False,
    flag_value="median-frequency",
    default=None,
    help="Compute class weights from a split's pixel counts and write them to the registry (default method: median-frequency).",
)
@click.option("--weights-split", default="train", show_default=True, help="Split whose pixels the class weights come from.")
@registry_option
def inspect_cmd(
    target: str,
    as_json: bool,
    dataset: str | None,
    preview: Path | None,
    preview_split: str | None,
    preview_count: int,
    weights_method: str | None,
    weights_split: str,
    registry: Path | None,
) -> None:
    """Per split: records, class-pixel histogram, ignore fraction, out-of-range values, size mismatches, duplicates."""
    from segprep.inspect import inspect_folder
    from segprep.registry import RegistryError

    entry = None
    folder = Path(target)
    if not folder.is_dir():
        reg = load_registry_or_exit(registry)
        try:
            entry = reg.get(target)
        except RegistryError as exc:
            raise click.UsageError(f"{target} is neither a folder nor a registered dataset ({exc})") from None
        if not entry.data_dir:
            fail([], f"dataset {target!r} has no data_dir in {reg.path}: convert it first or pass the folder")
        folder = Path(entry.data_dir)
    elif dataset:
        entry = load_registry_or_exit(registry).get(dataset)
    report = inspect_folder(folder, entry)
    if not report.splits:
        fail(report.warnings, f"{folder}: no TFRecord shards found")
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=1))
    else:
        _print(report, folder)
    if preview is not None:
        _write_preview(report, folder, preview, preview_split, preview_count)
    if weights_method is not None:
        _write_class_weights(report, folder, weights_method, weights_split, registry, quiet=as_json)
    problems = [f"{folder}: split {s.split}: label values outside the classes: {report.out_of_range(s)}" for s in report.splits.values() if report.out_of_range(s)]
    problems += [m for s in report.splits.values() for m in s.size_mismatches + s.problems]
    problems = report.warnings + problems  # manifests that could not be used come first
    if problems:
        fail(problems, f"{len(problems)} problem(s) in {folder}")


def _print(report, folder: Path) -> None:  # type: ignore[no-untyped-def]
    rows = [
        [s.split, s.records, s.shards, s.skipped, f"{100 * report.ignore_fraction(s):.2f}%", len(report.out_of_range(s)), len(s.size_mismatches)]
        for s in report.splits.values()
    ]
    title = f"{report.dataset or 'dataset'} in {folder}"
    print_table(title, ["split", "records", "shards", "skipped", "ignore", "bad values", "size mismatches"], rows)
    names = report.class_names or [str(i) for i in range(report.num_classes or 0)]
    if names:
        header = ["class"] + list(report.splits)
        rows = []
        for index, name in enumerate(names):
            row: list[object] = [f"{index} {name}"]
            for s in report.splits.values():
                total = int(s.histogram.sum()) or 1
                row.append(f"{100 * s.histogram[index] / total:.2f}%")
            rows.append(row)
        print_table("class pixels (share of all pixels)", header, rows)
    if report.duplicates:
        click.echo(f"{len(report.duplicates)} name(s) in more than one split, e.g. {report.duplicates[0][0]} in {', '.join(report.duplicates[0][1])}")


def _write_preview(report, folder: Path, target: Path, split: str | None, count: int) -> None:  # type: ignore[no-untyped-def]
    import io

    from segprep.colormaps import resolve_colormap
    from segprep.manifest import MANIFEST_SUFFIX
    from segprep.preview import first_records, render_preview
    from segprep.safewrite import write_owned_file
    from segprep.schema import ANY_SHARD, SHARD_SUFFIX, shard_files

    split = split or next(iter(report.splits))
    if split not in report.splits:
        raise click.UsageError(f"no split {split!r} in {folder} (has {', '.join(report.splits)})")
    colormap = resolve_colormap(report.colormap or "pascal")
    sheet = render_preview(first_records(shard_files(folder, split), count), colormap, report.ignore_label or 255)
    png = io.BytesIO()
    sheet.save(png, "PNG")
    # The folder's shards and manifests are this command's inputs; other files only if segprep wrote them.
    inputs = [p for p in folder.iterdir() if p.name.endswith(MANIFEST_SUFFIX) or ANY_SHARD.fullmatch(p.name) or p.name.endswith(SHARD_SUFFIX)]
    write_owned_file(target, png.getvalue(), inputs=inputs, option="--preview")
    click.echo(f"preview of {split} ({min(count, report.splits[split].records)} records): {target}")


def _write_class_weights(report, folder: Path, method: str, split: str, registry: Path | None, quiet: bool) -> None:  # type: ignore[no-untyped-def]
    """Class weights from one split's pixels, written into the dataset's registry entry."""
    from segprep.class_weights import ClassWeightsError, class_weights
    from segprep.registry import RegistryError, set_class_weights

    if split not in report.splits:
        raise click.UsageError(f"no split {split!r} in {folder} (has {', '.join(report.splits)}); choose one with --weights-split")
    if report.num_classes is None or report.dataset is None:
        raise click.UsageError(f"{folder}: records without a manifest; name the dataset with --dataset to write class weights")
    reg = load_registry_or_exit(registry)
    if report.dataset not in reg.datasets:
        raise click.UsageError(f"dataset {report.dataset!r} is not in {reg.path}; register it first (segprep register)")
    stats = report.splits[split]
    try:
        result = class_weights(method, stats.histogram, stats.presence_pixels(report.ignore_label), report.num_classes)
    except ClassWeightsError as exc:
        fail([], f"{folder}: split {split}: {exc}")
    try:
        # Validated against the entry: weights that would give NaN or 0/0 losses are refused, registry unchanged.
        set_class_weights(reg.path, report.dataset, result.weights)
    except RegistryError as exc:
        fail([], f"{exc} (computed from split {split} of {folder})")
    names = report.class_names or [str(i) for i in range(report.num_classes)]
    if not quiet:
        rows = [[f"{i} {names[i]}", int(stats.histogram[i]), f"{w:.4f}"] for i, w in enumerate(result.weights)]
        print_table(f"{method} class weights of {report.dataset} from {split}", ["class", "pixels", "weight"], rows)
    if result.absent:
        click.echo(f"warning: no pixels of class(es) {', '.join(names[c] for c in result.absent)} in {split}: weight 0", err=True)
    click.echo(f"class_weights of {report.dataset} written to {reg.path}", err=True)
