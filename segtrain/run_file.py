"""segtrain.json, the run file of a logdir: what a model was trained with, enough to rebuild it anywhere.

It holds the model format and architecture (segtrain.model.ModelConfig), the dataset's labels
(segtrain.labels.Labels: classes, ignore label, colours) and what fit or import-deeplab add (the
optimizer, where imported weights came from). Every reader checks it top to bottom: a damaged or
foreign file is a RunFileError naming it and what is wrong, never a KeyError deep in a command.
"""

from __future__ import annotations

import json
import math
from dataclasses import fields
from pathlib import Path

from segtrain.attention import ATTENTION_KINDS
from segtrain.errors import RunFileError
from segtrain.labels import Labels
from segtrain.model import BACKBONES, MODEL_FORMAT, ModelConfig

RUN_FILE = "segtrain.json"


def save_run(logdir: Path, model_config: ModelConfig, labels: Labels, extra: dict | None = None) -> None:
    """Write segtrain.json: the model format and architecture, and the dataset's labels and colours.

    extra: more top-level keys (fit records its "optimizer"; import-deeplab where the weights came from, "imported_from").
    """
    from segprep.fileio import atomic_write_text

    logdir.mkdir(parents=True, exist_ok=True)
    document = {"model_format": MODEL_FORMAT, "model": model_config.architecture(), **labels.run_fields(), **(extra or {})}
    atomic_write_text(logdir / RUN_FILE, json.dumps(document, indent=1))


# Keys of segtrain.json's "model" without which no model can be rebuilt (the others have defaults).
_MODEL_REQUIRED = ("num_classes", "backbone", "output_stride")
# What a checkpoint's variables (their names and shapes) depend on. "aux_loss" is not one: its weight may change
# on resume (a loss setting), but not whether there is an auxiliary head (0 or not), which check_resumable refuses.
ARCHITECTURE_KEYS = ("num_classes", "backbone", "depth_multiplier", "output_stride", "aspp", "atrous_rates", "image_pooling", "decoder", "filters", "attention")
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
    "attention": (lambda v: v is None or v in ATTENTION_KINDS, "null or " + ", ".join(f'"{k}"' for k in ATTENTION_KINDS)),
    "aux_loss": (lambda v: _is_number(v) and v >= 0, "a number >= 0 (0: no auxiliary head)"),
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


def resumed_optimizer(logdir: Path) -> str | None:
    """The optimizer of the run fit would resume in logdir (None: nothing to resume, or no readable record;
    a damaged segtrain.json is refused later, by fit's own resume check)."""
    from segtrain.optim import OPTIMIZERS

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
