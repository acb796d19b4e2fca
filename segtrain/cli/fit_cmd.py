"""`segtrain fit`: train DeepLabv3+ on a registered dataset's records.

The command parses its options into FitOptions (one field per option), checks what can be
checked without TensorFlow (the registry, the labels in the manifests, option combinations, where
the logdir may go), turns them into the model, labels and training configs, and reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from segprep.cli.common import registry_option
from segtrain.backbones import BACKBONE_NAMES, BACKBONES
from segtrain.cli.common import FiniteFloat, check_labels, checkpoint_root, data_dir, fit_progress, pair, registry_entry, start_tensorflow


@dataclass(frozen=True)
class FitOptions:
    """fit's command line, one field per option (click's names); see the options' help."""

    dataset: str
    data: Path | None
    logdir: Path
    split: str
    steps: int
    batch_size: int
    crop_size: str | None
    backbone: str
    depth_multiplier: float
    output_stride: str
    aspp: bool
    image_pooling: bool
    decoder: bool
    head_filters: int
    attention: str | None
    aux_loss: float
    bn_momentum: float
    backbone_weights: str
    optimizer: str | None
    learning_rate: float | None
    warmup_steps: int
    weight_decay: float | None
    class_weights: bool
    top_k_percent: float
    label_smoothing: float
    min_scale: float
    max_scale: float
    scale_step: float
    checkpoint_every: int
    summary_every: int
    init_checkpoint: Path | None
    init_mode: str
    mixed_precision: bool
    xla: bool
    seed: int | None
    bn_recompute_batches: int
    eval_every: int
    eval_split: str
    sync_bn: bool
    registry: Path | None

    @property
    def weights(self) -> str | None:
        """--backbone-weights, None for none."""
        return None if self.backbone_weights == "none" else self.backbone_weights


@click.command(epilog="""\b
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
@click.option("--backbone", type=click.Choice(BACKBONE_NAMES), default="mobilenetv2", show_default=True, help="DeepLab's feature extractors (segtrain.backbones' table: " + ", ".join(f"{b.name} = DeepLab's {b.variant}" for b in BACKBONES.values()) + ").")
@click.option("--depth-multiplier", "--width", "depth_multiplier", type=FiniteFloat(0, 4, min_open=True), default=1.0, show_default=True, help="The width multiplier alpha (DeepLab's depth_multiplier; --width is the same option) of backbones that have one: " + ", ".join(b.name for b in BACKBONES.values() if b.has_width) + ".")
@click.option("--output-stride", type=click.Choice(["8", "16"]), default="16", show_default=True)
@click.option("--aspp/--no-aspp", default=True, show_default=True, help="Atrous branches of ASPP (image pooling and 1x1 stay).")
@click.option("--image-pooling/--no-image-pooling", default=True, show_default=True, help="ASPP's image-level feature (DeepLab's add_image_level_feature; off: the CamVid models of DeepLab's notes).")
@click.option("--decoder/--no-decoder", default=True, show_default=True, help="DeepLabv3+ decoder from the stride-4 feature.")
@click.option("--head-filters", type=click.IntRange(min=1), default=256, show_default=True, help="Channels of ASPP's branches and projection and of the decoder's convolutions (DeepLab's 256; the decoder's 48-channel projection of the stride-4 feature stays). Recorded in segtrain.json, so eval, predict, export and resume rebuild the same model.")
@click.option("--attention", type=click.Choice(["position", "channel", "dual"]), default=None, help="DANet's attention over ASPP's output, before the decoder: position (over pixels), channel (over channels) or dual (both, summed). Its scales start at 0, so a model fine-tuned from a DeepLab checkpoint starts as DeepLab's; its variables (attention/...) are new to any DeepLab checkpoint and start from their initializers in every --init-mode. Recorded in segtrain.json; resume refuses a different one. [default: none]")
@click.option("--aux-loss", type=FiniteFloat(min=0), default=0.0, show_default=True, metavar="W", help="W > 0: an auxiliary FCN head on the backbone's last feature (3x3 conv-BN-ReLU, 1x1 to the classes) whose ignore-masked loss, times W, is added in training only; eval, predict and export never have it. Its weights are saved in the checkpoints; a resume may change W but not turn the head on or off. 0: none.")
@click.option("--bn-momentum", type=FiniteFloat(0, 1, min_open=True, max_open=True), default=0.99, show_default=True, help="Batch-norm moving-average momentum (higher suits long runs).")
@click.option("--backbone-weights", default="none", show_default=True, help="none; a TF1 ImageNet checkpoint (" + ", ".join(f"{b.name}: {b.imagenet_checkpoint}" for b in BACKBONES.values()) + "); for " + ", ".join(b.name for b in BACKBONES.values() if b.keras_imagenet) + " also imagenet (Keras' weights, needs internet) or a keras.applications weights file.")
@click.option("--optimizer", type=click.Choice(["sgd", "adamw"]), default=None, help="sgd: momentum 0.9 (DeepLab's); adamw: Keras' AdamW. Both follow the poly schedule. [default: adamw from scratch (measured: benchmarks/recipe_compare.py), sgd from --init-checkpoint or --backbone-weights (DeepLab's fine-tuning), a resumed logdir's own]")
@click.option("--lr", "learning_rate", type=FiniteFloat(min=0, min_open=True), default=None, help="Base learning rate (poly decay, power 0.9). [default: 0.007 with sgd (DeepLab's), 0.001 with adamw (Keras')]")
@click.option("--warmup-steps", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--weight-decay", type=FiniteFloat(min=0), default=None, metavar="W", help="W. With sgd, DeepLab's weight decay: the L2 penalty W * sum(k^2) / 2 added to the loss, over every convolution kernel (backbone and heads, logits included) and never over depthwise kernels, biases or batch-norm gamma/beta (as DeepLab's slim l2_regularizer); TensorBoard's loss/weight_decay. With adamw, Keras' decoupled decay k -= lr * W * k on the same kernels. 0: none. [default: 4e-5 with sgd (DeepLab's), 0.004 with adamw (Keras')]")
@click.option("--class-weights/--no-class-weights", default=True, show_default=True, help="Use the registry's class_weights when it has them.")
@click.option("--top-k-percent", type=FiniteFloat(0, 100, min_open=True), default=100.0, show_default=True, help="Hard-pixel mining: loss over the hardest K%.")
@click.option("--label-smoothing", type=FiniteFloat(0, 1, max_open=True), default=0.0, metavar="EPS", show_default=True, help="EPS: targets (1 - EPS) on the true class + EPS / num_classes on every class (Keras'); ignored pixels stay out, class weights still apply.")
@click.option("--min-scale", type=FiniteFloat(min=0, min_open=True), default=0.5, show_default=True, help="Smallest random scale of a training image (DeepLab's min_scale_factor).")
@click.option("--max-scale", type=FiniteFloat(min=0, min_open=True), default=2.0, show_default=True, help="Largest random scale (DeepLab's max_scale_factor).")
@click.option("--scale-step", type=FiniteFloat(min=0), default=0.25, show_default=True, help="Scales are min, min+step, ..., max (DeepLab's scale_factor_step_size); 0: uniform in [min, max].")
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
def fit(**options: Any) -> None:
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
    o = FitOptions(**options)
    entry = registry_entry(o.dataset, o.registry)
    folder = data_dir(entry, o.data, o.split, o.registry)
    if o.eval_every:
        data_dir(entry, o.data, o.eval_split, o.registry)  # the eval split must be in the registry and not empty, before training
    check_labels(entry, folder, o.split, o.registry)  # labels the model cannot learn: refused now, not by a graph dump mid-training
    if o.eval_every:
        check_labels(entry, folder, o.eval_split, o.registry, training=False)
    _check_combinations(o)
    _check_logdir(o, folder)
    crop = _crop(o, folder)
    start_tensorflow()
    from segtrain.distribute import cluster_from_env
    from segtrain.labels import Labels
    from segtrain.train import fit as run_fit

    labels = Labels.from_entry(entry, use_class_weights=o.class_weights)
    model_config, config = _configs(o, folder, crop, labels)
    with fit_progress(o.steps, o.batch_size, o.summary_every, show=cluster_from_env().is_chief) as on_step:  # of a cluster, the chief reports
        result = run_fit(model_config, labels, config, on_step=on_step, on_note=click.echo)
    _report(o, result)


def _check_combinations(o: FitOptions) -> None:
    """Usage errors that no single option's type catches."""
    if o.crop_size is not None and min(pair(o.crop_size)) < int(o.output_stride):
        raise click.BadParameter(f"{o.crop_size} is smaller than the output stride {o.output_stride}", param_hint="--crop-size")
    if not BACKBONES[o.backbone].has_width and o.depth_multiplier != 1.0:
        raise click.BadParameter(f"{o.backbone} has no width (depth multiplier); it is for {', '.join(n for n, b in BACKBONES.items() if b.has_width)}", param_hint="--width / --depth-multiplier")
    if o.min_scale > o.max_scale:
        raise click.BadParameter(f"{o.min_scale} is larger than --max-scale {o.max_scale}", param_hint="--min-scale")


def _check_logdir(o: FitOptions, folder: Path) -> None:
    """--logdir may not be, be inside or contain the records or the weights training starts from."""
    from segprep.paths import check_output_location

    starts = [checkpoint_root(o.init_checkpoint)] if o.init_checkpoint else []
    if o.weights not in (None, "imagenet"):  # a file, a checkpoint folder, or a prefix (its .index and .data files)
        starts += [Path(o.weights), *Path(o.weights).parent.glob(f"{Path(o.weights).name}.*")]
    check_output_location(o.logdir, [folder, *starts], "--logdir")


def _crop(o: FitOptions, folder: Path) -> tuple[int, int]:
    """--crop-size, else the one the split's manifest suggests (printed)."""
    if o.crop_size is not None:
        return pair(o.crop_size)
    from segtrain.recipe import default_crop

    crop, line = default_crop(folder, o.split, int(o.output_stride))
    click.echo(line)
    return crop


def _configs(o: FitOptions, folder: Path, crop: tuple[int, int], labels: Any) -> tuple[Any, Any]:
    """(ModelConfig, FitConfig) of the options, with the optimizer's defaults and the machine's warnings."""
    import keras

    from segtrain.data import AugmentConfig
    from segtrain.model import MEAN_PIXEL, ModelConfig, check_backbone_weights
    from segtrain.optim import DEFAULTS, default_optimizer
    from segtrain.recipe import xla_warning
    from segtrain.run_file import resumed_optimizer
    from segtrain.train import FitConfig

    check_backbone_weights(o.backbone, o.depth_multiplier, o.weights)
    optimizer = o.optimizer or default_optimizer(resumed_optimizer(o.logdir), from_weights=o.init_checkpoint is not None or o.weights is not None)
    warning = xla_warning(o.xla)
    if warning:
        click.echo(warning, err=True)
    if o.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    model_config = ModelConfig(
        num_classes=labels.num_classes, backbone=o.backbone, depth_multiplier=o.depth_multiplier, output_stride=int(o.output_stride),
        aspp=o.aspp, image_pooling=o.image_pooling, decoder=o.decoder, bn_momentum=o.bn_momentum, backbone_weights=o.weights, filters=o.head_filters,
        attention=o.attention, aux_loss=o.aux_loss,
    )
    augment = AugmentConfig(
        crop_height=crop[0], crop_width=crop[1], min_scale=o.min_scale, max_scale=o.max_scale, scale_step=o.scale_step,
        ignore_label=labels.ignore_label, mean_pixel=MEAN_PIXEL,
    )
    config = FitConfig(
        data_dir=folder, logdir=o.logdir, split=o.split, steps=o.steps, batch_size=o.batch_size, augment=augment,
        learning_rate=DEFAULTS[optimizer].learning_rate if o.learning_rate is None else o.learning_rate,
        weight_decay=DEFAULTS[optimizer].weight_decay if o.weight_decay is None else o.weight_decay,
        warmup_steps=o.warmup_steps, top_k_percent=o.top_k_percent, label_smoothing=o.label_smoothing,
        checkpoint_every=o.checkpoint_every, summary_every=o.summary_every, image_summary_every=max(o.summary_every, o.checkpoint_every),
        init_checkpoint=o.init_checkpoint, init_mode=o.init_mode, seed=o.seed, xla=o.xla, bn_recompute_batches=o.bn_recompute_batches,
        eval_every=o.eval_every, eval_split=o.eval_split, optimizer=optimizer, sync_batch_norm=o.sync_bn,
    )
    return model_config, config


def _report(o: FitOptions, result: Any) -> None:
    if result.start_step == result.end_step:
        click.echo(f"{o.logdir} is already at step {result.end_step} of {o.steps}: nothing to train (raise --steps to continue)")
        return
    where = f"checkpoints in {o.logdir}" if result.chief else "the chief wrote the checkpoints; this worker's own files are removed"
    click.echo(f"trained steps {result.start_step}..{result.end_step}: {result.seconds_per_step:.3f} s/step, {result.images_per_second:.1f} images/s; {where}")
    if result.workers > 1 or result.replicas > 1:
        click.echo(f"{result.workers} worker(s), {result.replicas} replica(s) in sync, global batch {o.batch_size}")
    if o.eval_every:
        from segtrain.fit_eval import BEST_DIR, EvalHistory

        best = EvalHistory.load(o.logdir, o.eval_split).best
        if best is not None:
            click.echo(f"best {o.eval_split} mIoU {100 * best['miou']:.1f} % at step {best['step']}: {o.logdir / BEST_DIR}")
