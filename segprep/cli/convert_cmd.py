"""`segprep convert DATASET`: the whole chain for a built-in layout, then the registry update."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from segprep.cli.common import (
    fail,
    load_registry_or_exit,
    progress_bar,
    quiet_option,
    registry_option,
    report_notes,
    report_split_results,
    resolve_workers,
    workers_option,
)
from segprep.datasets.catalog import ADAPTERS, MAPPING_OPTIONS, OPTIONS, readers_of, takes
from segprep.datasets.adapter import LayoutOption

_CLICK_TYPES: dict[str, Any] = {
    "text": str,
    "int": int,
    "byte": click.IntRange(0, 255),
    "file": click.Path(exists=True, dir_okay=False, path_type=Path),
    "dir": click.Path(exists=True, file_okay=False, path_type=Path),
    "pairs": str,
}


def layout_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A click option for every layout option of the catalog, its help naming the layouts that read it."""
    for option in reversed(OPTIONS.values()):
        fn = _click_option(option)(fn)
    return fn


def _click_option(option: LayoutOption) -> Callable[..., Any]:
    readers = ", ".join(readers_of(option.dest))
    default = option.default if option.kind != "pairs" else ()
    return click.option(
        option.flag,
        option.dest,
        type=_CLICK_TYPES[option.kind],
        multiple=option.kind == "pairs",
        default=default,
        show_default=option.default is not None,
        help=f"{readers}: {option.help}",
    )


def _layouts_text() -> str:
    width = max(len(name) for name in ADAPTERS)
    return "\n".join(f"  {a.name.ljust(width)}  {a.summary}; splits: {a.splits}" for a in ADAPTERS.values())


@click.command(
    epilog="\b\nLayouts:\n" + _layouts_text() + """\n
\b
Examples:
  segprep convert camvid --root SegNet/CamVid --out tfrecords/camvid
  segprep convert pascal_voc_seg --root VOCdevkit --out tfrecords/voc --label-dir SegmentationClassAug
  segprep convert cityscapes --root cityscapes --out tfrecords/cityscapes
  segprep convert cityscapes --root cityscapes --out tfrecords/cityscapes_car --classes car
  segprep convert camvid --root SegNet/CamVid --out tfrecords/camvid5 --name camvid5 --merge flat=road,pavement --merge vehicle=car,bicyclist --drop pole
  segprep convert kitti_road --root data_road --out tfrecords/kitti_road
  segprep convert ade20k --root ADEChallengeData2016 --out tfrecords/ade20k
  segprep convert labelme --root voc_from_labelme --out tfrecords/mine --name mine
  segprep convert folder --root examples/shapes --out tfrecords/shapes --name shapes --split train=0.8 --split val=0.2
  segprep convert folder --root runway --out tfrecords/runway --name runway --label-colors kitti_road --void-color 0,0,0 --lists runway/lists
"""
)
@click.argument("dataset", type=click.Choice(list(ADAPTERS)))
@click.option("--root", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path), help="The dataset folder.")
@click.option("--out", "out_text", required=True, metavar="DIRECTORY", help="Where shards and manifests go (with --runner beam also a URL such as gs://bucket/folder).")
@click.option("--splits", default=None, help="Comma-separated splits to write (default: every split the layout has, see Layouts below).")
@click.option("--num-shards", type=click.IntRange(min=1), default=None, help="Shards per split (default: max(min(4, N), ceil(bytes/128 MiB))).")
@click.option("--skip-invalid", is_flag=True, help="Write the valid samples and record the bad ones in the manifest.")
@click.option("--prune", is_flag=True, help="Remove the splits an earlier run wrote in --out that this run does not write (without it such splits stop the run: they may no longer match the dataset).")
@click.option("--decode-images", is_flag=True, help="Also decode every image in full (PNG: inflate all image data; JPEG: full-size decode): catches damage inside PNG image data that the default chunk CRC check cannot see. CamVid: about 1.6x the time of the default checks.")
@layout_options
@click.option("--runner", type=click.Choice(["local", "beam"]), default="local", show_default=True, help="local: this machine's cores (resumable). beam: an Apache Beam pipeline, same files byte for byte (pip install 'segprep[beam]').")
@click.option("--beam-pipeline-options", default=None, metavar="K=V,...", help="Beam pipeline options, e.g. runner=DirectRunner,direct_num_workers=2 or runner=DataflowRunner,project=P,region=R,temp_location=gs://... (default: runner=DirectRunner).")
@workers_option
@quiet_option
@registry_option
def convert(
    dataset: str,
    root: Path,
    out_text: str,
    splits: str | None,
    num_shards: int | None,
    skip_invalid: bool,
    prune: bool,
    decode_images: bool,
    runner: str,
    beam_pipeline_options: str | None,
    workers: int | None,
    quiet: bool,
    registry: Path | None,
    **given: Any,
) -> None:
    """Convert a dataset in a known layout to sharded TFRecords and update the registry."""
    from segprep.convert import write_layout
    from segprep.datasets.adapter import ConvertContext, OptionError, PrepareError
    from segprep.errors import SegprepError
    from segprep.datasets.adapter import apply_to_plan
    from segprep.ops.class_mapping import ClassMappingError
    from segprep.paths import check_output_location
    from segprep.writer import WriterOptions

    adapter = ADAPTERS[dataset]
    source = click.get_current_context().get_parameter_source
    foreign = [OPTIONS[d].flag for d in given if d not in takes(adapter) and source(d) == ParameterSource.COMMANDLINE]
    if foreign:
        allowed = ", ".join(OPTIONS[d].flag for d in takes(adapter)) or "none"
        raise click.UsageError(f"{', '.join(foreign)}: not an option of {dataset} (its layout options: {allowed})")
    mapping_options = {d: given[d] for d in MAPPING_OPTIONS}
    mapped = bool(given["merge"] or given["drop"] or (given["classes"] and "classes" not in adapter.options))
    if given["name"] and "name" not in adapter.options and not mapped:
        raise click.UsageError(f"--name: {dataset} takes --name only with --classes, --merge or --drop (the new dataset's name)")
    if beam_pipeline_options is not None and runner != "beam":
        raise click.UsageError("--beam-pipeline-options needs --runner beam")
    remote = "://" in out_text
    if remote and runner != "beam":
        raise click.UsageError(f"--out {out_text}: a URL needs --runner beam")
    out_dir = Path(out_text)
    if not remote and out_dir.exists() and not out_dir.is_dir():
        raise click.BadParameter(f"{out_text!r} is a file, not a directory", param_hint="'--out'")
    wanted = [s.strip() for s in splits.split(",") if s.strip()] if splits else None
    reg = load_registry_or_exit(registry)
    if not remote:
        check_output_location(out_dir, [root], "--out")  # before any work (Cityscapes writes trainIds first)
    context = ConvertContext(root, wanted, {d: given[d] for d in adapter.options}, reg, resolve_workers(workers), lambda: progress_bar(quiet))
    try:
        plan = adapter.plan(context)
        plan = apply_to_plan(plan, reg, mapping_options, classes_taken="classes" in adapter.options)
    except (OptionError, ClassMappingError) as exc:
        raise click.UsageError(str(exc) if exc.option in str(exc) else f"{exc.option}: {exc}") from None
    except PrepareError as exc:
        fail(exc.lines, str(exc))
    except SegprepError as exc:  # LayoutError, RegistryError, AnnotationError...: a plain ValueError is a bug (exit 3)
        fail([], str(exc))
    layout = plan.layout
    if wanted:
        unknown = [s for s in wanted if s not in layout.splits]
        if unknown:
            raise click.UsageError(f"unknown split(s) {', '.join(unknown)}; {root} has {', '.join(layout.splits)}")
        layout.splits = {s: layout.splits[s] for s in wanted}
    report_notes(layout.notes)
    options = WriterOptions(out_dir=out_dir, num_shards=num_shards, skip_invalid=skip_invalid, decode_images=decode_images, prune=prune)
    inputs = [root, *plan.inputs]
    # New entries (and labelme's, whose classes may have changed) are registered only once every
    # split is written: write_layout(register=True) does it in the same registry write.
    if runner == "beam":
        results = _write_with_beam(plan, options, beam_pipeline_options, reg.path, inputs, out_text if remote else None, quiet)
    else:
        with progress_bar(quiet) as progress:
            results = write_layout(layout, plan.entry, options, context.workers, progress, reg.path, inputs=inputs, register=plan.register)
    report_split_results(results, out_text, quiet)


def _write_with_beam(plan: Any, options: Any, beam_options: str | None, registry: Path, inputs: list[Path], out_url: str | None, quiet: bool) -> Any:
    from segprep.beam_writer import BeamUnavailableError, pipeline_flags, write_layout_beam

    try:
        flags = pipeline_flags(beam_options)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if not quiet:
        click.echo(f"Beam pipeline: {' '.join(flags)}", err=True)
    try:
        return write_layout_beam(plan.layout, plan.entry, options, flags, registry, inputs=inputs, register=plan.register, out_url=out_url)
    except BeamUnavailableError as exc:
        fail([], str(exc))
