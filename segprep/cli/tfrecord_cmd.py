"""`segprep tfrecord`: the sharded writer for any lists of image/label pairs."""

from __future__ import annotations

from pathlib import Path

import click

from segprep.cli.common import (
    fail,
    load_registry_or_exit,
    progress_bar,
    quiet_option,
    registry_option,
    report_split_results,
    resolve_workers,
    workers_option,
)


@click.command(
    epilog="""\b
Examples:
  segprep tfrecord lists/train.txt lists/val.txt --dataset camvid --out tfrecords/camvid --root /data/CamVid
  segprep tfrecord ImageSets/Segmentation/train.txt --image-dir JPEGImages --label-dir SegmentationClassRaw \\
      --dataset pascal_voc_seg --out tfrecords/voc
"""
)
@click.argument("lists", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--dataset", required=True, help="Registry name: its class count and ignore label validate the labels.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Where shards and manifests go.")
@click.option("--root", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None, help="Base of relative paths in IMAGE LABEL lines (default: the list's folder).")
@click.option("--image-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None, help="For lists of stems: the images.")
@click.option("--label-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None, help="For lists of stems: the labels ({stem}.png).")
@click.option("--num-shards", type=click.IntRange(min=1), default=None, help="Shards per split (default: max(min(4, N), ceil(bytes/128 MiB))).")
@click.option("--skip-invalid", is_flag=True, help="Write the valid samples and record the bad ones in the manifest.")
@click.option("--prune", is_flag=True, help="Remove the splits an earlier run wrote in --out that these lists do not write (without it such splits stop the run).")
@click.option("--decode-images", is_flag=True, help="Also decode every image in full (PNG: inflate all image data; JPEG: full-size decode): catches damage inside PNG image data that the default chunk CRC check cannot see. CamVid: about 1.6x the time of the default checks.")
@workers_option
@quiet_option
@registry_option
def tfrecord(
    lists: tuple[Path, ...],
    dataset: str,
    out_dir: Path,
    root: Path | None,
    image_dir: Path | None,
    label_dir: Path | None,
    num_shards: int | None,
    skip_invalid: bool,
    prune: bool,
    decode_images: bool,
    workers: int | None,
    quiet: bool,
    registry: Path | None,
) -> None:
    """Write one split per list file (train.txt -> train) as sharded TFRecords.

    A list holds `IMAGE LABEL` lines, or one stem per line with --image-dir and --label-dir.
    Labels may be index PNGs or palette PNGs; every pixel is checked against the dataset's classes.
    """
    from segprep.convert import write_layout
    from segprep.datasets.base import LayoutError
    from segprep.datasets.lists import load_lists
    from segprep.registry import RegistryError
    from segprep.writer import WriterOptions

    reg = load_registry_or_exit(registry)
    try:
        entry = reg.get(dataset)
        layout = load_lists(list(lists), root, image_dir, label_dir)
    except (LayoutError, RegistryError) as exc:
        fail([], str(exc))
    options = WriterOptions(out_dir=out_dir, num_shards=num_shards, skip_invalid=skip_invalid, decode_images=decode_images, prune=prune)
    with progress_bar(quiet) as progress:
        inputs = [*lists, *(p for p in (root, image_dir, label_dir) if p is not None)]
        results = write_layout(layout, entry, options, resolve_workers(workers), progress, reg.path, inputs=inputs)
    report_split_results(results, out_dir, quiet)
