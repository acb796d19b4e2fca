"""Checkpoints of a logdir: find, verify, restore, initialise from, and load a model with its weights.

A `--checkpoint` is a fit or import-deeplab logdir (its latest checkpoint), a checkpoint prefix, or
one of its files. Every checkpoint is read in full before it is restored (restoring checks no
checksum: a checkpoint garbled in place would restore into silent garbage), and every problem is
a CheckpointError or RunFileError naming the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras
import tensorflow as tf

from segtrain.errors import CheckpointError, RunFileError, tf_message
from segtrain.model import ModelConfig, build_deeplab, model_info
from segtrain.optim import resume_problem
from segtrain.deeplab_model import INIT_MODES
from segtrain.run_file import ARCHITECTURE_KEYS, RUN_FILE, load_run



def state_problem(logdir: Path) -> str:
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


def latest_checkpoint(logdir: Path) -> str | None:
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
        latest = latest_checkpoint(path)
        if latest is None:
            raise CheckpointError(state_problem(path))
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
        raise CheckpointError(f"{index}: unreadable checkpoint index, truncated or corrupted ({tf_message(exc)})") from None
    data = sorted(Path(prefix).parent.glob(f"{Path(prefix).name}.data-*"))
    if not data:
        raise CheckpointError(f"{prefix}.data-00000-of-00001: missing (the checkpoint has only its index)")
    try:
        for key in reader.get_variable_to_shape_map():
            if key.startswith(scope):
                reader.get_tensor(key)
    except (tf.errors.OpError, IndexError, ValueError) as exc:
        names = ", ".join(str(p) for p in data)
        raise CheckpointError(f"{names}: checkpoint data truncated or corrupted ({tf_message(exc)})") from None


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
        raise CheckpointError(f"{prefix}: does not fit {describe} ({tf_message(exc)})") from None
    except (tf.errors.OpError, IndexError) as exc:
        raise CheckpointError(f"{prefix}: cannot be restored ({tf_message(exc)})") from None


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
    copied = _copy_variables(variables_for_mode(model, backbone, mode), variables_for_mode(source, backbone, "all"), checkpoint, mode, holds)
    if mode != "backbone":  # attention weights (not DeepLab's, so outside the modes) of a source that has the same ones
        from segtrain.deeplab_model import added_variables

        sources = added_variables(source)
        for name, variable in added_variables(model).items():
            if name in sources and tuple(sources[name].shape) == tuple(variable.shape):
                variable.assign(sources[name])
                copied.append(name)
    return copied


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


# Keys a segtrain.json written before them lacks, and what their absence meant.
_DEFAULTS = {"attention": None, "aux_loss": 0.0}

STEP_KEY = "step/.ATTRIBUTES/VARIABLE_VALUE"  # fit's tf.train.Checkpoint(step=...) in a checkpoint's index


def saved_step(logdir: Path) -> int | None:
    """The step of the logdir's latest checkpoint, read from the checkpoint alone (no model built),
    or None when there is none to resume. check_resumable has already verified the checkpoint."""
    if not logdir.is_dir() or not (logdir / "checkpoint").exists():
        return None
    latest = latest_checkpoint(logdir)
    if latest is None:
        return None
    try:
        reader = tf.train.load_checkpoint(latest)
        if reader.has_tensor(STEP_KEY):
            return int(reader.get_tensor(STEP_KEY))
    except (tf.errors.OpError, ValueError) as exc:
        raise CheckpointError(f"{latest}.index: cannot read the step ({tf_message(exc)})") from None
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
    latest = latest_checkpoint(logdir)
    if latest is None:
        raise CheckpointError(f"{state_problem(logdir)}; refusing to train over the checkpoints of {logdir}")
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
    differences = [f"{key} {json.dumps(saved.get(key))} (asked: {json.dumps(wanted[key])})" for key in ARCHITECTURE_KEYS if saved.get(key, _DEFAULTS.get(key, wanted[key])) != wanted[key]]
    if (saved.get("aux_loss", 0) > 0) != (wanted["aux_loss"] > 0):  # the weight may change, the head's presence not
        differences.append(f"aux_loss {json.dumps(saved.get('aux_loss', 0))} (asked: {json.dumps(wanted['aux_loss'])}; an auxiliary head cannot be added or removed on resume)")
    if differences:
        raise RunFileError(f"{logdir / RUN_FILE}: this logdir was trained with {', '.join(differences)}; resume with the same options or choose a new --logdir")
    problem = resume_problem(run.get("optimizer"), optimizer)
    if problem:
        raise RunFileError(f"{logdir / RUN_FILE}: {problem}")
