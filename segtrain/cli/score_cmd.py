"""`segtrain score PRED_DIR GT_DIR`: the eval metrics for prediction PNGs made by any model."""

from __future__ import annotations

from pathlib import Path

import click

from segprep.cli.common import registry_option
from segtrain.cli.common import emit_report, fail_one, refuse_overwriting_inputs, registry_entry, registry_path


@click.command(epilog="""\b
Examples:
  segtrain score predictions/ VOC2012/SegmentationClassRaw --dataset pascal_voc_seg --json val.json
  segtrain score road_probabilities/ gt_index/ --dataset kitti_road --probabilities
  segtrain score camvid_pred/ camvid_gt/ --dataset camvid --merge flat=road,pavement --merge vehicle=car,bicyclist
  segtrain score camvid_pred/ camvid5_gt/ --dataset camvid --merge flat=road,pavement --merged-truth
""")
@click.argument("pred_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("gt_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--dataset", required=True)
@click.option("--split", default="", help="Name of the split for the report.")
@click.option("--probabilities", is_flag=True, help="Predictions are 8-bit road probabilities (kitti_road style), not class ids.")
@click.option("--merge", "merge", multiple=True, metavar="NEW=CLASS,...", help="Score in merged classes (as segprep convert --merge): the predictions hold --dataset's class ids; the confusion matrix is summed into the groups, the others keep their names.")
@click.option("--merged-truth", is_flag=True, help="With --merge: the ground truth already holds the merged class ids (a dataset converted with the same --merge); only the predictions are merged.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@registry_option
def score(pred_dir, gt_dir, dataset, split, probabilities, merge, merged_truth, json_path, registry):  # type: ignore[no-untyped-def]
    """The eval metrics for prediction PNGs made by any model, against index-PNG ground truth."""
    from segtrain.evaluate import Accumulator, score_folders
    from segtrain.files import regular_problem

    from segprep.ops.class_mapping import ClassMappingError, mapping_of_entry, merge_confusion, parse_merge

    entry = registry_entry(dataset, registry)
    mapping = None
    if merged_truth and not merge:
        raise click.UsageError("--merged-truth needs --merge")
    if merge:
        if probabilities:
            raise click.UsageError("--merge and --probabilities exclude each other")
        try:
            mapping = mapping_of_entry(entry, merges=parse_merge(merge))
        except ClassMappingError as exc:
            raise click.UsageError(str(exc)) from None

    truth: dict[str, Path] = {}
    irregular: list[str] = []  # a FIFO or folder named x.png: never opened, reported as score's other problems are
    for path in sorted(gt_dir.glob("*.png")):
        problem = regular_problem(path)
        if problem is None:
            truth[path.stem] = path
        else:
            irregular.append(f"{problem}; not scored")
    if not truth and not irregular:
        fail_one(f"{gt_dir}: no ground-truth PNGs")
    refuse_overwriting_inputs(json_path, [*truth.values(), *pred_dir.glob("*.png"), registry_path(registry)], ledger_now=False)
    if probabilities and entry.num_classes != 2:
        raise click.UsageError("--probabilities is for 2-class datasets")
    accumulator = Accumulator(entry.num_classes, entry.ignore_label)
    problems = irregular + score_folders(pred_dir, truth, accumulator, probabilities)
    if problems:
        for line in problems:
            click.echo(f"error: {line}", err=True)
        fail_one(f"{len(problems)} prediction(s) missing or unusable in {pred_dir}")
    names = entry.class_names
    if mapping is not None:
        # Merge the K x K confusion matrix (rows and columns of each group summed), never the pixels:
        # merged ground truth already has its rows in the merged classes, so only the columns are merged.
        rows = list(range(entry.num_classes)) if merged_truth else list(mapping.ids)
        try:
            merged = merge_confusion(accumulator.confusion, list(mapping.ids), mapping.num_classes, rows=rows)
        except ValueError as exc:
            fail_one(f"{gt_dir}: {exc} (--merged-truth: is the ground truth merged with the same --merge?)")
        images = accumulator.images
        accumulator = Accumulator(mapping.num_classes, entry.ignore_label)  # the same report, in the merged classes
        accumulator.confusion, accumulator.images = merged, images
        names = list(mapping.names)
    emit_report(accumulator.report(dataset, split or gt_dir.name, names), json_path)
