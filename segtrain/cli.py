"""segtrain: fit / eval / score / predict / export DeepLabv3+ on segprep's TFRecords (SPEC §5).

A thin click layer: it reads the registry (the source of classes, ignore label, colormap, class
weights and split sizes), parses options into the dataclasses of the modules that do the work,
and reports. TensorFlow is imported only inside commands, so `segtrain --help` stays instant.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from segprep.cli.common import fail, registry_option
from segprep.cli.guarded import GuardedGroup


def _fail(message: str) -> None:
    fail([], message)


def _fail_lines(lines: list[str], summary: str, limit: int = 20) -> None:
    """One error line per file (at most `limit`, then a count) and a summary; exit 1."""
    shown = lines if len(lines) <= limit else [*lines[:limit], f"... and {len(lines) - limit} more"]
    fail(shown, summary)


def _entry(dataset: str, registry: Path | None):  # type: ignore[no-untyped-def]
    from segprep.registry import RegistryError, load_registry, resolve_registry_path

    try:
        return load_registry(resolve_registry_path(registry)).get(dataset)
    except RegistryError as exc:
        _fail(str(exc))


def _registry_path(registry: Path | None) -> Path:
    from segprep.registry import resolve_registry_path

    return Path(resolve_registry_path(registry))


def _data_dir(entry, data: Path | None, split: str, registry: Path | None = None) -> Path:  # type: ignore[no-untyped-def]
    """The records folder (--data, else the registry's data_dir); the split must be one the registry knows
    and, by its count, not empty (an empty split would make fit wait forever for a first batch)."""
    if split not in entry.splits:
        known = ", ".join(entry.splits) or "none (convert it with segprep first)"
        _fail(f"dataset {entry.name!r} has no split {split!r} in the registry (known: {known})")
    folder = data or (Path(entry.data_dir) if entry.data_dir else None)
    if folder is None:
        raise click.UsageError(f"no --data and no data_dir for {entry.name!r} in the registry")
    if entry.splits[split] == 0:
        from segtrain.errors import EmptySplitError

        raise EmptySplitError(f"{folder}: split {split!r} of {entry.name!r} is empty (0 records in the registry {_registry_path(registry)})")
    return folder


def _check_labels(entry, folder: Path, split: str, registry: Path | None, training: bool = True) -> None:  # type: ignore[no-untyped-def]
    """Refuse a split whose manifest disagrees with the registry entry or holds labels outside its classes;
    warn (one line) about a split or samples with no trainable pixel (segtrain.labels_check)."""
    from segtrain.labels_check import check_split_labels

    for line in check_split_labels(entry, folder, split, _registry_path(registry), training):
        click.echo(line, err=True)


def _checkpoint_root(checkpoint: Path) -> Path:
    """The logdir a --checkpoint stands for (itself, or the folder of a checkpoint prefix or file)."""
    if checkpoint.is_dir():
        return checkpoint
    if not checkpoint.exists() and not Path(f"{checkpoint}.index").exists():
        from segtrain.errors import CheckpointError

        raise CheckpointError(f"{checkpoint}: no such checkpoint, file or folder")
    return checkpoint.parent


def _colormap(entry) -> list[list[int]]:  # type: ignore[no-untyped-def]
    from segprep.colormaps import resolve_colormap

    return resolve_colormap(entry.colormap).tolist()


# segtrain.model.BACKBONES, spelled out here so that `segtrain --help` need not import Keras.
BACKBONES = ("mobilenetv2", "xception41", "xception65", "xception71")


def _pair(text: str, hint: str = "--crop-size") -> tuple[int, int]:
    parts = text.replace("x", ",").split(",")
    try:
        height, width = (int(p) for p in parts) if len(parts) == 2 else (int(parts[0]),) * 2
    except ValueError:
        raise click.BadParameter(f"expected H,W or N, got {text!r}", param_hint=hint) from None
    if height < 1 or width < 1:
        raise click.BadParameter(f"sizes must be positive, got {text!r}", param_hint=hint)
    return height, width


class _FiniteFloat(click.FloatRange):
    """A FloatRange that also refuses nan and inf (click lets nan through every range check)."""

    name = "float"

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def _scales(ctx: click.Context, param: click.Parameter, text: str) -> list[float]:
    try:
        values = [float(s) for s in text.split(",")]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {text!r}") from None
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise click.BadParameter(f"scales must be positive finite numbers, got {text!r}")
    return values


def _refuse_overwriting_inputs(json_path: Path | None, inputs: list[Path], ledger_now: bool = True) -> None:
    """--json must not replace one of the command's input files (a shard, segtrain.json, the registry),
    nor any file that eval/score did not write (segtrain.outputs.JsonLedger).

    ledger_now: check the ledger before the work too (eval: its timings make the bytes differ on every
    run, so a file it does not own is refused before the model runs). score checks it only when it has
    the bytes, so that a file already holding exactly them (a copy, a lost ledger) is let be.
    """
    if json_path is None or str(json_path) == "-":
        return
    from segprep.paths import check_not_overwriting

    check_not_overwriting([json_path], inputs, "--json")
    if ledger_now:
        from segtrain.outputs import check_json_target

        check_json_target(json_path)


@contextmanager
def _progress(total: int, batch_size: int, every: int, show: bool = True) -> Iterator[Callable[[int, float, float], None]]:
    """A rich bar with loss, step time and images/s on a terminal; otherwise a line every `every` steps; nothing unless show."""
    if not show:
        yield lambda step, loss, seconds: None
        return
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


def _remember_verbose(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_root().meta["segtrain.verbose"] = True


def _start_tensorflow() -> None:
    """Import TensorFlow before a command needs it, without its start-up notices unless --verbose."""
    from segtrain.quiet import quiet_tensorflow

    context = click.get_current_context(silent=True)
    quiet_tensorflow(verbose=bool(context and context.find_root().meta.get("segtrain.verbose")))


@click.group(cls=GuardedGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--verbose", is_flag=True, expose_value=False, is_eager=True, callback=_remember_verbose,
              help="Show TensorFlow's start-up and C++ log lines (hidden by default).")
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
@click.option("--crop-size", default=None, help="Training crop H,W (or N). Default: the largest image of --split (its manifest), each side rounded up to k*OS+1 (DeepLab's grid, OS the output stride) and capped at 513; 513,513 when the split has no manifest. The chosen crop is printed.")
@click.option("--backbone", type=click.Choice(BACKBONES), default="mobilenetv2", show_default=True, help="DeepLab's feature extractors (slim's MobileNetV2, DeepLab's aligned Xception); resnet50 was removed.")
@click.option("--depth-multiplier", "--width", "depth_multiplier", type=_FiniteFloat(0, 4, min_open=True), default=1.0, show_default=True, help="MobileNetV2's width multiplier alpha (DeepLab's depth_multiplier; --width is the same option). mobilenetv2 only.")
@click.option("--output-stride", type=click.Choice(["8", "16"]), default="16", show_default=True)
@click.option("--aspp/--no-aspp", default=True, show_default=True, help="Atrous branches of ASPP (image pooling and 1x1 stay).")
@click.option("--decoder/--no-decoder", default=True, show_default=True, help="DeepLabv3+ decoder from the stride-4 feature.")
@click.option("--head-filters", type=click.IntRange(min=1), default=256, show_default=True, help="Channels of ASPP's branches and projection and of the decoder's convolutions (DeepLab's 256; the decoder's 48-channel projection of the stride-4 feature stays). Recorded in segtrain.json, so eval, predict, export and resume rebuild the same model.")
@click.option("--bn-momentum", type=_FiniteFloat(0, 1, min_open=True, max_open=True), default=0.99, show_default=True, help="Batch-norm moving-average momentum (higher suits long runs).")
@click.option("--backbone-weights", default="none", show_default=True, help="none; a TF1 ImageNet checkpoint (DeepLab's xception_65_imagenet, slim's mobilenet_v2_1.0_224); for mobilenetv2 also imagenet (Keras' weights, needs internet) or a keras.applications MobileNetV2 weights file.")
@click.option("--optimizer", type=click.Choice(["sgd", "adamw"]), default=None, help="sgd: momentum 0.9 (DeepLab's); adamw: Keras' AdamW. Both follow the poly schedule. [default: adamw from scratch (measured: benchmarks/recipe_compare.py), sgd from --init-checkpoint or --backbone-weights (DeepLab's fine-tuning), a resumed logdir's own]")
@click.option("--lr", "learning_rate", type=_FiniteFloat(min=0, min_open=True), default=None, help="Base learning rate (poly decay, power 0.9). [default: 0.007 with sgd (DeepLab's), 0.001 with adamw (Keras')]")
@click.option("--warmup-steps", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--weight-decay", type=_FiniteFloat(min=0), default=None, metavar="W", help="W. With sgd, DeepLab's weight decay: the L2 penalty W * sum(k^2) / 2 added to the loss, over every convolution kernel (backbone and heads, logits included) and never over depthwise kernels, biases or batch-norm gamma/beta (as DeepLab's slim l2_regularizer); TensorBoard's loss/weight_decay. With adamw, Keras' decoupled decay k -= lr * W * k on the same kernels. 0: none. [default: 4e-5 with sgd (DeepLab's), 0.004 with adamw (Keras')]")
@click.option("--class-weights/--no-class-weights", default=True, show_default=True, help="Use the registry's class_weights when it has them.")
@click.option("--top-k-percent", type=_FiniteFloat(0, 100, min_open=True), default=100.0, show_default=True, help="Hard-pixel mining: loss over the hardest K%.")
@click.option("--label-smoothing", type=_FiniteFloat(0, 1, max_open=True), default=0.0, metavar="EPS", show_default=True, help="EPS: targets (1 - EPS) on the true class + EPS / num_classes on every class (Keras'); ignored pixels stay out, class weights still apply.")
@click.option("--min-scale", type=_FiniteFloat(min=0, min_open=True), default=0.5, show_default=True, help="Smallest random scale of a training image (DeepLab's min_scale_factor).")
@click.option("--max-scale", type=_FiniteFloat(min=0, min_open=True), default=2.0, show_default=True, help="Largest random scale (DeepLab's max_scale_factor).")
@click.option("--scale-step", type=_FiniteFloat(min=0), default=0.25, show_default=True, help="Scales are min, min+step, ..., max (DeepLab's scale_factor_step_size); 0: uniform in [min, max].")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=500, show_default=True)
@click.option("--summary-every", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--init-checkpoint", type=click.Path(path_type=Path), default=None, help="Start from: a fit or import-deeplab logdir or checkpoint, or a DeepLab TF1 checkpoint (prefix or folder).")
@click.option("--init-mode", type=click.Choice(["all", "all-but-logits", "backbone"]), default="all-but-logits", show_default=True, help="DeepLab's FAQ: all (same classes), all-but-logits (new classes), backbone (new head).")
@click.option("--mixed-precision", is_flag=True, help="mixed_float16 compute with loss scaling (GPUs).")
@click.option("--xla", is_flag=True, help="Compile the training step with XLA (GPUs; on a machine without a GPU it warns, as it made steps 7-8x slower there, and still compiles).")
@click.option("--seed", type=int, default=None)
@click.option("--bn-recompute-batches", type=click.IntRange(min=0), default=20, show_default=True, help="Before each checkpoint and evaluation, set batch-norm statistics to their average over N training batches (0: keep the moving averages).")
@click.option("--eval-every", type=click.IntRange(min=0), default=0, show_default=True, help="Evaluate --eval-split every N steps and at the end: TensorBoard, a terminal line, the best model in LOGDIR/best (0: off).")
@click.option("--eval-split", default="val", show_default=True, help="The split --eval-every scores (full resolution, as segtrain eval).")
@click.option("--sync-bn", is_flag=True, help="Batch-norm moments over the global batch of all replicas (several GPUs or workers), not each replica's own.")
@registry_option
def fit(dataset, data, logdir, split, steps, batch_size, crop_size, backbone, depth_multiplier, output_stride, aspp, decoder, bn_momentum, backbone_weights, learning_rate, warmup_steps, weight_decay, class_weights, top_k_percent, checkpoint_every, summary_every, init_checkpoint, init_mode, mixed_precision, xla, seed, bn_recompute_batches, eval_every, eval_split, head_filters, optimizer, label_smoothing, min_scale, max_scale, scale_step, sync_bn, registry):  # type: ignore[no-untyped-def]
    """Train DeepLabv3+ with DeepLab's augmentation, poly LR and the ignore-masked loss.

    Refused before any training: an empty split, a --logdir that is, is inside or contains --data
    or --init-checkpoint, a logdir whose checkpoints were trained with another architecture,
    a damaged segtrain.json or checkpoint, a registry entry whose class count or ignore label differ
    from the ones the split was converted with (its manifest), and labels holding values that are
    neither a class nor the ignore label (the manifests' histograms). A split or samples with no
    trainable pixel (all ignore) are a warning line. Training stops (exit 1, nothing of it saved) when the
    loss or the weights become NaN or infinite.

    Every checkpoint (and evaluation) holds batch-norm statistics recomputed over
    --bn-recompute-batches training batches: the moving averages lag behind the weights in short runs.
    --eval-every N scores --eval-split as segtrain eval does, into TensorBoard (LOGDIR/eval) and the
    terminal, keeps the best model by mIoU in LOGDIR/best (use it as any --checkpoint) and the
    scores in LOGDIR/eval_history.json (a resumed fit keeps the best so far).
    """
    entry = _entry(dataset, registry)
    folder = _data_dir(entry, data, split, registry)
    if eval_every:
        _data_dir(entry, data, eval_split, registry)  # the eval split must be in the registry and not empty, before training
    _check_labels(entry, folder, split, registry)  # labels the model cannot learn: refused now, not by a graph dump mid-training
    if eval_every:
        _check_labels(entry, folder, eval_split, registry, training=False)
    height, width = _pair(crop_size) if crop_size is not None else (0, 0)
    if crop_size is not None and min(height, width) < int(output_stride):
        raise click.BadParameter(f"{crop_size} is smaller than the output stride {output_stride}", param_hint="--crop-size")
    if backbone != "mobilenetv2" and depth_multiplier != 1.0:
        raise click.BadParameter(f"{backbone} has no width (depth multiplier); it is for mobilenetv2", param_hint="--width / --depth-multiplier")
    if min_scale > max_scale:
        raise click.BadParameter(f"{min_scale} is larger than --max-scale {max_scale}", param_hint="--min-scale")
    weights = None if backbone_weights == "none" else backbone_weights
    from segprep.paths import check_output_location

    starts = [_checkpoint_root(init_checkpoint)] if init_checkpoint else []
    if weights not in (None, "imagenet"):  # a file, a checkpoint folder, or a prefix (its .index and .data files)
        starts += [Path(weights), *Path(weights).parent.glob(f"{Path(weights).name}.*")]
    check_output_location(logdir, [folder, *starts], "--logdir")
    if crop_size is None:
        from segtrain.recipe import default_crop

        (height, width), crop_line = default_crop(folder, split, int(output_stride))
        click.echo(crop_line)
    _start_tensorflow()
    import keras

    from segtrain.losses import LossConfig
    from segtrain.model import ModelConfig, check_backbone_weights
    from segtrain.train import FitConfig
    from segtrain.train import fit as run_fit

    from segtrain.optim import DEFAULTS, default_optimizer
    from segtrain.recipe import xla_warning

    check_backbone_weights(backbone, depth_multiplier, weights)
    if optimizer is None:
        optimizer = default_optimizer(_resumed_optimizer(logdir), from_weights=init_checkpoint is not None or weights is not None)
    learning_rate = DEFAULTS[optimizer].learning_rate if learning_rate is None else learning_rate
    weight_decay = DEFAULTS[optimizer].weight_decay if weight_decay is None else weight_decay
    warning = xla_warning(xla)
    if warning:
        click.echo(warning, err=True)
    if mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    model_config = ModelConfig(
        num_classes=entry.num_classes, backbone=backbone, depth_multiplier=depth_multiplier, output_stride=int(output_stride),
        aspp=aspp, decoder=decoder, bn_momentum=bn_momentum, backbone_weights=weights, filters=head_filters,
    )
    loss_config = LossConfig(entry.num_classes, entry.ignore_label, tuple(entry.class_weights) if class_weights and entry.class_weights else None, top_k_percent, label_smoothing)
    config = FitConfig(
        data_dir=folder, logdir=logdir, split=split, steps=steps, batch_size=batch_size, crop_height=height, crop_width=width,
        learning_rate=learning_rate, weight_decay=weight_decay, warmup_steps=warmup_steps, top_k_percent=top_k_percent,
        checkpoint_every=checkpoint_every, summary_every=summary_every, image_summary_every=max(summary_every, checkpoint_every),
        init_checkpoint=init_checkpoint, init_mode=init_mode, seed=seed, colormap=_colormap(entry), xla=xla,
        bn_recompute_batches=bn_recompute_batches, eval_every=eval_every, eval_split=eval_split,
        optimizer=optimizer, min_scale=min_scale, max_scale=max_scale, scale_step=scale_step, sync_batch_norm=sync_bn,
    )

    from segtrain.distribute import cluster_from_env

    with _progress(steps, batch_size, summary_every, show=cluster_from_env().is_chief) as on_step:  # of a cluster, the chief reports
        result = run_fit(dataset, model_config, loss_config, config, entry.class_names, on_step=on_step, on_note=click.echo)
    if result.start_step == result.end_step:
        click.echo(f"{logdir} is already at step {result.end_step} of {steps}: nothing to train (raise --steps to continue)")
        return
    where = f"checkpoints in {logdir}" if result.chief else "the chief wrote the checkpoints; this worker's own files are removed"
    click.echo(f"trained steps {result.start_step}..{result.end_step}: {result.seconds_per_step:.3f} s/step, {result.images_per_second:.1f} images/s; {where}")
    if result.workers > 1 or result.replicas > 1:
        click.echo(f"{result.workers} worker(s), {result.replicas} replica(s) in sync, global batch {batch_size}")
    if eval_every:
        from segtrain.fit_eval import BEST_DIR, EvalHistory

        best = EvalHistory.load(logdir, eval_split).best
        if best is not None:
            click.echo(f"best {eval_split} mIoU {100 * best['miou']:.1f} % at step {best['step']}: {logdir / BEST_DIR}")


def _resumed_optimizer(logdir: Path) -> str | None:
    """The optimizer of the run fit would resume in logdir (None: nothing to resume, or no readable record;
    a damaged segtrain.json is refused later, by fit's own resume check)."""
    from segtrain.optim import OPTIMIZERS
    from segtrain.train import RUN_FILE

    if not any(logdir.glob("ckpt-*.index")):
        return None
    try:
        run = json.loads((logdir / RUN_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(run, dict):
        return None
    recorded = run.get("optimizer", "sgd")  # written before --optimizer existed: sgd
    return recorded if recorded in OPTIMIZERS else None


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
        from segtrain.outputs import write_json_output

        write_json_output(json_path, (text + "\n").encode("utf-8"))  # only over segtrain's own JSON (its ledger) or the same bytes
        _print_report(document)


@main.command("eval", epilog="""\b
Examples:
  segtrain eval --dataset camvid --checkpoint runs/camvid --split test --json test.json
  segtrain eval --dataset kitti_road --checkpoint runs/road --split val --scales 0.75,1,1.25 --flip
""")
@click.option("--dataset", required=True)
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None)
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path), help="A fit logdir (latest checkpoint), a checkpoint prefix or one of its files.")
@click.option("--split", default="val", show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write the SPEC §5 JSON here ('-' for stdout); never over an input file.")
@click.option("--scales", default="1", show_default=True, callback=_scales, help="Comma-separated inference scales (averaged).")
@click.option("--flip", is_flag=True, help="Also average the left-right flipped image.")
@registry_option
def eval_cmd(dataset, data, checkpoint, split, json_path, scales, flip, registry):  # type: ignore[no-untyped-def]
    """Full-resolution evaluation: mIoU, per-class IoU, pixel accuracy (and KITTI road measures for 2 classes).

    Images smaller than the output stride are padded and their predictions cropped back.
    """
    entry = _entry(dataset, registry)
    folder = _data_dir(entry, data, split, registry)
    _check_labels(entry, folder, split, registry, training=False)
    _start_tensorflow()
    from segtrain.data import record_files, require_records
    from segtrain.train import RUN_FILE, load_model, resolve_checkpoint

    files = record_files(folder, split)
    logdir, prefix = resolve_checkpoint(checkpoint)
    inputs = [*map(Path, files), folder / f"{split}.manifest.json", logdir / RUN_FILE, logdir / "checkpoint", *Path(prefix).parent.glob(f"{Path(prefix).name}.*"), _registry_path(registry)]
    _refuse_overwriting_inputs(json_path, inputs)
    require_records(files, folder, split)
    model, run = load_model(checkpoint)
    if run["model"]["num_classes"] != entry.num_classes:
        _fail(f"{logdir / RUN_FILE}: the model predicts {run['model']['num_classes']} classes, {dataset} has {entry.num_classes}")
    accumulator = _evaluate(model, files, folder, split, entry, scales, flip)
    _emit(accumulator.report(dataset, split, entry.class_names), json_path)


def _evaluate(model, files: list[str], folder: Path, split: str, entry, scales: list[float], flip: bool):  # type: ignore[no-untyped-def]
    """The split's accumulator (segtrain.evaluate.evaluate_records, which fit's evaluation shares)."""
    from segtrain.evaluate import evaluate_records
    from segtrain.predict import make_predictor

    return evaluate_records(make_predictor(model, scales, flip), files, folder, split, entry.num_classes, entry.ignore_label)


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

    from segtrain.files import regular_problem

    truth: dict[str, Path] = {}
    irregular: list[str] = []  # a FIFO or folder named x.png: never opened, reported as score's other problems are
    for path in sorted(gt_dir.glob("*.png")):
        problem = regular_problem(path)
        if problem is None:
            truth[path.stem] = path
        else:
            irregular.append(f"{problem}; not scored")
    if not truth and not irregular:
        _fail(f"{gt_dir}: no ground-truth PNGs")
    _refuse_overwriting_inputs(json_path, [*truth.values(), *pred_dir.glob("*.png"), _registry_path(registry)], ledger_now=False)
    if probabilities and entry.num_classes != 2:
        raise click.UsageError("--probabilities is for 2-class datasets")
    accumulator = Accumulator(entry.num_classes, entry.ignore_label)
    problems = irregular + score_folders(pred_dir, truth, accumulator, probabilities)
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
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path), help="A fit logdir (latest checkpoint), a checkpoint prefix or one of its files.")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder: outside every input and the checkpoint's logdir.")
def predict(checkpoint, inputs, out_dir):  # type: ignore[no-untyped-def]
    """Raw index PNGs ({stem}.png), colour PNGs ({stem}_color.png) and overlays ({stem}_overlay.png).

    \b
    INPUT: image files, or folders whose images (png, jpg, jpeg, bmp, tif, tiff, webp; not hidden
    files, not subfolders) are all predicted. Images are read as training reads them: 16-bit
    samples keep their high byte (value >> 8, as TensorFlow's PNG decoder does), alpha is
    dropped, palette / grey / 1-bit / CMYK images become RGB; 32-bit integer and float images
    have no defined 0..255 range and are refused. Images smaller than the output stride are
    padded and the prediction cropped back: every output has its input's size.
    \b
    Two inputs whose outputs would share a name (a.png and a.jpg, x.png in two folders, a.png
    beside a_color.png) are refused before any work: rename one, or use separate --out folders.
    --out may not be, be inside or contain an input or the checkpoint's logdir. It may hold other
    files: only files this command wrote there before (listed in --out/.segtrain-predict.json
    with their sha256, and unchanged since) are replaced; any other file in the way is refused.
    A file that cannot be read does not stop the others: each is reported at the end, exit 1.
    So is anything named like an image that is not a regular file (a FIFO, a folder x.png):
    it is never opened. EXIF orientation is not applied (fit and eval do not apply it either):
    predictions have the image's stored size.
    """
    from segprep.paths import check_output_location
    from segtrain.outputs import PredictLedger, collect_images, name_clashes, output_names

    files, irregular = collect_images(inputs)  # FIFOs and folders named like images: reported, never opened
    check_output_location(out_dir, [*inputs, _checkpoint_root(checkpoint)], "--out")
    if not files:
        _fail_lines(irregular, f"{len(irregular)} input(s) are not regular image files; nothing was predicted", limit=1000)
    clashes = name_clashes(files)
    if clashes:
        _fail_lines(clashes, f"{len(clashes)} input(s) would overwrite another input's predictions in {out_dir}; nothing was predicted")
    planned = [name for path in files for name in output_names(path)]
    ledger = PredictLedger(out_dir)
    foreign = ledger.foreign(planned)
    if foreign:
        _fail_lines(foreign, f"{len(foreign)} file(s) in {out_dir} are in the way and not segtrain predict's own; nothing was predicted")

    _start_tensorflow()
    from segtrain.train import load_model

    model, run = load_model(checkpoint)
    out_dir.mkdir(parents=True, exist_ok=True)
    ledger.begin(planned)
    written: dict[str, str] = {}
    try:
        problems = irregular + _predict_files(model, run, files, out_dir, written)
    finally:
        ledger.finish(written)
    total = len(files) + len(irregular)
    done = total - len(problems)
    if problems:
        _fail_lines(problems, f"{len(problems)} of {total} image(s) could not be predicted; the other {done} are in {out_dir}", limit=1000)
    click.echo(f"{done} image(s) predicted into {out_dir}")


def _predict_files(model, run: dict, files: list[Path], out_dir: Path, written: dict[str, str]) -> list[str]:  # type: ignore[no-untyped-def]
    """Predict each file into out_dir (recording name -> sha256 in written); one problem line per bad file."""
    import io

    import numpy as np
    import tensorflow as tf
    from PIL import Image

    from segprep.fileio import atomic_write_bytes
    from segtrain.errors import ImageReadError
    from segtrain.images import read_rgb
    from segtrain.outputs import output_names, sha256_bytes
    from segtrain.predict import make_predictor
    from segprep.colormaps import colorize, overlay

    def png(array: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, "PNG")
        return buffer.getvalue()

    colormap, ignore = run["colormap"], run["ignore_label"]
    predict_image = make_predictor(model)
    problems = []
    for path in files:
        try:
            rgb = read_rgb(path)
            classes = predict_image(rgb).argmax(axis=-1).astype(np.uint8)
        except ImageReadError as exc:
            problems.append(str(exc))
            continue
        except tf.errors.ResourceExhaustedError:
            problems.append(f"{path}: {rgb.shape[1]}x{rgb.shape[0]} is too large for this machine's memory")
            continue
        pictures = (classes, colorize(classes, colormap, ignore), overlay(rgb, classes, colormap, ignore))
        for name, picture in zip(output_names(path), pictures):
            data = png(picture)
            atomic_write_bytes(out_dir / name, data)
            written[name] = sha256_bytes(data)
    return problems


@main.command(epilog="""\b
Example:
  segtrain export --checkpoint runs/camvid --out exported/camvid
""")
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path), help="A fit logdir (latest checkpoint), a checkpoint prefix or one of its files.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="A new or empty folder, or an earlier export (replaced); outside the logdir.")
def export(checkpoint, out_dir):  # type: ignore[no-untyped-def]
    """A SavedModel: uint8 images [B, H, W, 3] of any size -> {classes, probabilities}.

    Written into a hidden folder beside --out and moved into place when complete.
    """
    import shutil

    from segprep.paths import check_output_location
    from segtrain.outputs import EXPORT_MARKER, check_export_target, install_folder, staging_folder

    check_output_location(out_dir, [_checkpoint_root(checkpoint)], "--out")
    check_export_target(out_dir)
    _start_tensorflow()
    from segtrain.predict import export_saved_model
    from segtrain.train import load_model, resolve_checkpoint

    model, run = load_model(checkpoint)
    staged = staging_folder(out_dir)
    try:
        export_saved_model(model, str(staged))
        marker = {"tool": "segtrain export", "checkpoint": resolve_checkpoint(checkpoint)[1], **run}
        (staged / EXPORT_MARKER).write_text(json.dumps(marker, indent=1) + "\n")
        install_folder(staged, out_dir)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    click.echo(f"SavedModel written to {out_dir} (signature serving_default: images uint8 [B, H, W, 3] -> classes, probabilities)")


@main.command("import-deeplab", epilog="""\b
Examples:
  segtrain import-deeplab deeplabv3_mnv2_cityscapes_train/model.ckpt --out runs/cityscapes_mnv2 --output-stride 8 --dataset cityscapes
  segtrain import-deeplab deeplabv3_pascal_train_aug --out runs/pascal_xception65 --dataset pascal_voc_seg
  segtrain fit --dataset camvid --logdir runs/camvid --init-checkpoint runs/cityscapes_mnv2 --init-mode all-but-logits --no-aspp --no-decoder
""")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="The new logdir: a new or empty folder, outside the checkpoint's folder.")
@click.option("--output-stride", type=click.Choice(["8", "16"]), default="16", show_default=True, help="What to run the network at (the weights do not say; DeepLab evaluates the same checkpoint at 8 or 16).")
@click.option("--dataset", default=None, help="Registry name whose class names, colormap and ignore label the logdir takes (its class count must equal the checkpoint's).")
@registry_option
def import_deeplab_cmd(checkpoint, out_dir, output_stride, dataset, registry):  # type: ignore[no-untyped-def]
    """A DeepLab TF1 checkpoint (model zoo or one's own) -> a segtrain logdir.

    \b
    CHECKPOINT: a prefix (model.ckpt, model.ckpt-30000), one of its files, or the folder holding it.
    The network is read from the variables: the backbone (MobilenetV2 and its depth multiplier,
    xception_41/65/71), ASPP's atrous branches, the decoder, the class count. Every model variable is
    copied; optimizer slots, EMA shadows and global_step are counted and left out. The logdir works
    with eval, predict, export and fit --init-checkpoint like one written by fit; its logits equal
    DeepLab's for the same weights. Without --dataset the classes are class_0, class_1, ... with
    PASCAL's colormap and ignore label 255.
    """
    from segprep.paths import check_output_location

    source = checkpoint if checkpoint.is_dir() else checkpoint.parent
    check_output_location(out_dir, [source], "--out")
    _start_tensorflow()
    from segtrain.import_deeplab import Labels, check_import_target

    check_import_target(out_dir)
    labels, classes = None, None
    if dataset is not None:
        entry = _entry(dataset, registry)
        labels = Labels(dataset, entry.ignore_label, _colormap(entry), list(entry.class_names))
        classes = entry.num_classes
    from segtrain.import_deeplab import import_to_logdir

    click.echo(import_to_logdir(checkpoint, out_dir, int(output_stride), labels, classes))


if __name__ == "__main__":
    main()
