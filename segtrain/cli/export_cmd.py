"""`segtrain export`: a checkpoint as a SavedModel (uint8 images of any size) or a TFLite model (one fixed size)."""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from segprep.cli.common import registry_option
from segtrain.cli.common import checkpoint_root, data_dir, pair, registry_entry, start_tensorflow

QUANTIZE_MODES = ("none", "fp16", "int8")  # segtrain.export.QUANTIZE_MODES, spelled out so --help needs no TensorFlow


@click.command(epilog="""\b
Examples:
  segtrain export --checkpoint runs/camvid --out exported/camvid
  segtrain export --checkpoint runs/camvid --format tflite --out camvid.tflite
  segtrain export --checkpoint runs/camvid --format tflite --quantize int8 --input-size 360,480 --out camvid_int8.tflite
""")
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path), help="A fit logdir (latest checkpoint), a checkpoint prefix or one of its files.")
@click.option("--out", "out_path", required=True, type=click.Path(path_type=Path), help="saved_model: a new or empty folder, or an earlier export (replaced); tflite: a file. Outside the logdir.")
@click.option("--format", "export_format", type=click.Choice(["saved_model", "tflite"]), default="saved_model", show_default=True)
@click.option("--quantize", type=click.Choice(QUANTIZE_MODES), default="none", show_default=True, help="tflite: none (float32), fp16 (float16 weights, half the size) or int8 (integer weights and activations, calibrated on --representative-count train images).")
@click.option("--input-size", default=None, metavar="H,W", help="tflite: the one image size the model takes (default: the training crop recorded in segtrain.json).")
@click.option("--representative-count", type=click.IntRange(min=1), default=100, show_default=True, help="tflite int8: how many images of the dataset's train split calibrate the quantization.")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None, help="tflite int8: the records folder (default: the registry's data_dir of the model's dataset).")
@registry_option
def export(checkpoint, out_path, export_format, quantize, input_size, representative_count, data, registry):  # type: ignore[no-untyped-def]
    """A model that leaves segtrain: uint8 RGB images -> {classes, probabilities}.

    \b
    saved_model: signature serving_default, images uint8 [B, H, W, 3] of any size; written into a
    hidden folder beside --out and moved into place when complete.
    tflite: images uint8 [1, H, W, 3] at --input-size, the network's resize of its logits to the
    input inside (as DeepLab's exported graphs do); the segtrain document (classes, colours) is
    embedded as TFLite metadata. A model TFLite cannot take is refused naming the op; one that
    still reads variables or gives non-finite outputs is never written. `segtrain eval --model`
    and `segtrain predict --model` run either export.
    """
    given = click.get_current_context().get_parameter_source
    tflite_only = [flag for name, flag in (("quantize", "--quantize"), ("input_size", "--input-size"), ("representative_count", "--representative-count"), ("data", "--data"))
                   if given(name) == ParameterSource.COMMANDLINE]
    if export_format != "tflite" and tflite_only:
        raise click.UsageError(f"{', '.join(tflite_only)}: only for --format tflite")
    from segprep.paths import check_output_location

    check_output_location(out_path, [checkpoint_root(checkpoint)], "--out")
    if export_format == "tflite":
        _tflite(checkpoint, out_path, quantize, input_size, representative_count, data, registry)
    else:
        _saved_model(checkpoint, out_path)


def _saved_model(checkpoint: Path, out_dir: Path) -> None:
    from segtrain.outputs import check_export_target

    check_export_target(out_dir)
    start_tensorflow()
    from segtrain.checkpoints import load_model, resolve_checkpoint
    from segtrain.export import install_saved_model

    model, run = load_model(checkpoint)
    install_saved_model(model, out_dir, {"tool": "segtrain export", "checkpoint": resolve_checkpoint(checkpoint)[1], **run})
    click.echo(f"SavedModel written to {out_dir} (signature serving_default: images uint8 [B, H, W, 3] -> classes, probabilities)")


def _tflite(checkpoint: Path, out_path: Path, quantize: str, input_size: str | None, count: int, data: Path | None, registry: Path | None) -> None:
    from segtrain.outputs import check_file_export_target

    check_file_export_target(out_path)
    start_tensorflow()
    from segtrain.checkpoints import load_model, resolve_checkpoint
    from segtrain.export import write_tflite

    model, run = load_model(checkpoint)
    size = pair(input_size, "--input-size") if input_size else run.get("crop_size")
    if size is None:
        raise click.UsageError(f"{checkpoint}: its segtrain.json records no training crop (an import?): give --input-size H,W")
    representative = _calibration_images(run, count, data, registry) if quantize == "int8" else None
    metadata = {"tool": "segtrain export", "checkpoint": resolve_checkpoint(checkpoint)[1], **run}
    result = write_tflite(model, out_path, size, quantize, representative, metadata)
    click.echo(f"TFLite model written to {out_path} ({quantize}, input {result.input_size[0]}x{result.input_size[1]}, {result.size_bytes / 1e6:.2f} MB, ops: {', '.join(result.ops)})")


def _calibration_images(run: dict, count: int, data: Path | None, registry: Path | None) -> list:
    """The first `count` images of the train split of the model's dataset (int8 calibration)."""
    from segtrain.data import first_images, record_files

    if not run.get("dataset"):
        raise click.UsageError("int8 calibrates on the model's dataset, and its segtrain.json names none (an import without --dataset?)")
    entry = registry_entry(run["dataset"], registry)
    folder = data_dir(entry, data, "train", registry)
    return first_images(record_files(folder, "train"), count)
