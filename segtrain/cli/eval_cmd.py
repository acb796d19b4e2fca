"""`segtrain eval`: full-resolution evaluation of a checkpoint on a split of the registry's records."""

from __future__ import annotations

from pathlib import Path

import click

from segprep.cli.common import registry_option
from segtrain.cli.common import (
    check_labels,
    data_dir,
    emit_report,
    fail_one,
    load_predictor,
    model_input_files,
    model_root,
    model_source_options,
    refuse_overwriting_inputs,
    registry_entry,
    registry_path,
    scales_option,
    start_tensorflow,
)


@click.command("eval", epilog="""\b
Examples:
  segtrain eval --dataset camvid --checkpoint runs/camvid --split test --json test.json
  segtrain eval --dataset kitti_road --checkpoint runs/road --split val --scales 0.75,1,1.25 --flip
  segtrain eval --dataset camvid --model exported/camvid_int8.tflite --split val --json int8.json
""")
@click.option("--dataset", required=True)
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None)
@model_source_options
@click.option("--split", default="val", show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write the JSON document of docs/metrics.md here ('-' for stdout); never over an input file or a file eval did not write.")
@click.option("--scales", default="1", show_default=True, callback=scales_option, help="Comma-separated inference scales (averaged).")
@click.option("--flip", is_flag=True, help="Also average the left-right flipped image.")
@registry_option
def eval_cmd(dataset, data, checkpoint, model_path, split, json_path, scales, flip, registry):  # type: ignore[no-untyped-def]
    """Full-resolution evaluation: mIoU, per-class IoU, pixel accuracy (and KITTI road measures for 2 classes), ms/image.

    Of a checkpoint, or of an export (--model: a SavedModel or a .tflite model, run as it would be
    deployed; a TFLite model resizes each image to its input size and the probabilities back, and
    takes --flip but no other scale), so an export's cost in accuracy and speed is one command.
    Images smaller than the output stride are padded and their predictions cropped back.
    """
    model_root(checkpoint, model_path)
    entry = registry_entry(dataset, registry)
    folder = data_dir(entry, data, split, registry)
    check_labels(entry, folder, split, registry, training=False)
    start_tensorflow()
    from segtrain.data import record_files, require_records
    from segtrain.evaluate import evaluate_records

    files = record_files(folder, split)
    inputs = [*map(Path, files), folder / f"{split}.manifest.json", *model_input_files(checkpoint, model_path), registry_path(registry)]
    refuse_overwriting_inputs(json_path, inputs)  # before the model is loaded
    require_records(files, folder, split)
    predict, labels = load_predictor(checkpoint, model_path, scales, flip)
    if labels.num_classes != entry.num_classes:
        fail_one(f"{checkpoint or model_path}: the model predicts {labels.num_classes} classes, {dataset} has {entry.num_classes}")
    accumulator = evaluate_records(predict, files, folder, split, entry.num_classes, entry.ignore_label)
    emit_report(accumulator.report(dataset, split, entry.class_names), json_path)
