"""`segtrain import-deeplab`: a DeepLab TF1 checkpoint becomes a segtrain logdir.

The logdir is what `fit` writes (segtrain.json + a TF2 checkpoint `ckpt-N` and its `checkpoint` state
file), so eval, predict, export and `fit --init-checkpoint` take it unchanged. segtrain.json also records
where the weights came from ("imported_from"), which is what makes `fit --logdir` refuse to resume it as
if it were a training run (it holds no optimizer state).

The logdir is written into a hidden sibling folder and renamed into place when complete, so an
interrupted import leaves no half logdir under --out.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from segprep.errors import OutputLocationError
from segtrain.errors import SegtrainError
from segtrain.labels import Labels


def check_import_target(out: Path) -> None:
    """--out must be new or an empty folder (an import never merges into or replaces anything)."""
    if not os.path.lexists(out):
        return
    if out.is_symlink() or not out.is_dir():
        raise OutputLocationError(f"{out}: exists and is not a folder; choose a new --out")
    if any(out.iterdir()):
        raise OutputLocationError(f"{out}: not empty; import-deeplab writes a new logdir, choose a new or empty --out")


def import_to_logdir(checkpoint: Path, out: Path, output_stride: int, labels: Labels | None) -> str:
    """Import checkpoint into the new logdir out; returns the one-line summary.

    labels: the --dataset's (its class count must equal the checkpoint's logits, checked before the
    model is built), or None for Labels.default.
    """
    import tensorflow as tf

    from segtrain.deeplab_checkpoint import import_deeplab, inspect_checkpoint
    from segtrain.model import ModelConfig
    from segtrain.run_file import save_run

    found = inspect_checkpoint(checkpoint, output_stride)
    classes = found.config.num_classes
    if labels is not None and labels.num_classes != classes:
        raise SegtrainError(f"{found.prefix}: the checkpoint's logits have {classes} classes, dataset {labels.dataset!r} has {labels.num_classes}; import without --dataset or choose the dataset it was trained on")
    check_import_target(out)
    model, found = import_deeplab(checkpoint, output_stride)
    labels = labels or Labels.default(classes)
    step = found.global_step if found.global_step is not None and found.global_step >= 0 else 0
    staged = out.with_name(f".{out.name}.segtrain-import-{os.getpid()}.tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(staged, ignore_errors=True)
    try:
        manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(staged), max_to_keep=1, checkpoint_name="ckpt")
        manager.save(checkpoint_number=step)
        config = ModelConfig(**found.config.to_dict())
        save_run(staged, config, labels, {"imported_from": found.to_dict()})
        if os.path.lexists(out):
            out.rmdir()  # checked empty above
        os.rename(staged, out)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return f"{found.summary()} -> {out}"
