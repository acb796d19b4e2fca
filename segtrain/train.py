"""The `segtrain fit` loop: DeepLab training with checkpoints, resume, fine-tuning modes and TensorBoard.

A custom loop (rather than Model.fit) because DeepLab's loss needs the ignore mask and optional
hard-pixel mining over the whole batch, the step counter must survive restarts exactly (resume
continues at the saved step and the poly schedule with it), and summaries are written per step.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from segtrain.data import AugmentConfig, record_files, train_dataset
from segtrain.losses import LossConfig, PolyDecay, segmentation_loss
from segtrain.metrics import class_scores
from segtrain.model import ModelConfig, build_deeplab, mean_pixel

RUN_FILE = "segtrain.json"  # what a logdir was trained with: enough to rebuild the model anywhere
INIT_MODES = ("all", "all-but-logits", "backbone")


@dataclass(frozen=True)
class FitConfig:
    data_dir: Path
    logdir: Path
    split: str = "train"
    steps: int = 1000
    batch_size: int = 8
    crop_height: int = 513
    crop_width: int = 513
    learning_rate: float = 0.007
    momentum: float = 0.9
    weight_decay: float = 4e-5
    warmup_steps: int = 0
    top_k_percent: float = 100.0
    checkpoint_every: int = 500
    summary_every: int = 50
    image_summary_every: int = 500
    xla: bool = False
    init_checkpoint: Path | None = None
    init_mode: str = "all-but-logits"
    seed: int | None = None
    colormap: list[list[int]] = field(default_factory=list)


def save_run(logdir: Path, dataset: str, model_config: ModelConfig, ignore_label: int, colormap: list[list[int]], class_names: list[str]) -> None:
    logdir.mkdir(parents=True, exist_ok=True)
    document = {"dataset": dataset, "model": asdict(model_config), "ignore_label": ignore_label, "colormap": colormap, "class_names": class_names}
    (logdir / RUN_FILE).write_text(json.dumps(document, indent=1))


def load_run(logdir: Path) -> dict:
    path = logdir / RUN_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{logdir}: no {RUN_FILE} (not a segtrain fit logdir)")
    return json.loads(path.read_text())


def resolve_checkpoint(path: Path) -> tuple[Path, str]:
    """(logdir, checkpoint prefix) for a logdir (its latest checkpoint) or a checkpoint prefix inside one."""
    if path.is_dir():
        latest = tf.train.latest_checkpoint(str(path))
        if latest is None:
            raise FileNotFoundError(f"{path}: no checkpoint in this logdir")
        return path, latest
    if not Path(f"{path}.index").is_file():
        raise FileNotFoundError(f"{path}: not a checkpoint (no {path.name}.index)")
    return path.parent, str(path)


def load_model(checkpoint: Path) -> tuple[keras.Model, dict]:
    """The model of a fit logdir (or one of its checkpoints) with its trained weights, and the run document."""
    logdir, prefix = resolve_checkpoint(checkpoint)
    run = load_run(logdir)
    model = build_deeplab(ModelConfig(**{**run["model"], "backbone_weights": None}))
    tf.train.Checkpoint(model=model).restore(prefix).expect_partial().assert_existing_objects_matched()
    return model, run


def _layers_for_mode(model: keras.Model, mode: str) -> list[keras.layers.Layer]:
    if mode == "all":
        return list(model.layers)
    if mode == "all-but-logits":
        return [layer for layer in model.layers if layer.name != "logits"]
    if mode == "backbone":
        return [layer for layer in model.layers if layer.name.endswith(tuple(f"_os{s}" for s in (8, 16, 32)))]
    raise ValueError(f"unknown init mode {mode!r} (choose from {', '.join(INIT_MODES)})")


def initialize_from(model: keras.Model, checkpoint: Path, mode: str) -> list[str]:
    """Copy the weights DeepLab's FAQ cases ask for from another run; returns the layer names restored.

    all: every layer (same classes); all-but-logits: a new class count; backbone: only the
    encoder (e.g. from a different head). Shapes that differ are an error naming the layer.
    """
    source, _ = load_model(checkpoint)
    by_name = {layer.name: layer for layer in source.layers}
    restored = []
    for layer in _layers_for_mode(model, mode):
        if not layer.weights:
            continue
        other = by_name.get(layer.name)
        if other is None:
            raise ValueError(f"{checkpoint}: has no layer {layer.name!r} (init mode {mode}); use --init-mode backbone for a different head")
        mine, theirs = layer.get_weights(), other.get_weights()
        shapes = [w.shape for w in mine], [w.shape for w in theirs]
        if shapes[0] != shapes[1]:
            hint = " (different class count: use --init-mode all-but-logits)" if layer.name == "logits" else ""
            raise ValueError(f"{checkpoint}: layer {layer.name!r} has shapes {shapes[1]}, this model {shapes[0]}{hint}")
        layer.set_weights(theirs)
        restored.append(layer.name)
    return restored


def choose_strategy() -> tf.distribute.Strategy:
    """MirroredStrategy over all GPUs when there are several; otherwise the default (one device)."""
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


def make_train_step(
    model: keras.Model, optimizer: keras.optimizers.Optimizer, loss_config: LossConfig, strategy: tf.distribute.Strategy | None = None, xla: bool = False
) -> Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
    """One optimizer step on a (distributed) batch; returns the loss and the batch's confusion matrix.

    Under MirroredStrategy each replica's loss is the mean over its own valid pixels; dividing by
    the replica count makes the summed gradients those of the mean over replicas.
    """
    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    num_classes = loss_config.num_classes

    @tf.function(jit_compile=xla)
    def replica_step(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = segmentation_loss(labels, logits, loss_config)
            scaled = loss / replicas
            if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
                scaled = optimizer.scale_loss(scaled)
        gradients = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        flat_labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
        valid = tf.not_equal(flat_labels, loss_config.ignore_label)
        predictions = tf.reshape(tf.argmax(logits, axis=-1, output_type=tf.int32), [-1])
        safe_labels = tf.where(valid, flat_labels, 0)  # masked by weight, not by boolean_mask, so XLA can compile it
        confusion = tf.math.confusion_matrix(safe_labels, predictions, num_classes, weights=tf.cast(valid, tf.int64), dtype=tf.int64)
        return loss, confusion

    if replicas == 1:
        return replica_step

    @tf.function
    def distributed_step(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        losses, confusions = strategy.run(replica_step, args=(images, labels))
        loss = strategy.reduce(tf.distribute.ReduceOp.MEAN, losses, axis=None)
        return loss, strategy.reduce(tf.distribute.ReduceOp.SUM, confusions, axis=None)

    return distributed_step


@dataclass
class FitResult:
    start_step: int
    end_step: int
    losses: list[float]
    seconds_per_step: float
    images_per_second: float


def fit(
    dataset: str,
    model_config: ModelConfig,
    loss_config: LossConfig,
    config: FitConfig,
    class_names: list[str],
    on_step: Callable[[int, float, float], None] | None = None,
) -> FitResult:
    """Train until config.steps, resuming from the logdir's latest checkpoint when there is one."""
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)
    logdir = config.logdir
    strategy = choose_strategy()
    with strategy.scope():
        model = build_deeplab(model_config)
        schedule = PolyDecay(config.learning_rate, config.steps, warmup_steps=config.warmup_steps)
        optimizer = keras.optimizers.SGD(schedule, momentum=config.momentum, weight_decay=config.weight_decay or None)
        if keras.mixed_precision.global_policy().compute_dtype == "float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)  # float16 gradients underflow unscaled
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step)
    manager = tf.train.CheckpointManager(checkpoint, str(logdir), max_to_keep=3, checkpoint_name="ckpt")
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    elif config.init_checkpoint is not None:
        initialize_from(model, config.init_checkpoint, config.init_mode)
    save_run(logdir, dataset, model_config, loss_config.ignore_label, config.colormap, class_names)
    augment = AugmentConfig(
        crop_height=config.crop_height, crop_width=config.crop_width, ignore_label=loss_config.ignore_label, mean_pixel=mean_pixel(model_config.backbone)
    )
    batches = iter(strategy.experimental_distribute_dataset(train_dataset(record_files(config.data_dir, config.split), augment, config.batch_size, seed=config.seed)))
    num_classes = model_config.num_classes

    train_step = make_train_step(model, optimizer, loss_config, strategy, config.xla)

    writer = tf.summary.create_file_writer(str(logdir / "train"))
    start = int(step.numpy())
    losses: list[float] = []
    confusion = np.zeros((num_classes, num_classes), np.int64)
    timed_steps, timed_seconds = 0, 0.0
    while int(step.numpy()) < config.steps:
        began = time.perf_counter()  # wall time of a step, input wait included
        images, labels = next(batches)
        loss, batch_confusion = train_step(images, labels)
        loss_value = float(loss)
        elapsed = time.perf_counter() - began
        step.assign_add(1)
        current = int(step.numpy())
        if current > start + 1:  # the first step traces the graph
            timed_steps, timed_seconds = timed_steps + 1, timed_seconds + elapsed
        losses.append(loss_value)
        confusion += batch_confusion.numpy()
        if current % config.summary_every == 0 or current == config.steps:
            with writer.as_default(step=current):
                tf.summary.scalar("loss", loss_value)
                tf.summary.scalar("learning_rate", float(schedule(current - 1)))
                tf.summary.scalar("train_miou", class_scores(confusion).miou)
            confusion[:] = 0
        if current % config.image_summary_every == 0 or current == config.steps:
            local_images, local_labels = (strategy.experimental_local_results(t)[0] for t in (images, labels))
            _image_summaries(writer, current, model, local_images, local_labels, config.colormap, loss_config.ignore_label)
        if current % config.checkpoint_every == 0 or current == config.steps:
            manager.save(checkpoint_number=current)
        if on_step is not None:
            on_step(current, loss_value, elapsed)
    writer.flush()
    per_step = timed_seconds / timed_steps if timed_steps else float("nan")
    return FitResult(start, int(step.numpy()), losses, per_step, config.batch_size / per_step if timed_steps else float("nan"))


def _image_summaries(writer, step: int, model: keras.Model, images: tf.Tensor, labels: tf.Tensor, colormap: list[list[int]], ignore_label: int) -> None:  # type: ignore[no-untyped-def]
    """Input, label and prediction of the first images of the batch, in the registry colormap."""
    from segtrain.visualize import colorize

    shown = images[:3]
    predictions = tf.argmax(model(shown, training=False), axis=-1).numpy().astype(np.uint8)
    with writer.as_default(step=step):
        tf.summary.image("input", tf.cast(shown, tf.uint8), max_outputs=3)
        tf.summary.image("label", np.stack([colorize(lab[..., 0], colormap, ignore_label) for lab in labels[:3].numpy()]), max_outputs=3)
        tf.summary.image("prediction", np.stack([colorize(p, colormap, ignore_label) for p in predictions]), max_outputs=3)
