"""The `segtrain fit` loop: DeepLab training with checkpoints, resume, fine-tuning modes and TensorBoard.

A custom loop (rather than Model.fit) because DeepLab's loss needs the ignore mask and optional
hard-pixel mining over the whole batch, the step counter must survive restarts exactly (resume
continues at the saved step and the poly schedule with it), and summaries are written per step.

The loop runs in named phases, as torchvision's reference trainer does: `_setup` (model, optimizer,
starting weights, data, step function, evaluator), `_step` (one optimizer step on the next batch)
and `_on_step_end` (summaries, batch-norm statistics, checkpoint, evaluation). Checkpoints and the
run file come from segtrain.checkpoints and segtrain.run_file.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from segtrain.bn_stats import PreciseBatchNorm, batch_norm_layers
from segtrain.checkpoints import check_resumable, describe_model, initialize_from, restore_checkpoint, saved_step
from segtrain.data import AugmentConfig, record_files, require_records, train_dataset
from segtrain.distribute import Cluster, choose_strategy, cluster_from_env, shard_policy, write_location
from segtrain.errors import SegtrainError, TrainingDiverged, tf_message
from segtrain.fit_eval import FitEvaluator, eval_due, prepare_evaluation
from segtrain.labels import Labels
from segtrain.losses import LossConfig, PolyDecay, segmentation_loss
from segtrain.metrics import class_scores
from segtrain.deeplab_model import build_training
from segtrain.model import ModelConfig, load_backbone_weights
from segtrain.optim import loss_regularizer, make_optimizer
from segtrain.run_file import save_run


@dataclass(frozen=True)
class FitConfig:
    """How to train (the model is ModelConfig's, the labels Labels'): data, schedule, augmentation, loss options, cadence."""

    data_dir: Path
    logdir: Path
    split: str = "train"
    steps: int = 1000
    batch_size: int = 8
    augment: AugmentConfig = AugmentConfig()  # crop, scales, flips; its ignore label and mean pixel are the labels' and the model's
    learning_rate: float = 0.007
    momentum: float = 0.9
    weight_decay: float = 4e-5  # sgd: DeepLab's L2 on conv kernels in the loss; adamw: decoupled decay (segtrain.optim)
    warmup_steps: int = 0
    top_k_percent: float = 100.0  # hard-pixel mining (segtrain.losses)
    label_smoothing: float = 0.0
    checkpoint_every: int = 500
    summary_every: int = 50
    image_summary_every: int = 500
    xla: bool = False
    init_checkpoint: Path | None = None
    init_mode: str = "all-but-logits"
    seed: int | None = None
    bn_recompute_batches: int = 20  # precise batch-norm statistics before each save / evaluation (0: off); segtrain.bn_stats
    eval_every: int = 0  # evaluate eval_split every N steps and at the end, keep LOGDIR/best (0: off); segtrain.fit_eval
    eval_split: str = "val"
    optimizer: str = "sgd"  # sgd (momentum, DeepLab's) or adamw; segtrain.optim
    sync_batch_norm: bool = False  # batch-norm moments over the global batch of every replica (segtrain.distribute)

    def loss_config(self, labels: Labels) -> LossConfig:
        return LossConfig(labels.num_classes, labels.ignore_label, labels.class_weights, self.top_k_percent, self.label_smoothing)


def make_train_step(
    model: keras.Model, optimizer: keras.optimizers.Optimizer, loss_config: LossConfig, strategy: tf.distribute.Strategy | None = None, xla: bool = False,
    regularizer: Callable[[], tf.Tensor] | None = None, aux_weight: float = 0.0,
) -> Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
    """One optimizer step on a (distributed) batch; returns the loss and the batch's confusion matrix.

    regularizer: a term added to the loss that is differentiated (DeepLab's L2, segtrain.optim); the
    returned loss is the data loss without it.
    aux_weight > 0: model is deeplab_model.build_training's two-output training model, and the data loss is
    main + aux_weight * auxiliary (the same ignore-masked loss on each); the confusion is the main logits'.

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
            if aux_weight > 0:
                logits, aux_logits = logits
                loss = segmentation_loss(labels, logits, loss_config) + aux_weight * segmentation_loss(labels, aux_logits, loss_config)
            else:
                loss = segmentation_loss(labels, logits, loss_config)
            scaled = (loss if regularizer is None else loss + regularizer()) / replicas
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
    notes: list[str] = field(default_factory=list)  # where the starting weights came from
    workers: int = 1
    replicas: int = 1
    chief: bool = True  # this process wrote the logdir (always, but for the other workers of a cluster)


def fit(
    model_config: ModelConfig,
    labels: Labels,
    config: FitConfig,
    on_step: Callable[[int, float, float], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> FitResult:
    """Train until config.steps, resuming from the logdir's latest checkpoint when there is one.

    Refused before any model is built: a split without records (training would wait forever
    for a first batch) and a logdir whose checkpoints cannot be resumed with this model. A loss
    or weights that become NaN or infinite stop training before anything of them is saved.
    """
    if config.augment.ignore_label != labels.ignore_label:
        raise ValueError(f"the augmentation pads labels with {config.augment.ignore_label}, the dataset's ignore label is {labels.ignore_label}")
    cluster = cluster_from_env()
    strategy = choose_strategy(cluster)  # first: a cluster's collective ops are configured before TensorFlow runs anything
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)
    files = record_files(config.data_dir, config.split)
    require_records(files, config.data_dir, config.split)
    evaluation = prepare_evaluation(config, labels)  # --eval-split checked before training
    check_resumable(config.logdir, model_config, config.optimizer)
    done = saved_step(config.logdir)
    if done is not None and done >= config.steps:
        # Nothing to train: say so without building or restoring anything (a restore that is never
        # used would print one TensorFlow warning per unrestored optimizer variable at exit).
        return FitResult(done, done, [], float("nan"), float("nan"), workers=cluster.workers, replicas=strategy.num_replicas_in_sync, chief=cluster.is_chief)
    if not cluster.is_chief:
        on_step = on_note = None  # the chief reports
    with write_location(config.logdir, cluster) as write_dir:
        session = _setup(model_config, labels, config, strategy, cluster, files, evaluation, write_dir, on_note)
        return _loop(session, on_step, on_note)


@dataclass
class _Session:
    """What the loop works with, made once by _setup."""

    config: FitConfig
    labels: Labels
    strategy: tf.distribute.Strategy
    cluster: Cluster
    model: keras.Model
    schedule: PolyDecay
    step: tf.Variable
    manager: tf.train.CheckpointManager
    batches: object  # iterator over distributed (images, labels) batches
    train_step: Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]
    regularizer: Callable[[], tf.Tensor] | None
    refresh_batch_norm: PreciseBatchNorm
    evaluator: FitEvaluator | None
    writer: tf.summary.SummaryWriter
    notes: list[str]


def _setup(  # type: ignore[no-untyped-def]
    model_config: ModelConfig, labels: Labels, config: FitConfig, strategy: tf.distribute.Strategy, cluster: Cluster,
    files: list[str], evaluation, write_dir: Path, on_note: Callable[[str], None] | None,
) -> _Session:
    """Phase 1: model and optimizer (in the strategy's scope), starting weights, run file, data, step function."""
    with strategy.scope():
        model, training_model, aux_layers = build_training(model_config)  # one model unless --aux-loss (deeplab_model)
        if config.sync_batch_norm:
            for layer in batch_norm_layers(training_model):
                layer.synchronized = True  # Keras' cross-replica moments (read at call time, before any step is traced)
        schedule = PolyDecay(config.learning_rate, config.steps, warmup_steps=config.warmup_steps)
        optimizer = make_optimizer(config.optimizer, schedule, training_model, config.momentum, config.weight_decay)
        if keras.mixed_precision.global_policy().compute_dtype == "float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)  # float16 gradients underflow unscaled
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step)
    if aux_layers:  # saved beside the model (which eval, predict and export restore alone), so resume continues the head
        checkpoint.aux_head = tf.train.Checkpoint(**{layer.name.replace(".", "_"): layer for layer in aux_layers if layer.weights})
    manager = tf.train.CheckpointManager(checkpoint, str(write_dir), max_to_keep=3, checkpoint_name="ckpt")
    notes = _starting_weights(model, checkpoint, model_config, config)
    for note in notes:
        if on_note is not None:
            on_note(note)
    crop = [config.augment.crop_height, config.augment.crop_width]  # export's default TFLite input size
    save_run(write_dir, model_config, labels, extra={"optimizer": config.optimizer, "crop_size": crop})
    source = train_dataset(files, config.augment, config.batch_size, seed=config.seed)
    if cluster.multi_worker:  # each worker trains on its own part of the split
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = shard_policy(files, cluster)
        source = source.with_options(options)
    regularizer = loss_regularizer(config.optimizer, training_model, config.weight_decay)
    aux = {"aux_weight": model_config.aux_loss} if aux_layers else {}
    train_step = make_train_step(training_model, optimizer, config.loss_config(labels), strategy, config.xla, regularizer=regularizer, **aux)
    # Every worker averages the same batches (one seed), so that all hold the same statistics.
    bn_seed = config.seed + 1 if config.seed is not None else (0 if cluster.multi_worker else None)
    refresh_batch_norm = PreciseBatchNorm(
        model, lambda: train_dataset(files, config.augment, config.batch_size, seed=bn_seed),
        config.bn_recompute_batches, lambda iterator: _next_batch(iterator, config),
    )
    return _Session(
        config, labels, strategy, cluster, model, schedule, step, manager, iter(strategy.experimental_distribute_dataset(source)),
        train_step, regularizer, refresh_batch_norm, None if evaluation is None else FitEvaluator(model, *evaluation, write_dir),
        tf.summary.create_file_writer(str(write_dir / "train")), notes,
    )


def _starting_weights(model: keras.Model, checkpoint: tf.train.Checkpoint, model_config: ModelConfig, config: FitConfig) -> list[str]:
    """Resume from the logdir's latest checkpoint (every worker from the chief's), else the backbone weights and
    --init-checkpoint asked for; one note per source of weights."""
    latest = tf.train.latest_checkpoint(str(config.logdir))
    if latest:
        restore_checkpoint(checkpoint, latest, describe_model(model_config, "this fit"), verified=True)
        return []
    notes = []
    if model_config.backbone_weights is not None:
        notes.append(f"backbone weights: {load_backbone_weights(model, model_config)}")
    if config.init_checkpoint is not None:
        restored = initialize_from(model, config.init_checkpoint, config.init_mode)
        notes.append(f"initialized {len(restored)} variables from {config.init_checkpoint} (--init-mode {config.init_mode})")
    return notes


def _loop(session: _Session, on_step: Callable[[int, float, float], None] | None, on_note: Callable[[str], None] | None) -> FitResult:
    """Phases 2 and 3, until the last step: a step, then what follows it."""
    config, labels = session.config, session.labels
    start = int(session.step.numpy())
    losses: list[float] = []
    confusion = np.zeros((labels.num_classes, labels.num_classes), np.int64)
    timed_steps, timed_seconds = 0, 0.0
    while int(session.step.numpy()) < config.steps:
        images, batch_labels, loss_value, batch_confusion, elapsed = _step(session)
        current = int(session.step.numpy())
        if current > start + 1:  # the first step traces the graph
            timed_steps, timed_seconds = timed_steps + 1, timed_seconds + elapsed
        losses.append(loss_value)
        confusion += batch_confusion
        _on_step_end(session, current, loss_value, confusion, images, batch_labels, on_note)
        if on_step is not None:
            on_step(current, loss_value, elapsed)
    session.writer.flush()
    per_step = timed_seconds / timed_steps if timed_steps else float("nan")
    return FitResult(
        start, int(session.step.numpy()), losses, per_step, config.batch_size / per_step if timed_steps else float("nan"), session.notes,
        workers=session.cluster.workers, replicas=session.strategy.num_replicas_in_sync, chief=session.cluster.is_chief,
    )


def _step(session: _Session) -> tuple[tf.Tensor, tf.Tensor, float, np.ndarray, float]:
    """Phase 2: one optimizer step on the next batch; (images, labels, loss, confusion, wall seconds incl. input wait)."""
    began = time.perf_counter()
    images, labels = _next_batch(session.batches, session.config)
    loss, batch_confusion = session.train_step(images, labels)
    loss_value = float(loss)
    elapsed = time.perf_counter() - began
    if not math.isfinite(loss_value):
        raise TrainingDiverged(_diverged(f"loss became {_finite_name(loss_value)}", int(session.step.numpy()) + 1, session.labels.dataset, session.manager))
    session.step.assign_add(1)
    return images, labels, loss_value, batch_confusion.numpy(), elapsed


def _on_step_end(session: _Session, current: int, loss_value: float, confusion: np.ndarray, images: tf.Tensor, labels: tf.Tensor, on_note: Callable[[str], None] | None) -> None:
    """Phase 3: scalars (then the confusion restarts), batch-norm statistics, images, checkpoint, evaluation."""
    config, last = session.config, current == session.config.steps
    if current % config.summary_every == 0 or last:
        with session.writer.as_default(step=current):
            tf.summary.scalar("loss", loss_value)
            tf.summary.scalar("learning_rate", float(session.schedule(current - 1)))
            tf.summary.scalar("train_miou", class_scores(confusion).miou)
            if session.regularizer is not None:  # DeepLab's L2 term at the weights after this step
                tf.summary.scalar("loss/weight_decay", float(session.regularizer()))
        confusion[:] = 0
    evaluating = session.evaluator is not None and eval_due(current, config.eval_every, config.steps)
    saving = current % config.checkpoint_every == 0 or last
    if evaluating or saving:
        session.refresh_batch_norm()  # what is evaluated and saved normalizes with its own weights' statistics (segtrain.bn_stats)
    if current % config.image_summary_every == 0 or last:
        local_images, local_labels = (session.strategy.experimental_local_results(t)[0] for t in (images, labels))
        _image_summaries(session.writer, current, session.model, local_images, local_labels, session.labels)
    if saving:
        if not weights_finite(session.model):
            raise TrainingDiverged(_diverged("weights became NaN or infinite", current, session.labels.dataset, session.manager))
        session.manager.save(checkpoint_number=current)
    if evaluating and session.evaluator is not None:
        line = session.evaluator(current)
        if on_note is not None:
            on_note(line)


def weights_finite(model: keras.Model) -> bool:
    """True when every weight (batch-norm statistics included) is a finite number."""
    values = (tf.convert_to_tensor(w) for w in model.weights)
    return all(bool(tf.reduce_all(tf.math.is_finite(v))) for v in values if v.dtype.is_floating)


def _finite_name(value: float) -> str:
    return "NaN" if math.isnan(value) else "infinite"


def _diverged(what: str, step: int, dataset: str | None, manager: tf.train.CheckpointManager) -> str:
    kept = f"the last checkpoint, {manager.latest_checkpoint}, is kept" if manager.latest_checkpoint else "no checkpoint was written"
    return f"{what} at step {step}: check the class_weights of {dataset!r} in the registry and lower --lr; nothing of this step was saved ({kept})"


def _next_batch(batches, config: FitConfig):  # type: ignore[no-untyped-def]
    """The next batch; a record that cannot be read or decoded is an error naming the records folder."""
    try:
        return next(batches)
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as exc:
        raise SegtrainError(f"{config.data_dir}: a {config.split} record cannot be read or decoded ({tf_message(exc)}); check the shards with `segprep verify {config.data_dir}`") from None


def _image_summaries(writer, step: int, model: keras.Model, images: tf.Tensor, labels: tf.Tensor, meaning: Labels) -> None:  # type: ignore[no-untyped-def]
    """Input, label and prediction of the first images of the batch, in the registry colormap."""
    from segprep.colormaps import colorize

    shown = images[:3]
    predictions = tf.argmax(model(shown, training=False), axis=-1).numpy().astype(np.uint8)
    with writer.as_default(step=step):
        tf.summary.image("input", tf.cast(shown, tf.uint8), max_outputs=3)
        tf.summary.image("label", np.stack([colorize(lab[..., 0], meaning.colour_list, meaning.ignore_label) for lab in labels[:3].numpy()]), max_outputs=3)
        tf.summary.image("prediction", np.stack([colorize(p, meaning.colour_list, meaning.ignore_label) for p in predictions]), max_outputs=3)
