"""`segprep remove-colormap SRC OUT`: palette or colour-coded label PNGs -> raw index PNGs."""

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
    "remove-colormap",
    epilog="""\b
Examples:
  segprep remove-colormap VOC2012/SegmentationClass VOC2012/SegmentationClassRaw
  segprep remove-colormap kitti/gt_colour out --colormap kitti_road      # black (don't care) -> 255
  segprep remove-colormap camvid_colour out --colormap camvid --unknown ignore
""",
)
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--colormap", default=None, help="Built-in colormap name for RGB labels (pascal, cityscapes, ade20k, camvid, kitti_road, mapillary_vistas).")
@click.option("--unknown", type=click.Choice(["error", "ignore"]), default="error", show_default=True, help="Colours not in the colormap: an error, or the ignore label.")
@click.option("--ignore-label", type=click.IntRange(0, 255), default=255, show_default=True, help="Value for the colormap's void colour and for --unknown ignore.")
@workers_option
@quiet_option
def remove_colormap(src: Path, out: Path, colormap: str | None, unknown: str, ignore_label: int, workers: int | None, quiet: bool) -> None:
    """Write raw index PNGs: palette images keep their indices (255 stays 255), RGB goes through --colormap.

    SRC is a PNG file or a folder of them; OUT is a file or a folder to match. Nothing is written
    unless every file converts.

    OUT may not be SRC, lie inside it or contain it. A file already in OUT is replaced only when
    this command wrote it (recorded with its sha256 in OUT's .segprep-remove-colormap.json) or
    holds the very bytes it would get; any other file is left alone and the run is refused.
    """
    from segprep.colormaps import ColormapError, builtin_colormap, void_color
    from segprep.ops.remove_colormap import ColormapRemoval, convert_file, prepare_output, write_outputs
    from segprep.parallel import OrderedPool

    how = ColormapRemoval(None, unknown_to_ignore=unknown == "ignore", ignore_label=ignore_label)
    if colormap is not None:
        try:
            colors = tuple(tuple(int(c) for c in rgb) for rgb in builtin_colormap(colormap))
            void = void_color(colormap)
        except ColormapError as exc:
            raise click.BadParameter(str(exc), param_hint="--colormap") from None
        extra = (((void, ignore_label),) if void is not None else ())
        how = ColormapRemoval(colors, extra, unknown == "ignore", ignore_label)  # type: ignore[arg-type]
    if src.is_dir() and out.exists() and not out.is_dir():
        raise click.UsageError(f"{out} is a file; OUT must be a folder when SRC is a folder")
    if not src.is_dir() and out.is_dir():
        raise click.UsageError(f"{out} is a folder; OUT must be a file name when SRC is a file")
    sources = sorted(p for p in src.iterdir() if p.suffix.lower() == ".png") if src.is_dir() else [src]
    if not sources:
        fail([], f"{src}: no .png files")
    targets = [out / p.name for p in sources] if src.is_dir() else [out]
    prepare_output(src, out, targets)
    converted: dict[Path, bytes] = {}
    errors: list[str] = []
    counts: dict[str, int] = {}
    with OrderedPool(resolve_workers(workers)) as pool, progress_bar(quiet) as progress:
        advance = progress.task("remove-colormap", len(sources))
        for target, (path, png, what) in zip(targets, pool.imap(convert_file, [(str(p), how) for p in sources], len(sources))):
            advance(1)
            if png is None:
                errors.append(f"{path}: {what}")
            else:
                converted[target] = png
                counts[what] = counts.get(what, 0) + 1
    if errors:
        fail(errors, f"{len(errors)} of {len(sources)} label(s) cannot be converted; nothing written")
    write_outputs(converted)
    print_table(f"index PNGs in {out}", ["source", "files"], [[k, v] for k, v in sorted(counts.items())], quiet)
