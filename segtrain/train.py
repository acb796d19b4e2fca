"""The `segtrain fit` loop: DeepLab training with checkpoints, resume, fine-tuning modes and TensorBoard.

A custom loop (rather than Model.fit) because DeepLab's loss needs the ignore mask and optional
hard-pixel mining over the whole batch, the step counter must survive restarts exactly (resume
continues at the saved step and the poly schedule with it), and summaries are written per step.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from segtrain.bn_stats import PreciseBatchNorm, batch_norm_layers
from segtrain.data import AugmentConfig, record_files, require_records, train_dataset
from segtrain.distribute import Cluster, choose_strategy, cluster_from_env, shard_policy, write_location
from segtrain.errors import CheckpointError, RunFileError, SegtrainError, TrainingDiverged, tf_message
from segtrain.fit_eval import FitEvaluator, eval_due, prepare_evaluation
from segtrain.losses import LossConfig, PolyDecay, segmentation_loss
from segtrain.metrics import class_scores
from segtrain.model import BACKBONES, MEAN_PIXEL, MODEL_FORMAT, ModelConfig, build_deeplab, load_backbone_weights, model_info
from segtrain.optim import loss_regularizer, make_optimizer, resume_problem

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
    weight_decay: float = 4e-5  # sgd: DeepLab's L2 on conv kernels in the loss; adamw: decoupled decay (segtrain.optim)
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
    bn_recompute_batches: int = 20  # precise batch-norm statistics before each save / evaluation (0: off); segtrain.bn_stats
    eval_every: int = 0  # evaluate eval_split every N steps and at the end, keep LOGDIR/best (0: off); segtrain.fit_eval
    eval_split: str = "val"
    optimizer: str = "sgd"  # sgd (momentum, DeepLab's) or adamw; segtrain.optim
    min_scale: float = 0.5  # random scale augmentation, DeepLab's flags and defaults; segtrain.data.random_scale
    max_scale: float = 2.0
    scale_step: float = 0.25
    sync_batch_norm: bool = False  # batch-norm moments over the global batch of every replica (segtrain.distribute)


def save_run(logdir: Path, dataset: str | None, model_config: ModelConfig, ignore_label: int, colormap: list[list[int]], class_names: list[str], extra: dict | None = None) -> None:
    """Write segtrain.json: the model format and architecture, and the dataset's labels and colours.

    extra: more top-level keys (import-deeplab records where the weights came from under "imported_from").
    """
    from segprep.fileio import atomic_write_text

    logdir.mkdir(parents=True, exist_ok=True)
    document = {
        "model_format": MODEL_FORMAT, "dataset": dataset, "model": model_config.architecture(), "ignore_label": ignore_label,
        "colormap": colormap, "class_names": class_names, **(extra or {}),
    }
    atomic_write_text(logdir / RUN_FILE, json.dumps(document, indent=1))


# Keys of segtrain.json's "model" without which no model can be rebuilt (the others have defaults).
_MODEL_REQUIRED = ("num_classes", "backbone", "output_stride")
# What a checkpoint's variables (their names and shapes) depend on.
_ARCHITECTURE = ("num_classes", "backbone", "depth_multiplier", "output_stride", "aspp", "atrous_rates", "image_pooling", "decoder", "filters")
_ARCHITECTURE_FIELDS = frozenset(f.name for f in fields(ModelConfig)) - {"backbone_weights"}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _model_problem(model: object) -> str | None:
    """Why a segtrain.json "model" object cannot rebuild a model, or None when it can."""
    if not isinstance(model, dict):
        return f'"model" must be an object, found {type(model).__name__}'
    missing = [key for key in _MODEL_REQUIRED if key not in model]
    if missing:
        return f'"model" lacks {", ".join(missing)}'
    unknown = sorted(set(model) - _ARCHITECTURE_FIELDS)
    if unknown:
        return f'"model" has unknown keys {", ".join(unknown)} (written by another segtrain version?)'
    for key, (valid, wanted) in _MODEL_CHECKS.items():
        if key in model and not valid(model[key]):
            return f'"model.{key}" must be {wanted}, found {json.dumps(model[key])}'
    try:
        ModelConfig.from_architecture(model)
    except (TypeError, ValueError) as exc:  # combinations DeepLabConfig refuses (e.g. a depth multiplier for Xception)
        return f'"model": {exc}'
    return None


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_MODEL_CHECKS = {
    "num_classes": (lambda v: _is_int(v) and 1 <= v <= 256, "an integer in 1..256"),
    "backbone": (lambda v: v in BACKBONES, f"one of {', '.join(BACKBONES)}"),
    "depth_multiplier": (lambda v: _is_number(v) and v > 0, "a positive number"),
    "output_stride": (lambda v: _is_int(v) and v in (8, 16), "8 or 16"),
    "aspp": (lambda v: isinstance(v, bool), "true or false"),
    "atrous_rates": (lambda v: v is None or (isinstance(v, list) and all(_is_int(r) and r >= 1 for r in v)), "null or a list of positive integers"),
    "image_pooling": (lambda v: isinstance(v, bool), "true or false"),
    "decoder": (lambda v: isinstance(v, bool), "true or false"),
    "filters": (lambda v: _is_int(v) and v >= 1, "a positive integer"),
    "bn_momentum": (lambda v: v is None or (_is_number(v) and 0 < v < 1), "null or a number in (0, 1)"),
    "weight_init": (lambda v: v in ("deeplab", "keras"), '"deeplab" or "keras"'),
}


def _run_problem(document: object) -> str | None:
    """Why a parsed segtrain.json is unusable, or None when it is complete and well typed."""
    if not isinstance(document, dict):
        return f"expected a JSON object, found {type(document).__name__}"
    if "model_format" not in document:
        return (
            "written by an earlier segtrain whose model is not DeepLab's (no model_format), so its checkpoints cannot be restored; "
            "retrain with segtrain fit, or import a DeepLab checkpoint with segtrain import-deeplab"
        )
    if document["model_format"] != MODEL_FORMAT:
        return f'"model_format" is {json.dumps(document["model_format"])}, this segtrain reads model format {MODEL_FORMAT} (written by another segtrain version?)'
    missing = [key for key in ("model", "ignore_label", "colormap") if key not in document]
    if missing:
        return f"lacks {', '.join(missing)}"
    problem = _model_problem(document["model"])
    if problem:
        return problem
    if not (_is_int(document["ignore_label"]) and 0 <= document["ignore_label"] <= 255):
        return f'"ignore_label" must be an integer in 0..255, found {json.dumps(document["ignore_label"])}'
    colormap = document["colormap"]
    if not (isinstance(colormap, list) and all(isinstance(c, list) and len(c) == 3 and all(_is_int(v) and 0 <= v <= 255 for v in c) for c in colormap)):
        return '"colormap" must be a list of [r, g, b] integers in 0..255'
    names = document.get("class_names", [])
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        return '"class_names" must be a list of strings'
    return None


def load_run(logdir: Path) -> dict:
    """The run document of a fit logdir, checked: RunFileError naming segtrain.json and what is wrong."""
    from segtrain.files import read_regular

    path = logdir / RUN_FILE
    if not path.exists():
        raise RunFileError(f"{path}: missing, so {logdir} is not a segtrain logdir (a DeepLab TF1 checkpoint must be imported with segtrain import-deeplab first)")
    try:
        document = json.loads(read_regular(path).decode("utf-8"))  # a FIFO is refused, never waited on
    except UnicodeDecodeError:
        raise RunFileError(f"{path}: not UTF-8 text (damaged?)") from None
    except json.JSONDecodeError as exc:
        raise RunFileError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    problem = _run_problem(document)
    if problem:
        raise RunFileError(f"{path}: {problem}")
    document.setdefault("class_names", [])
    return document


def _state_problem(logdir: Path) -> str:
    """Why a logdir gives no latest checkpoint: no checkpoint, a garbled state file, or missing files."""
    state = logdir / "checkpoint"
    saved = sorted((p.name[: -len(".index")] for p in logdir.glob("ckpt-*.index")), key=lambda n: (len(n), n))
    hint = f"; pass a checkpoint prefix instead, e.g. {logdir / saved[-1]}" if saved else ""
    if not state.exists():
        return f"{logdir}: no checkpoint in this logdir" if not saved else f"{state}: missing (the logdir has {', '.join(saved)}){hint}"
    recorded = tf.train.get_checkpoint_state(str(logdir))
    if recorded is None or not recorded.model_checkpoint_path:
        return f"{state}: garbled checkpoint state file (it names no checkpoint){hint}"
    return f"{state}: names {recorded.model_checkpoint_path}, whose .index file is missing{hint}"


def _latest_checkpoint(logdir: Path) -> str | None:
    """tf.train.latest_checkpoint, once the state file is known to be a regular file (TensorFlow would
    wait forever on a FIFO named `checkpoint`)."""
    from segtrain.files import require_regular

    state = logdir / "checkpoint"
    if os.path.lexists(state):
        require_regular(state)
    return tf.train.latest_checkpoint(str(logdir))


def resolve_checkpoint(path: Path) -> tuple[Path, str]:
    """(logdir, checkpoint prefix) for a logdir (its latest checkpoint) or a checkpoint prefix inside one.

    A checkpoint's own file (ckpt-2.index, ckpt-2.data-00000-of-00001) stands for its prefix.
    """
    if path.is_dir():
        latest = _latest_checkpoint(path)
        if latest is None:
            raise CheckpointError(_state_problem(path))
        return path, latest
    name = path.name
    if name.endswith(".index") or ".data-" in name:
        path = path.with_name(name[: -len(".index")] if name.endswith(".index") else name[: name.index(".data-")])
    if not Path(f"{path}.index").is_file():
        if not path.exists():
            raise CheckpointError(f"{path}: no such checkpoint, file or folder")
        raise CheckpointError(f"{path}: not a checkpoint (no {path.name}.index)")
    return path.parent, str(path)


def verify_checkpoint(prefix: str, scope: str = "") -> None:
    """Read every tensor (under scope) of a checkpoint, checking its checksums.

    Restoring does not check them: a checkpoint garbled in place restores into silent garbage, one
    truncated fails deep inside TensorFlow with an IndexError. Reading first names the bad file.
    """
    from segtrain.files import require_all_regular

    index = f"{prefix}.index"
    require_all_regular([index, *sorted(Path(prefix).parent.glob(f"{Path(prefix).name}.data-*"))])  # before TensorFlow opens them
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as exc:
        raise CheckpointError(f"{index}: unreadable checkpoint index, truncated or corrupted ({_first_line(exc)})") from None
    data = sorted(Path(prefix).parent.glob(f"{Path(prefix).name}.data-*"))
    if not data:
        raise CheckpointError(f"{prefix}.data-00000-of-00001: missing (the checkpoint has only its index)")
    try:
        for key in reader.get_variable_to_shape_map():
            if key.startswith(scope):
                reader.get_tensor(key)
    except (tf.errors.OpError, IndexError, ValueError) as exc:
        names = ", ".join(str(p) for p in data)
        raise CheckpointError(f"{names}: checkpoint data truncated or corrupted ({_first_line(exc)})") from None


def restore_checkpoint(checkpoint: tf.train.Checkpoint, prefix: str, describe: str, partial: bool = False, verified: bool = False) -> None:
    """Restore prefix into checkpoint's objects; CheckpointError when it is damaged or does not fit.

    describe: the model it should fit, for the message (backbone, output stride, classes).
    partial: restore only what the objects need (the model of a training checkpoint).
    verified: verify_checkpoint already ran (before the model was built, which costs more).
    """
    if not verified:
        verify_checkpoint(prefix, scope="model/" if partial else "")
    try:
        status = checkpoint.restore(prefix)
        if partial:
            status = status.expect_partial()
        status.assert_existing_objects_matched()
    except (ValueError, AssertionError) as exc:
        raise CheckpointError(f"{prefix}: does not fit {describe} ({_first_line(exc)})") from None
    except (tf.errors.OpError, IndexError) as exc:
        raise CheckpointError(f"{prefix}: cannot be restored ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    return tf_message(exc)


def describe_model(model: dict | ModelConfig, source: str = "") -> str:
    """'the model of SOURCE (mobilenetv2, output stride 16, 3 classes)' for messages."""
    values = model.architecture() if isinstance(model, ModelConfig) else model
    where = f" of {source}" if source else ""
    width = f" x{values['depth_multiplier']:g}" if values.get("depth_multiplier", 1.0) != 1.0 else ""
    return f"the model{where} ({values['backbone']}{width}, output stride {values['output_stride']}, {values['num_classes']} classes)"


def load_model(checkpoint: Path) -> tuple[keras.Model, dict]:
    """The model of a fit logdir (or one of its checkpoints) with its trained weights, and the run document."""
    logdir, prefix = resolve_checkpoint(checkpoint)
    run = load_run(logdir)
    verify_checkpoint(prefix, scope="model/")
    model = build_deeplab(ModelConfig.from_architecture(run["model"]))
    restore_checkpoint(tf.train.Checkpoint(model=model), prefix, describe_model(run["model"], str(logdir / RUN_FILE)), partial=True, verified=True)
    return model, run


def initialize_from(model: keras.Model, checkpoint: Path, mode: str) -> list[str]:
    """Copy the weights DeepLab's FAQ modes ask for; returns the TF1 names of the variables copied.

    checkpoint: a DeepLab TF1 checkpoint (model zoo, one's own, or an ImageNet backbone for mode backbone),
    or a segtrain logdir / checkpoint (fit's or import-deeplab's). all: every variable (same classes);
    all-but-logits: all but `logits/` (a new class count); backbone: only the feature extractor (a
    different head). A variable the mode needs that is missing or shaped differently is an error naming both.
    """
    from segtrain.deeplab_checkpoint import is_tf1_checkpoint, load_deeplab_weights
    from segtrain.deeplab_model import variables_for_mode

    backbone, _ = model_info(model)
    if mode not in INIT_MODES:
        raise ValueError(f"unknown init mode {mode!r} (choose from {', '.join(INIT_MODES)})")
    if is_tf1_checkpoint(checkpoint):
        load_deeplab_weights(model, backbone, checkpoint, mode)
        return list(variables_for_mode(model, backbone, mode))
    logdir, _ = resolve_checkpoint(checkpoint)
    source_config = load_run(logdir)["model"]
    holds = describe_model(source_config).replace("the model", "a model", 1)
    if source_config["backbone"] != backbone:
        raise CheckpointError(f"{checkpoint}: holds {holds}, this fit's backbone is {backbone}; choose a checkpoint of the same backbone")
    source, _ = load_model(checkpoint)
    return _copy_variables(variables_for_mode(model, backbone, mode), variables_for_mode(source, backbone, "all"), checkpoint, mode, holds)


def _copy_variables(targets: dict[str, keras.Variable], sources: dict[str, keras.Variable], checkpoint: Path, mode: str, holds: str) -> list[str]:
    """Check every target against the source first (so a refusal changes nothing), then assign."""
    for name, variable in targets.items():
        source = sources.get(name)
        if source is None:
            raise CheckpointError(f"{checkpoint}: has no variable '{name}' for model weight '{variable.path}' (init mode {mode}); use --init-mode backbone for a different head")
        if tuple(source.shape) != tuple(variable.shape):
            hint = "; a different class count needs --init-mode all-but-logits" if name.startswith("logits/") else ""
            raise CheckpointError(f"{checkpoint}: variable '{name}' has shape {list(source.shape)}, this model's '{variable.path}' needs {list(variable.shape)} (the checkpoint holds {holds}){hint}")
    for name, variable in targets.items():
        variable.assign(sources[name])
    return list(targets)


def make_train_step(
    model: keras.Model, optimizer: keras.optimizers.Optimizer, loss_config: LossConfig, strategy: tf.distribute.Strategy | None = None, xla: bool = False,
    regularizer: Callable[[], tf.Tensor] | None = None,
) -> Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
    """One optimizer step on a (distributed) batch; returns the loss and the batch's confusion matrix.

    regularizer: a term added to the loss that is differentiated (DeepLab's L2, segtrain.optim); the
    returned loss is the data loss without it.

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
    dataset: str,
    model_config: ModelConfig,
    loss_config: LossConfig,
    config: FitConfig,
    class_names: list[str],
    on_step: Callable[[int, float, float], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> FitResult:
    """Train until config.steps, resuming from the logdir's latest checkpoint when there is one.

    Refused before any model is built: a split without records (training would wait forever
    for a first batch) and a logdir whose checkpoints cannot be resumed with this model. A loss
    or weights that become NaN or infinite stop training before anything of them is saved.
    """
    cluster = cluster_from_env()
    strategy = choose_strategy(cluster)  # first: a cluster's collective ops are configured before TensorFlow runs anything
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)
    files = record_files(config.data_dir, config.split)
    require_records(files, config.data_dir, config.split)
    evaluation = prepare_evaluation(config, model_config.num_classes, loss_config.ignore_label, class_names)  # --eval-split checked before training
    check_resumable(config.logdir, model_config, config.optimizer)
    done = saved_step(config.logdir)
    if done is not None and done >= config.steps:
        # Nothing to train: say so without building or restoring anything (a restore that is never
        # used would print one TensorFlow warning per unrestored optimizer variable at exit).
        return FitResult(done, done, [], float("nan"), float("nan"), workers=cluster.workers, replicas=strategy.num_replicas_in_sync, chief=cluster.is_chief)
    if not cluster.is_chief:
        on_step = on_note = None  # the chief reports
    with write_location(config.logdir, cluster) as write_dir:
        return _train(dataset, model_config, loss_config, config, class_names, strategy, cluster, files, evaluation, write_dir, on_step, on_note)


def _train(  # type: ignore[no-untyped-def]
    dataset: str, model_config: ModelConfig, loss_config: LossConfig, config: FitConfig, class_names: list[str],
    strategy: tf.distribute.Strategy, cluster: Cluster, files: list[str], evaluation, write_dir: Path,
    on_step: Callable[[int, float, float], None] | None, on_note: Callable[[str], None] | None,
) -> FitResult:
    """fit's loop; every worker of a cluster runs it alike, writing into write_dir (the logdir for the chief)."""
    logdir = config.logdir
    with strategy.scope():
        model = build_deeplab(model_config)
        if config.sync_batch_norm:
            for layer in batch_norm_layers(model):
                layer.synchronized = True  # Keras' cross-replica moments (read at call time, before any step is traced)
        schedule = PolyDecay(config.learning_rate, config.steps, warmup_steps=config.warmup_steps)
        optimizer = make_optimizer(config.optimizer, schedule, model, config.momentum, config.weight_decay)
        if keras.mixed_precision.global_policy().compute_dtype == "float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)  # float16 gradients underflow unscaled
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step)
    manager = tf.train.CheckpointManager(checkpoint, str(write_dir), max_to_keep=3, checkpoint_name="ckpt")
    notes = []
    latest = tf.train.latest_checkpoint(str(logdir))  # every worker resumes from the chief's logdir
    if latest:
        restore_checkpoint(checkpoint, latest, describe_model(model_config, "this fit"), verified=True)
    else:
        if model_config.backbone_weights is not None:
            notes.append(f"backbone weights: {load_backbone_weights(model, model_config)}")
        if config.init_checkpoint is not None:
            restored = initialize_from(model, config.init_checkpoint, config.init_mode)
            notes.append(f"initialized {len(restored)} variables from {config.init_checkpoint} (--init-mode {config.init_mode})")
        for note in notes:
            if on_note is not None:
                on_note(note)
    save_run(write_dir, dataset, model_config, loss_config.ignore_label, config.colormap, class_names, extra={"optimizer": config.optimizer})
    augment = AugmentConfig(
        crop_height=config.crop_height, crop_width=config.crop_width, ignore_label=loss_config.ignore_label, mean_pixel=MEAN_PIXEL,
        min_scale=config.min_scale, max_scale=config.max_scale, scale_step=config.scale_step,
    )
    source = train_dataset(files, augment, config.batch_size, seed=config.seed)
    if cluster.multi_worker:  # each worker trains on its own part of the split
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = shard_policy(files, cluster)
        source = source.with_options(options)
    batches = iter(strategy.experimental_distribute_dataset(source))
    num_classes = model_config.num_classes

    regularizer = loss_regularizer(config.optimizer, model, config.weight_decay)
    train_step = make_train_step(model, optimizer, loss_config, strategy, config.xla, regularizer=regularizer)
    # Every worker averages the same batches (one seed), so that all hold the same statistics.
    bn_seed = config.seed + 1 if config.seed is not None else (0 if cluster.multi_worker else None)
    refresh_batch_norm = PreciseBatchNorm(
        model, lambda: train_dataset(files, augment, config.batch_size, seed=bn_seed),
        config.bn_recompute_batches, lambda iterator: _next_batch(iterator, config),
    )
    evaluator = None if evaluation is None else FitEvaluator(model, *evaluation, write_dir)

    writer = tf.summary.create_file_writer(str(write_dir / "train"))
    start = int(step.numpy())
    losses: list[float] = []
    confusion = np.zeros((num_classes, num_classes), np.int64)
    timed_steps, timed_seconds = 0, 0.0
    while int(step.numpy()) < config.steps:
        began = time.perf_counter()  # wall time of a step, input wait included
        images, labels = _next_batch(batches, config)
        loss, batch_confusion = train_step(images, labels)
        loss_value = float(loss)
        elapsed = time.perf_counter() - began
        if not math.isfinite(loss_value):
            raise TrainingDiverged(_diverged(f"loss became {_finite_name(loss_value)}", int(step.numpy()) + 1, dataset, manager))
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
                if regularizer is not None:  # DeepLab's L2 term at the weights after this step
                    tf.summary.scalar("loss/weight_decay", float(regularizer()))
            confusion[:] = 0
        evaluating = evaluator is not None and eval_due(current, config.eval_every, config.steps)
        if evaluating or current % config.checkpoint_every == 0 or current == config.steps:
            refresh_batch_norm()  # what is evaluated and saved normalizes with its own weights' statistics (segtrain.bn_stats)
        if current % config.image_summary_every == 0 or current == config.steps:
            local_images, local_labels = (strategy.experimental_local_results(t)[0] for t in (images, labels))
            _image_summaries(writer, current, model, local_images, local_labels, config.colormap, loss_config.ignore_label)
        if current % config.checkpoint_every == 0 or current == config.steps:
            if not weights_finite(model):
                raise TrainingDiverged(_diverged("weights became NaN or infinite", current, dataset, manager))
            manager.save(checkpoint_number=current)
        if evaluating and evaluator is not None:
            line = evaluator(current)
            if on_note is not None:
                on_note(line)
        if on_step is not None:
            on_step(current, loss_value, elapsed)
    writer.flush()
    per_step = timed_seconds / timed_steps if timed_steps else float("nan")
    return FitResult(
        start, int(step.numpy()), losses, per_step, config.batch_size / per_step if timed_steps else float("nan"), notes,
        workers=cluster.workers, replicas=strategy.num_replicas_in_sync, chief=cluster.is_chief,
    )


STEP_KEY = "step/.ATTRIBUTES/VARIABLE_VALUE"  # fit's tf.train.Checkpoint(step=...) in a checkpoint's index


def saved_step(logdir: Path) -> int | None:
    """The step of the logdir's latest checkpoint, read from the checkpoint alone (no model built),
    or None when there is none to resume. check_resumable has already verified the checkpoint."""
    if not logdir.is_dir() or not (logdir / "checkpoint").exists():
        return None
    latest = _latest_checkpoint(logdir)
    if latest is None:
        return None
    try:
        reader = tf.train.load_checkpoint(latest)
        if reader.has_tensor(STEP_KEY):
            return int(reader.get_tensor(STEP_KEY))
    except (tf.errors.OpError, ValueError) as exc:
        raise CheckpointError(f"{latest}.index: cannot read the step ({_first_line(exc)})") from None
    return None


def check_resumable(logdir: Path, model_config: ModelConfig, optimizer: str = "sgd") -> None:
    """Refuse a logdir whose checkpoints this fit could not resume, before anything is built.

    A garbled `checkpoint` state file would make training start again from step 0 and write
    ckpt-1, ckpt-2, ... over the old ones; a damaged latest checkpoint or another architecture
    (read from segtrain.json) would fail deep in restoring, after the model was built.
    """
    if not logdir.is_dir():
        return
    if not ((logdir / "checkpoint").exists() or any(logdir.glob("ckpt-*.index"))):
        if os.path.lexists(logdir / RUN_FILE):  # fit rewrites it: only a segtrain.json segtrain wrote (a run stopped before its first checkpoint)
            try:
                load_run(logdir)
            except RunFileError as exc:
                raise RunFileError(f"{exc}; fit would replace it, so it refuses this --logdir: choose a new one") from None
        return
    latest = _latest_checkpoint(logdir)
    if latest is None:
        raise CheckpointError(f"{_state_problem(logdir)}; refusing to train over the checkpoints of {logdir}")
    verify_checkpoint(latest)
    if not (logdir / RUN_FILE).exists():
        return
    run = load_run(logdir)
    if "imported_from" in run:
        raise RunFileError(
            f"{logdir / RUN_FILE}: {logdir} holds a checkpoint imported by segtrain import-deeplab, not a training run to resume; "
            f"fine-tune it into a new --logdir with --init-checkpoint {logdir}"
        )
    saved = run["model"]
    wanted = model_config.architecture()
    differences = [f"{key} {json.dumps(saved.get(key))} (asked: {json.dumps(wanted[key])})" for key in _ARCHITECTURE if saved.get(key, wanted[key]) != wanted[key]]
    if differences:
        raise RunFileError(f"{logdir / RUN_FILE}: this logdir was trained with {', '.join(differences)}; resume with the same options or choose a new --logdir")
    problem = resume_problem(run.get("optimizer"), optimizer)
    if problem:
        raise RunFileError(f"{logdir / RUN_FILE}: {problem}")


def weights_finite(model: keras.Model) -> bool:
    """True when every weight (batch-norm statistics included) is a finite number."""
    values = (tf.convert_to_tensor(w) for w in model.weights)
    return all(bool(tf.reduce_all(tf.math.is_finite(v))) for v in values if v.dtype.is_floating)


def _finite_name(value: float) -> str:
    return "NaN" if math.isnan(value) else "infinite"


def _diverged(what: str, step: int, dataset: str, manager: tf.train.CheckpointManager) -> str:
    kept = f"the last checkpoint, {manager.latest_checkpoint}, is kept" if manager.latest_checkpoint else "no checkpoint was written"
    return f"{what} at step {step}: check the class_weights of {dataset!r} in the registry and lower --lr; nothing of this step was saved ({kept})"


def _next_batch(batches, config: FitConfig):  # type: ignore[no-untyped-def]
    """The next batch; a record that cannot be read or decoded is an error naming the records folder."""
    try:
        return next(batches)
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as exc:
        raise SegtrainError(f"{config.data_dir}: a {config.split} record cannot be read or decoded ({_first_line(exc)}); check the shards with `segprep verify {config.data_dir}`") from None


def _image_summaries(writer, step: int, model: keras.Model, images: tf.Tensor, labels: tf.Tensor, colormap: list[list[int]], ignore_label: int) -> None:  # type: ignore[no-untyped-def]
    """Input, label and prediction of the first images of the batch, in the registry colormap."""
    from segprep.colormaps import colorize

    shown = images[:3]
    predictions = tf.argmax(model(shown, training=False), axis=-1).numpy().astype(np.uint8)
    with writer.as_default(step=step):
        tf.summary.image("input", tf.cast(shown, tf.uint8), max_outputs=3)
        tf.summary.image("label", np.stack([colorize(lab[..., 0], colormap, ignore_label) for lab in labels[:3].numpy()]), max_outputs=3)
        tf.summary.image("prediction", np.stack([colorize(p, colormap, ignore_label) for p in predictions]), max_outputs=3)
