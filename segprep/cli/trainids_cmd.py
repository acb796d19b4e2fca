"""`segprep trainids ROOT`: Cityscapes polygons (or labelIds PNGs) -> *_labelTrainIds.png beside them."""

from __future__ import annotations

from pathlib import Path

import click

from segprep.cli.common import (
    fail,
    load_registry_or_exit,
    print_table,
    progress_bar,
    quiet_option,
    registry_option,
    resolve_workers,
    workers_option,
)


@click.command(
    "trainids",
    epilog="""\b
Examples:
  segprep trainids cityscapes                          # gtFine/*/*/*_gtFine_labelTrainIds.png
  segprep trainids cityscapes --coarse                 # also gtCoarse/*/*/*_gtCoarse_labelTrainIds.png
  segprep trainids cityscapes --source labelids        # from the official *_labelIds.png instead
  segprep trainids cityscapes --classes car            # *_labelTrainIds_car.png: 0 background, 1 car
  segprep trainids cityscapes --classes person,rider   # *_labelTrainIds_person-rider.png, dataset cityscapes_person_rider
""",
)
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--coarse", is_flag=True, help="Also convert gtCoarse (train, val, train_extra).")
@click.option("--source", type=click.Choice(["polygons", "labelids"]), default="polygons", show_default=True, help="Read *_polygons.json (as cityscapesScripts' json2labelImg) or the official *_labelIds.png.")
@click.option("--classes", default=None, help="A subset dataset of these train classes, comma-separated (e.g. car or person,rider; `_` for a space): 1..k in this order, other classes 0, void 255. Written as *_labelTrainIds_<a-b>.png and registered.")
@click.option("--name", default=None, help="With --classes: the subset's registry name (default cityscapes_<classes joined by _>).")
@click.option("--skip-existing", is_flag=True, help="Leave annotations whose output file exists alone (default: rewrite every one).")
@workers_option
@quiet_option
@registry_option
def trainids(
    root: Path,
    coarse: bool,
    source: str,
    classes: str | None,
    name: str | None,
    skip_existing: bool,
    workers: int | None,
    quiet: bool,
    registry: Path | None,
) -> None:
    """Write *_labelTrainIds.png next to every Cityscapes annotation under ROOT.

    Pixel for pixel what cityscapesScripts' createTrainIdLabelImgs writes (19 train classes 0..18,
    void 255), on all cores. Existing outputs are rewritten. A bad annotation (unknown label,
    broken JSON, a labelIds value that is no Cityscapes id) is reported with its reason and leaves
    its output untouched; the others are still written, and the exit status is 1.

    Every size an annotation declares (imgWidth x imgHeight, a labelIds PNG's header) must be the
    size of its ROOT/leftImg8bit/SPLIT/CITY/*_leftImg8bit.png (read from the header) before
    anything is allocated; without that image it is only held to 8192x8192 pixels (a note says
    how many). A FIFO or folder named like an annotation or image is that file's error.

    Only *_labelTrainIds*.png files are ever written (each via a temporary, renamed when
    complete); a name that could replace an input or an official Cityscapes file is refused
    before any work, and a failed write (disk full, read-only) stops the run naming the file.
    """
    from segprep.ops.cityscapes_labels import UnknownClassError, resolve_classes

    chosen: tuple[str, ...] | None = None
    if classes is not None:
        try:
            chosen = resolve_classes([c for c in classes.split(",") if c.strip()])
        except UnknownClassError as exc:
            raise click.BadParameter(str(exc), param_hint="--classes") from None
    elif name is not None:
        raise click.UsageError("--name names a class subset: give --classes too")
    entry = _subset_entry_to_register(chosen, name, registry) if chosen else None

    from segprep.trainids import (
        COARSE,
        FINE,
        TrainIdOptions,
        convert_annotations,
        find_annotations,
    )

    options = TrainIdOptions(source=source, classes=chosen, skip_existing=skip_existing)
    groups = (FINE, COARSE) if coarse else (FINE,)
    annotations = find_annotations(root, source, groups)
    suffix = "polygons.json" if source == "polygons" else "labelIds.png"
    if not annotations:
        fail([], f"{root}: no {' or '.join(f'{g}/SPLIT/CITY/*_{g}_{suffix}' for g in groups)} found (is ROOT the Cityscapes folder?)")
    if coarse and not any(a.relative_to(root).parts[0] == COARSE for a in annotations):
        fail([], f"{root}: --coarse, but no {COARSE}/SPLIT/CITY/*_{COARSE}_{suffix} found")
    report = convert_annotations(annotations, options, resolve_workers(workers), lambda: progress_bar(quiet))

    rows: dict[str, list[int]] = {}
    bad_paths = {bad.where for bad in report.bad}
    for annotation in annotations:
        folder = "/".join(annotation.relative_to(root).parts[:2])
        row = rows.setdefault(folder, [0, 0])
        row[0] += 1
        row[1] += str(annotation) in bad_paths
    print_table(f"trainIds under {root}", ["folder", "annotations", "bad"], [[k, *v] for k, v in rows.items()], quiet)
    if report.unchecked and not quiet:
        click.echo(
            f"note: {report.unchecked} annotation(s) have no {root / 'leftImg8bit'}/SPLIT/CITY/*_leftImg8bit.png to check "
            "their size against; their declared sizes were only held to at most 8192x8192 pixels",
            err=True,
        )
    if report.bad:
        fail([bad.line() for bad in report.bad], f"{len(report.bad)} of {report.found} annotation(s) could not be converted; the other {report.written} were written")
    if entry is not None:
        _register(entry, registry, quiet)
    if not quiet:
        click.echo(f"wrote {report.written} file(s), left {report.skipped} existing one(s) alone", err=True)


def _subset_entry_to_register(chosen: tuple[str, ...], name: str | None, registry: Path | None):  # type: ignore[no-untyped-def]
    """The subset's registry entry; None when the registry already holds it. A name taken by another dataset is a usage error."""
    from segprep.datasets.cityscapes import subset_entry

    entry = subset_entry(list(chosen), name)
    existing = load_registry_or_exit(registry).datasets.get(entry.name)
    if existing is None:
        return entry
    if existing.class_names != entry.class_names or existing.ignore_label != entry.ignore_label:
        raise click.UsageError(
            f"the registry already has a dataset {entry.name!r} with classes {existing.class_names}; choose another --name"
        )
    return None


def _register(entry, registry: Path | None, quiet: bool) -> None:  # type: ignore[no-untyped-def]
    from segprep.registry import register_dataset

    path = load_registry_or_exit(registry).path
    register_dataset(path, entry)
    if not quiet:
        click.echo(f"registered {entry.name} ({', '.join(entry.class_names)}) in {path}", err=True)
