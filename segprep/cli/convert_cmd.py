"""`segprep convert DATASET`: the whole chain for a built-in layout, then the registry update."""

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

LAYOUTS = ("pascal_voc_seg", "cityscapes", "camvid", "kitti_road", "ade20k", "labelme", "folder")


@click.command(
    epilog="""\b
Examples:
  segprep convert camvid --root SegNet/CamVid --out tfrecords/camvid
  segprep convert pascal_voc_seg --root VOCdevkit --out tfrecords/voc --label-dir SegmentationClassAug
  segprep convert cityscapes --root cityscapes --out tfrecords/cityscapes
  segprep convert cityscapes --root cityscapes --out tfrecords/cityscapes_car --classes car
  segprep convert kitti_road --root data_road --out tfrecords/kitti_road
  segprep convert ade20k --root ADEChallengeData2016 --out tfrecords/ade20k
  segprep convert labelme --root voc_from_labelme --out tfrecords/mine --name mine
  segprep convert folder --root examples/shapes --out tfrecords/shapes --name shapes --split train=0.8 --split val=0.2
"""
)
@click.argument("dataset", type=click.Choice(LAYOUTS))
@click.option("--root", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path), help="The dataset folder.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Where shards and manifests go.")
@click.option("--splits", default=None, help="Comma-separated splits to write (default: all the layout has; camvid: train,val,test; add trainval).")
@click.option("--num-shards", type=click.IntRange(min=1), default=None, help="Shards per split (default: max(min(4, N), ceil(bytes/128 MiB))).")
@click.option("--skip-invalid", is_flag=True, help="Write the valid samples and record the bad ones in the manifest.")
@click.option("--decode-images", is_flag=True, help="Also decode every image in full (PNG: inflate all image data; JPEG: full-size decode): catches damage inside PNG image data that the default chunk CRC check cannot see. CamVid: about 1.6x the time of the default checks.")
@click.option("--label-dir", default="SegmentationClass", show_default=True, help="pascal_voc_seg: label folder (e.g. SegmentationClassAug).")
@click.option("--name", default=None, help="folder, labelme: the dataset's registry name (registered if new); cityscapes --classes: default cityscapes_<classes>.")
@click.option("--classes", default=None, help="cityscapes: a subset dataset of these classes (e.g. car or person,rider): 1..k, all others 0.")
@click.option("--split", "split_specs", multiple=True, help="folder: NAME=FRACTION, repeatable (default train=0.9, val=0.1).")
@click.option("--seed", default=0, show_default=True, help="folder, kitti_road: seed of the random split.")
@click.option("--class-names", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None, help="folder: class names, one a line (default ROOT/class_names.txt).")
@click.option("--ignore-label", type=click.IntRange(0, 255), default=255, show_default=True, help="folder: ignore label of a new dataset.")
@click.option("--colormap", default="pascal", show_default=True, help="folder, labelme: colormap of a new dataset.")
@workers_option
@quiet_option
@registry_option
def convert(
    dataset: str,
    root: Path,
    out_dir: Path,
    splits: str | None,
    num_shards: int | None,
    skip_invalid: bool,
    decode_images: bool,
    label_dir: str,
    name: str | None,
    classes: str | None,
    split_specs: tuple[str, ...],
    seed: int,
    class_names: Path | None,
    ignore_label: int,
    colormap: str,
    workers: int | None,
    quiet: bool,
    registry: Path | None,
) -> None:
    """Convert a dataset in a known layout to sharded TFRecords and update the registry."""
    from segprep.convert import write_layout
    from segprep.paths import check_output_location
    from segprep.datasets.base import LayoutError
    from segprep.registry import RegistryError
    from segprep.writer import WriterOptions

    wanted = [s.strip() for s in splits.split(",") if s.strip()] if splits else None
    reg = load_registry_or_exit(registry)
    inputs = [root]
    check_output_location(out_dir, inputs, "--out")  # before any work (Cityscapes writes trainIds first)
    try:
        # New entries (and labelme's, whose classes may have changed) are registered only once
        # every split is written: write_layout(register=True) does it in the same registry write.
        if dataset == "folder":
            layout, entry = _folder_layout(root, reg, name, split_specs, seed, class_names, ignore_label, colormap)
            register = entry.name not in reg.datasets
            inputs += [class_names] if class_names else []
        elif dataset == "labelme":
            layout, entry = _labelme_layout(root, reg, name, colormap, wanted)
            register = True
        elif dataset == "cityscapes":
            layout, entry = _cityscapes_layout(root, reg, name, classes, wanted, workers, quiet)
            register = entry.name not in reg.datasets
        else:
            entry = reg.get(dataset)
            layout = _builtin_layout(dataset, root, wanted, label_dir, seed)
            register = False
    except (LayoutError, RegistryError, ValueError) as exc:
        fail([], str(exc))
    if wanted:
        unknown = [s for s in wanted if s not in layout.splits]
        if unknown:
            raise click.UsageError(f"unknown split(s) {', '.join(unknown)}; {root} has {', '.join(layout.splits)}")
        layout.splits = {s: layout.splits[s] for s in wanted}
    options = WriterOptions(out_dir=out_dir, num_shards=num_shards, skip_invalid=skip_invalid, decode_images=decode_images)
    with progress_bar(quiet) as progress:
        results = write_layout(layout, entry, options, resolve_workers(workers), progress, reg.path, inputs=inputs, register=register)
    report_split_results(results, out_dir, quiet)


def _folder_layout(root, reg, name, split_specs, seed, class_names, ignore_label, colormap):  # type: ignore[no-untyped-def]
    """The folder adapter's layout and the registry entry it is written under (new datasets get one)."""
    from segprep.datasets.base import LayoutError
    from segprep.datasets.folder import load_folder
    from segprep.ops.labels import LabelPolicy
    from segprep.registry import DatasetEntry, validate_entry
    from segprep.splits import parse_fractions

    if not name:
        raise click.UsageError("convert folder needs --name (the dataset's registry name)")
    fractions = parse_fractions(list(split_specs) or ["train=0.9", "val=0.1"])
    if name in reg.datasets:
        entry = reg.get(name)
    else:
        names_file = class_names or root / "class_names.txt"
        if not names_file.is_file():
            raise click.UsageError(f"{name!r} is not in the registry: give --class-names FILE (or put class_names.txt in {root})")
        try:
            text = names_file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise LayoutError(f"{names_file}: class names file is not UTF-8 text") from None
        names = [line.strip() for line in text.splitlines() if line.strip()]
        raw = DatasetEntry(name, len(names), ignore_label, colormap, names).to_dict()
        entry = validate_entry(name, raw, names_file)
    policy = LabelPolicy(num_classes=entry.num_classes, ignore_label=entry.ignore_label)
    return load_folder(root, policy, fractions, seed), entry


def _builtin_layout(dataset: str, root: Path, wanted: list[str] | None, label_dir: str, seed: int):  # type: ignore[no-untyped-def]
    """The adapter of a built-in layout whose registry entry is fixed."""
    if dataset == "camvid":
        from segprep.datasets.camvid import load_camvid

        return load_camvid(root, wanted)
    if dataset == "kitti_road":
        from segprep.datasets.kitti_road import load_kitti_road

        return load_kitti_road(root, wanted, seed)
    if dataset == "ade20k":
        from segprep.datasets.ade20k import load_ade20k

        return load_ade20k(root, wanted)
    from segprep.datasets.pascal_voc import load_pascal_voc

    return load_pascal_voc(root, label_dir, wanted)


def _labelme_layout(root, reg, name, colormap, wanted):  # type: ignore[no-untyped-def]
    """The VOC layout `segprep labelme` wrote, under the registry name the user gives."""
    from segprep.datasets.labelme import load_labelme_voc
    from segprep.registry import DatasetEntry, validate_entry

    if not name:
        raise click.UsageError("convert labelme needs --name (the dataset's registry name)")
    layout, names = load_labelme_voc(root, wanted)
    previous = reg.datasets.get(name)
    raw = DatasetEntry(name, len(names), layout.policy.ignore_label, colormap, names).to_dict()
    if previous is not None:
        raw["class_weights"] = previous.class_weights if previous.class_names == names else None
    return layout, validate_entry(name, raw, root / "class_names.txt")


def _cityscapes_layout(root, reg, name, classes, wanted, workers, quiet):  # type: ignore[no-untyped-def]
    """Cityscapes with its trainIds (made from the polygons where missing), optionally as a class subset."""
    from segprep.datasets.cityscapes import load_cityscapes, subset_entry
    from segprep.ops.cityscapes_labels import UnknownClassError, resolve_classes
    from segprep.trainids import generate_missing_trainids

    chosen = None
    if classes is not None:
        try:
            chosen = list(resolve_classes(classes.split(",")))
        except UnknownClassError as exc:
            raise click.BadParameter(str(exc), param_hint="--classes") from None
    bad = generate_missing_trainids(root, resolve_workers(workers), quiet)
    if bad:
        fail(bad, f"{len(bad)} Cityscapes annotation(s) could not be turned into trainIds; nothing written")
    layout = load_cityscapes(root, wanted, chosen)
    entry = subset_entry(chosen, name) if chosen else reg.get("cityscapes")
    if chosen and entry.name in reg.datasets:
        entry = reg.get(entry.name)
    return layout, entry
