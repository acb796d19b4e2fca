"""segtrain: fit / eval / score / predict / export DeepLabv3+ on segprep's TFRecords (SPEC §5).

A thin click layer: it reads the registry (the source of classes, ignore label, colormap, class
weights and split sizes), parses options into the dataclasses of the modules that do the work,
and reports. TensorFlow is imported only inside commands, so `segtrain --help` stays instant.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from segprep.cli.common import fail, registry_option


def _fail(message: str) -> None:
    fail([], message)


def _entry(dataset: str, registry: Path | None):  # type: ignore[no-untyped-def]
    from segprep.registry import RegistryError, load_registry, resolve_registry_path

    try:
        return load_registry(resolve_registry_path(registry)).get(dataset)
    except RegistryError as exc:
        _fail(str(exc))


def _data_dir(entry, data: Path | None, split: str) -> Path:  # type: ignore[no-untyped-def]
    """The records folder (--data, else the registry's data_dir); the split must be one the registry knows."""
    if split not in entry.splits:
        known = ", ".join(entry.splits) or "none (convert it with segprep first)"
        _fail(f"dataset {entry.name!r} has no split {split!r} in the registry (known: {known})")
    folder = data or (Path(entry.data_dir) if entry.data_dir else None)
    if folder is None:
        raise click.UsageError(f"no --data and no data_dir for {entry.name!r} in the registry")
    return folder


def _colormap(entry) -> list[list[int]]:  # type: ignore[no-untyped-def]
    from segprep.colormaps import resolve_colormap

    return resolve_colormap(entry.colormap).tolist()


def _pair(text: str) -> tuple[int, int]:
    parts = text.replace("x", ",").split(",")
    try:
        height, width = (int(p) for p in parts) if len(parts) == 2 else (int(parts[0]),) * 2
    except ValueError:
        raise click.BadParameter(f"expected H,W or N, got {text!r}") from None
    return height, width


@contextmanager
def _progress(total: int, batch_size: int, every: int) -> Iterator[Callable[[int, float, float], None]]:
    """A rich bar with loss, step time and images/s on a terminal; otherwise a line every `every` steps."""
    if not sys.stderr.isatty():
        def line(step: int, loss: float, seconds: float) -> None:
            if step % every == 0 or step == total:
                click.echo(f"step {step}/{total}  loss {loss:.4f}  {seconds:.3f} s/step  {batch_size / seconds:.1f} images/s", err=True)

        yield line
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("fit"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]:.4f}  {task.fields[seconds]:.3f} s/step  {task.fields[rate]:.1f} images/s"), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task("fit", total=total, loss=float("nan"), seconds=0.0, rate=0.0)

        def update(step: int, loss: float, seconds: float) -> None:
            progress.update(task, completed=step, loss=loss, seconds=seconds, rate=batch_size / seconds)

        yield update


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
def main() -> None:
    """Train and evaluate DeepLabv3+ (TensorFlow 2 / Keras 3) on segprep's TFRecords.

    \b
    Example:
      segtrain fit --dataset camvid --logdir runs/camvid --steps 2000 --crop-size 360,480
      segtrain eval --dataset camvid --checkpoint runs/camvid --split test --json test.json
    """


@main.command(epilog="""\b
Examples:
  segtrain fit --dataset camvid --logdir runs/camvid --steps 3000 --batch-size 8 --crop-size 360,480
  segtrain fit --dataset cityscapes_car --logdir runs/car --init-checkpoint runs/cityscapes --init-mode all-but-logits
""")
@click.option("--dataset", required=True, help="Registry name of the dataset.")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None, help="Records folder (default: the registry's data_dir).")
@click.option("--logdir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Checkpoints, TensorBoard events; a re-run resumes from it.")
@click.option("--split", default="train", show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=1000, show_default=True, help="Total training steps (resume counts the steps already done).")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--crop-size", default="513,513", show_default=True, help="Training crop H,W.")
@click.option("--backbone", type=click.Choice(["mobilenetv2", "resnet50"]), default="mobilenetv2", show_default=True)
@click.option("--output-stride", type=click.Choice(["8", "16"]), default="16", show_default=True)
@click.option("--aspp/--no-aspp", default=True, show_default=True, help="Atrous branches of ASPP (image pooling and 1x1 stay).")
@click.option("--decoder/--no-decoder", default=True, show_default=True, help="DeepLabv3+ decoder from the stride-4 feature.")
@click.option("--bn-momentum", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.99, show_default=True, help="Batch-norm moving-average momentum (higher suits long runs).")
@click.option("--backbone-weights", default="none", show_default=True, help="imagenet (needs internet), none, or a Keras weights file of the backbone.")
@click.option("--lr", "learning_rate", type=float, default=0.007, show_default=True, help="Base learning rate (poly decay, power 0.9).")
@click.option("--warmup-steps", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--weight-decay", type=float, default=4e-5, show_default=True)
@click.option("--class-weights/--no-class-weights", default=True, show_default=True, help="Use the registry's class_weights when it has them.")
@click.option("--top-k-percent", type=click.FloatRange(0, 100, min_open=True), default=100.0, show_default=True, help="Hard-pixel mining: loss over the hardest K%.")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=500, show_default=True)
@click.option("--summary-every", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--init-checkpoint", type=click.Path(exists=True, path_type=Path), default=None, help="A fit logdir or checkpoint to start from.")
@click.option("--init-mode", type=click.Choice(["all", "all-but-logits", "backbone"]), default="all-but-logits", show_default=True)
@click.option("--mixed-precision", is_flag=True, help="mixed_float16 compute with loss scaling (GPUs).")
@click.option("--xla", is_flag=True, help="Compile the training step with XLA (GPUs).")
@click.option("--seed", type=int, default=None)
@registry_option
def fit(dataset, data, logdir, split, steps, batch_size, crop_size, backbone, output_stride, aspp, decoder, bn_momentum, backbone_weights, learning_rate, warmup_steps, weight_decay, class_weights, top_k_percent, checkpoint_every, summary_every, init_checkpoint, init_mode, mixed_precision, xla, seed, registry):  # type: ignore[no-untyped-def]
    """Train DeepLabv3+ with DeepLab's augmentation, poly LR and the ignore-masked loss."""
    entry = _entry(dataset, registry)
    folder = _data_dir(entry, data, split)
    height, width = _pair(crop_size)
    import keras

    from segtrain.losses import LossConfig
    from segtrain.model import ModelConfig
    from segtrain.train import FitConfig
    from segtrain.train import fit as run_fit

    if mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    weights = None if backbone_weights == "none" else backbone_weights
    model_config = ModelConfig(entry.num_classes, backbone, int(output_stride), aspp, decoder, weights, bn_momentum=bn_momentum)
    loss_config = LossConfig(entry.num_classes, entry.ignore_label, tuple(entry.class_weights) if class_weights and entry.class_weights else None, top_k_percent)
    config = FitConfig(
        data_dir=folder, logdir=logdir, split=split, steps=steps, batch_size=batch_size, crop_height=height, crop_width=width,
        learning_rate=learning_rate, weight_decay=weight_decay, warmup_steps=warmup_steps, top_k_percent=top_k_percent,
        checkpoint_every=checkpoint_every, summary_every=summary_every, image_summary_every=max(summary_every, checkpoint_every),
        init_checkpoint=init_checkpoint, init_mode=init_mode, seed=seed, colormap=_colormap(entry), xla=xla,
    )

    try:
        with _progress(steps, batch_size, summary_every) as on_step:
            result = run_fit(dataset, model_config, loss_config, config, entry.class_names, on_step=on_step)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    if result.start_step == result.end_step:
        click.echo(f"{logdir} is already at step {result.end_step} of {steps}: nothing to train (raise --steps to continue)")
        return
    click.echo(f"trained steps {result.start_step}..{result.end_step}: {result.seconds_per_step:.3f} s/step, {result.images_per_second:.1f} images/s; checkpoints in {logdir}")


def _print_report(document: dict) -> None:
    click.echo(f"{document['dataset']} {document['split']}: {document['num_images']} images, mIoU {100 * document['miou']:.2f}%, pixel accuracy {100 * document['pixel_accuracy']:.2f}%, {document['ms_per_image']:.1f} ms/image")
    for name, iou in document["per_class_iou"].items():
        click.echo(f"  {name:<20} {'—' if iou is None else f'{100 * iou:.2f}%'}")
    if "binary" in document:
        b = document["binary"]
        click.echo(f"  MaxF1 {100 * b['max_f1']:.4f}  AP {100 * b['average_precision']:.4f}  BestThresh {100 * b['best_threshold']:.4f}  PRE {100 * b['precision']:.4f}  REC {100 * b['recall']:.4f}  IoU {100 * b['iou']:.4f}")


def _emit(document: dict, json_path: Path | None) -> None:
    if json_path is None:
        _print_report(document)
        return
    text = json.dumps(document, indent=1)
    if str(json_path) == "-":
        click.echo(text)
    else:
        json_path.write_text(text + "\n")
        _print_report(document)


@main.command("eval", epilog="""\b
Examples:
  segtrain eval --dataset camvid --checkpoint runs/camvid --split test --json test.json
  segtrain eval --dataset kitti_road --checkpoint runs/road --split val --scales 0.75,1,1.25 --flip
""")
@click.option("--dataset", required=True)
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None)
@click.option("--checkpoint", required=True, type=click.Path(exists=True, path_type=Path), help="A fit logdir (latest checkpoint) or a checkpoint prefix.")
@click.option("--split", default="val", show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write the SPEC §5 JSON here ('-' for stdout).")
@click.option("--scales", default="1", show_default=True, help="Comma-separated inference scales (averaged).")
@click.option("--flip", is_flag=True, help="Also average the left-right flipped image.")
@registry_option
def eval_cmd(dataset, data, checkpoint, split, json_path, scales, flip, registry):  # type: ignore[no-untyped-def]
    """Full-resolution evaluation: mIoU, per-class IoU, pixel accuracy (and KITTI road measures for 2 classes)."""
    entry = _entry(dataset, registry)
    folder = _data_dir(entry, data, split)
    from segtrain.data import eval_dataset, record_files
    from segtrain.evaluate import Accumulator, evaluate_model
    from segtrain.predict import make_predictor
    from segtrain.train import load_model

    try:
        model, run = load_model(checkpoint)
        files = record_files(folder, split)
    except FileNotFoundError as exc:
        _fail(str(exc))
    if run["model"]["num_classes"] != entry.num_classes:
        _fail(f"{checkpoint} predicts {run['model']['num_classes']} classes, {dataset} has {entry.num_classes}")
    scale_values = [float(s) for s in scales.split(",")]
    examples = ((e["image"].numpy(), e["label"].numpy()[..., 0]) for e in eval_dataset(files))
    accumulator = evaluate_model(make_predictor(model, scale_values, flip), examples, Accumulator(entry.num_classes, entry.ignore_label))
    _emit(accumulator.report(dataset, split, entry.class_names), json_path)


@main.command(epilog="""\b
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
    entry = _entry(dataset, registry)
    from segtrain.evaluate import Accumulator, score_folders

    truth = {p.stem: p for p in sorted(gt_dir.glob("*.png"))}
    if not truth:
        _fail(f"{gt_dir}: no ground-truth PNGs")
    if probabilities and entry.num_classes != 2:
        raise click.UsageError("--probabilities is for 2-class datasets")
    accumulator = Accumulator(entry.num_classes, entry.ignore_label)
    problems = score_folders(pred_dir, truth, accumulator, probabilities)
    if problems:
        for line in problems:
            click.echo(f"error: {line}", err=True)
        _fail(f"{len(problems)} prediction(s) missing or unusable in {pred_dir}")
    _emit(accumulator.report(dataset, split or gt_dir.name, entry.class_names), json_path)


@main.command(epilog="""\b
Examples:
  segtrain predict --checkpoint runs/camvid CamVid/test/0001TP_008550.png --out predictions
  segtrain predict --checkpoint runs/camvid photos/ --out predictions
""")
@click.option("--checkpoint", required=True, type=click.Path(exists=True, path_type=Path))
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
def predict(checkpoint, inputs, out_dir):  # type: ignore[no-untyped-def]
    """Raw index PNGs ({stem}.png), colour PNGs ({stem}_color.png) and overlays ({stem}_overlay.png)."""
    import numpy as np
    from PIL import Image, ImageOps

    from segtrain.predict import make_predictor
    from segtrain.train import load_model
    from segtrain.visualize import colorize, overlay

    files = []
    for path in inputs:
        files += sorted(p for p in path.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg")) if path.is_dir() else [path]
    try:
        model, run = load_model(checkpoint)
    except FileNotFoundError as exc:
        _fail(str(exc))
    out_dir.mkdir(parents=True, exist_ok=True)
    colormap, ignore = run["colormap"], run["ignore_label"]
    predict_image = make_predictor(model)
    for path in files:
        try:
            with Image.open(path) as image:
                rgb = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
        except OSError as exc:
            _fail(f"{path}: cannot read image ({exc})")
        classes = predict_image(rgb).argmax(axis=-1).astype(np.uint8)
        Image.fromarray(classes).save(out_dir / f"{path.stem}.png")
        Image.fromarray(colorize(classes, colormap, ignore)).save(out_dir / f"{path.stem}_color.png")
        Image.fromarray(overlay(rgb, classes, colormap, ignore)).save(out_dir / f"{path.stem}_overlay.png")
    click.echo(f"{len(files)} image(s) predicted into {out_dir}")


@main.command(epilog="""\b
Example:
  segtrain export --checkpoint runs/camvid --out exported/camvid
""")
@click.option("--checkpoint", required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
def export(checkpoint, out_dir):  # type: ignore[no-untyped-def]
    """A SavedModel: uint8 images [B, H, W, 3] of any size -> {classes, probabilities}."""
    from segtrain.predict import export_saved_model
    from segtrain.train import load_model

    try:
        model, _ = load_model(checkpoint)
    except FileNotFoundError as exc:
        _fail(str(exc))
    export_saved_model(model, str(out_dir))
    click.echo(f"SavedModel written to {out_dir} (signature serving_default: images uint8 [B, H, W, 3] -> classes, probabilities)")


