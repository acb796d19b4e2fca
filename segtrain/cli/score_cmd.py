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
""")
@click.argument("pred_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("gt_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--dataset", required=True)
@click.option("--split", default="", help="Name of the split for the report.")
@click.option("--probabilities", is_flag=True, help="Predictions are 8-bit road probabilities (kitti_road style), not class ids.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@registry_option
def score(pred_dir, gt_dir, dataset, split, probabilities, json_path, registry):  # type: ignore[no-untyped-def]
    """The eval metrics for prediction PNGs made by any model, against index-PNG ground truth."""
    from segtrain.evaluate import Accumulator, score_folders
    from segtrain.files import regular_problem

    entry = registry_entry(dataset, registry)

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
    emit_report(accumulator.report(dataset, split or gt_dir.name, entry.class_names), json_path)
