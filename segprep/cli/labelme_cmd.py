"""`segprep labelme SRC OUT --labels FILE`: labelme JSON annotations -> a VOC-style segmentation folder.

Only click is imported here; the work (numpy, PIL) is imported when the command runs so that
`segprep --help` stays fast.
"""

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


@click.command(
    "labelme",
    epilog="""\b
Examples:
  segprep labelme annotations voc_mine --labels labels.txt
      # annotations/*.json (+ their images) -> voc_mine/{JPEGImages,SegmentationClass,
      #   SegmentationClassVisualization,ImageSets/Segmentation}, class_names.txt
  segprep labelme annotations voc_mine --labels labels.txt --val-fraction 0.2 --seed 3 --overwrite
  segprep convert labelme --root voc_mine --out tfrecords/mine --name mine

\b
labels.txt, one name a line (labelme's convention):
  __ignore__      optional: shapes with this label become the ignore label (--ignore-label)
  _background_    class 0 (required, first class)
  cat             class 1
  dog             class 2
""",
)
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--labels", "labels_file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Labels file: __ignore__ (optional), _background_, then one class a line.")
@click.option("--ignore-label", type=click.IntRange(0, 255), default=255, show_default=True, help="Value stored for __ignore__ shapes (must not be a class id).")
@click.option("--colormap", default="pascal", show_default=True, help="Colormap of the visualizations (a built-in name).")
@click.option("--val-fraction", type=float, default=0.1, show_default=True, help="Share of the files in val.txt (0 for train only); the rest is train.txt.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the train/val shuffle.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it is an export segprep labelme wrote (only once every file converted); any other folder is refused.")
@workers_option
@quiet_option
def labelme(
    src: Path,
    out: Path,
    labels_file: Path,
    ignore_label: int,
    colormap: str,
    val_fraction: float,
    seed: int,
    overwrite: bool,
    workers: int | None,
    quiet: bool,
) -> None:
    """Rasterize labelme JSON files (SRC/*.json) into a VOC-style dataset in OUT.

    Masks are pixel-identical to labelme's own shapes_to_label: every shape type, drawn in file
    order. Images come from imageData or imagePath (relative to the JSON, Windows backslashes
    too), EXIF orientation applied as labelme does. Any bad file (unknown label, broken JSON,
    missing image, size mismatch, ...) is reported and nothing is written. imageHeight/imageWidth and
    every mask bitmap are checked against the image's own size before anything is drawn; a FIFO or
    folder named like a JSON file, an image or the labels file is an error naming it.

    OUT may not be, lie inside or contain SRC, the labels file or an image that a JSON's
    imagePath points to. --overwrite deletes only what this command wrote before: OUT must hold
    its segprep_labelme.json and nothing but the files listed there.
    """
    from segprep.labelme_export import (
        ExportDataError,
        ExportOptions,
        ExportUsageError,
        clean_killed_runs,
        discard_staging,
        export_labelme,
        iter_summary,
        read_labels_file,
    )
    from segprep.parallel import OrderedPool

    clean_killed_runs(out)  # first: a killed run may have moved the previous export aside
    try:
        options = ExportOptions(
            src=src,
            out=out,
            labels_file=labels_file,
            labels=read_labels_file(labels_file),
            ignore_label=ignore_label,
            colormap=colormap,
            val_fraction=val_fraction,
            seed=seed,
            overwrite=overwrite,
        )
        options.validate()
    except ExportUsageError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        with OrderedPool(resolve_workers(workers)) as pool, progress_bar(quiet) as progress:
            result = export_labelme(options, pool, progress)
    except ExportDataError as exc:
        fail([], str(exc))
    finally:
        discard_staging(out)  # again, now that no worker can still be writing into it
    bad = result.bad
    if bad:
        fail([o.line() for o in bad], f"{len(bad)} of {len(result.outcomes)} labelme file(s) could not be converted; nothing written to {out}")
    print_table(f"labelme -> {out}", ["", "count"], list(iter_summary(result)), quiet)
