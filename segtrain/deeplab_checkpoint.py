"""DeepLab TF1 checkpoints (model zoo or one's own training) -> the equivalent segtrain Keras model.

A DeepLab checkpoint names its variables after the TF1 scopes of DeepLab's graph (`MobilenetV2/Conv/weights`,
`xception_65/entry_flow/...`, `image_pooling/...`, `aspp0/...`, `decoder/...`, `logits/semantic/...`), and
that is all there is to know about the network: the backbone (and MobilenetV2's depth multiplier) follows
from names and shapes, ASPP's atrous branches from `aspp1..n_*`, the decoder from `decoder/`, the class count
from the logits. The output stride and atrous rates are not stored (the same weights run at 8 or 16), so
the caller chooses them. Training bookkeeping (optimizer slots, EMA shadows, global_step) is counted and
left out. Anything that does not fit is a one-line DeepLabCheckpointError naming the checkpoint and the
variable or scope at fault.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from segtrain.backbones import BACKBONES, VARIANTS, BackboneMismatch, backbone_for_scope, backbone_for_variant, detect, scope
from segtrain.deeplab_model import DEFAULT_RATES, INIT_MODES, DeepLabConfig, build, variables_for_mode
from segtrain.errors import SegtrainError

SUPPORTED_SCOPES = tuple(row.scope for row in BACKBONES.values())  # how a checkpoint's backbone is recognised
# Backbones DeepLab has that segtrain does not build: named in the error rather than "not DeepLab".
_OTHER_DEEPLAB_SCOPES = ("resnet_v1_18", "resnet_v1_50", "resnet_v1_101", "MobilenetV3", "MobilenetEdgeTPU", "pnasnet", "hnasnet")
_HEAD_SCOPES = ("image_pooling", "aspp0", "concat_projection", "decoder", "logits")
_SLOT = re.compile(r"^(Momentum|Adam(_\d+)?|RMSProp(_\d+)?|Adagrad|Ftrl(_\d+)?|Adadelta(_\d+)?)$")
_EMA = re.compile(r"^ExponentialMovingAverage(_\d+)?$")
_BOOKKEEPING = {"global_step", "beta1_power", "beta2_power"}
_TF2_GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"


class DeepLabCheckpointError(SegtrainError):
    """A checkpoint that is not DeepLab's, is a variant segtrain does not build, or does not fit the model."""


@dataclass(frozen=True)
class CheckpointContents:
    """A TF1 checkpoint's model variables (name -> shape) and what was set aside as training bookkeeping."""

    prefix: str
    shapes: dict[str, tuple[int, ...]]
    ignored: dict[str, int]
    global_step: int | None


@dataclass(frozen=True)
class DeepLabCheckpoint:
    """What a DeepLab checkpoint holds, and the segtrain model config that reproduces its network."""

    prefix: str
    variant: str  # DeepLab's model_variant: mobilenet_v2, xception_65, ...
    config: DeepLabConfig
    model_variables: int
    ignored: dict[str, int]
    global_step: int | None
    copied: int = 0

    def summary(self) -> str:
        """One line for the terminal: the network found and what was copied or ignored."""
        config = self.config
        parts = [f"output stride {config.output_stride}"]
        if config.depth_multiplier != 1.0:
            parts.insert(0, f"depth multiplier {config.depth_multiplier:g}")
        parts.append("ASPP rates " + "/".join(map(str, config.rates)) if config.rates else "no atrous ASPP branches")
        parts.append("image pooling" if config.image_pooling else "no image pooling")
        parts.append("decoder at stride 4" if config.decoder else "no decoder")
        step = f" ({self.global_step})" if self.global_step is not None else ""
        ignored = ", ".join(
            f"global_step{step}" if what == "global_step" else f"{count} {what}" for what, count in self.ignored.items() if count
        ) or "nothing"
        return f"{self.variant} ({', '.join(parts)}), {config.num_classes} classes: {self.copied} variables copied; ignored {ignored}"

    def to_dict(self) -> dict:
        """Provenance for a logdir's run document."""
        return {
            "checkpoint": self.prefix, "variant": self.variant, "global_step": self.global_step,
            "model_variables": self.model_variables, "copied": self.copied, "ignored": dict(self.ignored),
        }


@dataclass(frozen=True)
class LoadReport:
    """What load_deeplab_weights did."""

    prefix: str
    mode: str
    copied: int
    unused: tuple[str, ...]  # checkpoint model variables this mode or model did not take
    ignored: dict[str, int]
    global_step: int | None


_READ_ERRORS = (tf.errors.OpError, IndexError, ValueError, RuntimeError)


def _reason(exc: BaseException) -> str:
    """The first line of what TensorFlow's checkpoint reader said."""
    text = (getattr(exc, "message", None) or str(exc) or type(exc).__name__).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _fail(prefix: str | Path, message: str) -> DeepLabCheckpointError:
    return DeepLabCheckpointError(f"{prefix}: {message}")


def resolve_prefix(path: str | Path) -> str:
    """The checkpoint prefix for a prefix, one of its files (.index / .data-*), or a folder holding one.

    A model-zoo folder has no `checkpoint` state file, so a folder falls back to its *.index files; with
    several, the highest step (`model.ckpt-N`) wins.
    """
    path = Path(path)
    if path.is_dir():
        latest = tf.train.latest_checkpoint(str(path))
        if latest and Path(f"{latest}.index").is_file():
            return latest
        prefixes = [index.with_suffix("") for index in sorted(path.glob("*.index"))]
        if not prefixes:
            raise _fail(path, "no TF checkpoint in this folder (no *.index file)")
        if len(prefixes) == 1:
            return str(prefixes[0])
        steps = {p: re.search(r"-(\d+)$", p.name) for p in prefixes}
        if not all(steps.values()):
            raise _fail(path, f"several checkpoints ({', '.join(p.name for p in prefixes)}); name one")
        return str(max(prefixes, key=lambda p: int(steps[p][1])))  # type: ignore[index]
    text = str(path)
    text = re.sub(r"\.(index|data-\d+-of-\d+|meta)$", "", text)
    if Path(f"{text}.index").is_file() or Path(text).is_file():
        return text
    raise _fail(path, "no such checkpoint (neither a folder nor a prefix with an .index file)")


def _category(name: str) -> str | None:
    """Which kind of bookkeeping a variable is, or None for a model variable."""
    leaf = name.rsplit("/", 1)[-1]
    if name in _BOOKKEEPING:
        return "global_step" if name == "global_step" else "optimizer state"
    if _SLOT.match(leaf):
        return "optimizer slots"
    if _EMA.match(leaf) or "/ExponentialMovingAverage/" in name:
        return "EMA shadows"
    return None


def read_contents(path: str | Path) -> CheckpointContents:
    """Model variables and ignored-variable counts of a TF1 checkpoint (a prefix, file or folder)."""
    prefix = resolve_prefix(path)
    try:
        reader = tf.train.load_checkpoint(prefix)
        all_shapes = reader.get_variable_to_shape_map()
    except _READ_ERRORS as exc:
        raise _fail(prefix, f"cannot read checkpoint ({_reason(exc)})") from exc
    if _TF2_GRAPH in all_shapes:
        raise _fail(prefix, "a TF2 object-based checkpoint (segtrain fit or Keras), not a DeepLab TF1 checkpoint")
    shapes, ignored = {}, Counter({"optimizer slots": 0, "EMA shadows": 0})
    for name, shape in all_shapes.items():
        kind = _category(name)
        if kind is None:
            shapes[name] = tuple(int(d) for d in shape)
        else:
            ignored[kind] += 1
    step = None
    if "global_step" in all_shapes:
        try:
            step = int(reader.get_tensor("global_step"))
        except (tf.errors.OpError, TypeError, ValueError):
            step = None
    return CheckpointContents(prefix, shapes, dict(ignored), step)


def _top_scopes(shapes: dict[str, tuple[int, ...]]) -> list[str]:
    counts = Counter(name.split("/", 1)[0] for name in shapes)
    return [name for name, _ in counts.most_common()]


def backbone_variant(contents: CheckpointContents) -> str:
    """DeepLab's model_variant of the checkpoint's backbone, or an error naming the scopes found."""
    scopes = _top_scopes(contents.shapes)
    found = [s for s in scopes if s in SUPPORTED_SCOPES]
    if len(found) > 1:
        raise _fail(contents.prefix, f"holds several backbones ({', '.join(found)})")
    if found:
        row = backbone_for_scope(found[0])
        assert row is not None
        return row.variant
    other = [s for s in scopes if s in _OTHER_DEEPLAB_SCOPES]
    if other:
        raise _fail(contents.prefix, f"unsupported DeepLab backbone scope '{other[0]}' (segtrain imports {', '.join(SUPPORTED_SCOPES)})")
    listed = ", ".join(scopes[:6]) + (", ..." if len(scopes) > 6 else "") if scopes else "none"
    raise _fail(contents.prefix, f"not a DeepLab checkpoint: no {' / '.join(SUPPORTED_SCOPES)} variables (scopes found: {listed})")


def _aspp_branches(contents: CheckpointContents) -> int:
    names = contents.shapes
    if "aspp1/weights" in names:
        raise _fail(contents.prefix, "unsupported variant: scope 'aspp1' is a plain conv (aspp_with_separable_conv=False)")
    count = 0
    while f"aspp{count + 1}_depthwise/depthwise_weights" in names:
        count += 1
    return count


def _check_heads(contents: CheckpointContents) -> int:
    """The heads' width (ASPP and decoder filters); errors for head variants segtrain does not build."""
    names = contents.shapes
    if "aspp0/weights" not in names:
        scopes = ", ".join(s for s in _top_scopes(names) if s not in SUPPORTED_SCOPES) or "none"
        raise _fail(contents.prefix, f"unsupported variant: no scope 'aspp0' (aspp_with_batch_norm=False or a backbone-only checkpoint; head scopes found: {scopes})")
    filters = names["aspp0/weights"][3]
    if "concat_projection/weights" not in names:
        raise _fail(contents.prefix, "unsupported variant: no scope 'concat_projection' (aspp_with_concat_projection=False)")
    if any(name.startswith("decoder/") for name in names):
        if "decoder/decoder_conv0_depthwise/depthwise_weights" not in names or "decoder/feature_projection0/weights" not in names:
            scopes = sorted({name.split("/")[1] for name in names if name.startswith("decoder/")})
            raise _fail(contents.prefix, f"unsupported decoder variant (scopes decoder/{', decoder/'.join(scopes)}; segtrain builds the separable one-stage decoder)")
        pointwise = names.get("decoder/decoder_conv1_pointwise/weights", (filters,))[-1]
        if pointwise != filters:
            raise _fail(contents.prefix, f"unsupported variant: decoder filters {pointwise} differ from ASPP filters {filters}")
    return filters


def inspect_checkpoint(path: str | Path, output_stride: int = 16, atrous_rates: tuple[int, ...] | None = None) -> DeepLabCheckpoint:
    """Detect the network a DeepLab checkpoint holds and the segtrain config that rebuilds it.

    output_stride: what to run it at (DeepLab evaluates the same weights at 8 or 16). atrous_rates: only
    for checkpoints whose ASPP does not have DeepLab's three branches (6/12/18 at 16, doubled at 8).
    """
    contents = read_contents(path)
    variant = backbone_variant(contents)
    backbone = backbone_for_variant(variant)
    try:
        detected = detect(backbone, contents.shapes)  # the backbone's own settings (a width), by its family module
    except BackboneMismatch as exc:
        raise _fail(contents.prefix, str(exc)) from None
    filters = _check_heads(contents)
    if "logits/semantic/weights" not in contents.shapes:
        scopes = ", ".join(s for s in _top_scopes(contents.shapes) if s.startswith("logits")) or "none"
        raise _fail(contents.prefix, f"has no 'logits/semantic' (logits scopes found: {scopes}); a backbone-only checkpoint can only initialize --init-mode backbone")
    num_classes = contents.shapes["logits/semantic/weights"][3]
    branches = _aspp_branches(contents)
    if atrous_rates is not None and len(atrous_rates) != branches:
        raise _fail(contents.prefix, f"has {branches} atrous ASPP branches, {len(atrous_rates)} rates were given")
    if atrous_rates is None and branches not in (0, len(DEFAULT_RATES)):
        raise _fail(contents.prefix, f"has {branches} atrous ASPP branches (aspp1..aspp{branches}); give their rates")
    if output_stride not in (8, 16):
        raise _fail(contents.prefix, f"output stride must be 8 or 16, got {output_stride}")
    config = DeepLabConfig(
        num_classes=num_classes, backbone=backbone, output_stride=output_stride, **detected,
        aspp=branches > 0, atrous_rates=atrous_rates, image_pooling="image_pooling/weights" in contents.shapes,
        decoder="decoder/feature_projection0/weights" in contents.shapes, filters=filters,
    )
    return DeepLabCheckpoint(contents.prefix, variant, config, len(contents.shapes), contents.ignored, contents.global_step)


def _copy(targets: dict[str, keras.Variable], contents: CheckpointContents, mode: str) -> int:
    """Check every target against the checkpoint first (so a failure changes nothing), then assign."""
    reader = tf.train.load_checkpoint(contents.prefix)
    for name, variable in targets.items():
        if name not in contents.shapes:
            raise _fail(contents.prefix, f"model weight '{variable.path}' has no checkpoint variable '{name}' (init mode {mode}){_missing_hint(name, mode)}")
        shape = contents.shapes[name]
        if tuple(shape) != tuple(variable.shape):
            hint = "; a different class count needs --init-mode all-but-logits" if name.startswith("logits/") else ""
            raise _fail(contents.prefix, f"checkpoint variable '{name}' has shape {list(shape)}, model weight '{variable.path}' needs {list(variable.shape)}{hint}")
    for name, variable in targets.items():
        try:
            value = reader.get_tensor(name)
        except _READ_ERRORS as exc:  # the reader raises IndexError for a truncated data file
            raise _fail(contents.prefix, f"cannot read variable '{name}' ({_reason(exc)})") from exc
        if not np.issubdtype(np.asarray(value).dtype, np.floating):
            raise _fail(contents.prefix, f"checkpoint variable '{name}' is {np.asarray(value).dtype}, not floating point")
        variable.assign(np.asarray(value, dtype=variable.dtype))
    return len(targets)


def _missing_hint(name: str, mode: str) -> str:
    """What to change when the checkpoint lacks a head the model has (fit's options name them)."""
    if mode == "backbone":
        return ""
    if re.match(r"aspp\d+_", name):
        return "; the checkpoint has no atrous ASPP branches: fit with --no-aspp, or --init-mode backbone"
    if name.startswith("decoder/"):
        return "; the checkpoint has no decoder: fit with --no-decoder, or --init-mode backbone"
    return ""


def load_deeplab_weights(model: keras.Model, backbone: str, path: str | Path, mode: str = "all") -> LoadReport:
    """Copy a DeepLab checkpoint's weights into a model made by deeplab_model.build (fit --init-checkpoint).

    mode: all (every weight; same classes), all-but-logits (a new class count: DeepLab's
    initialize_last_layer=False), backbone (only the feature extractor: a different head, or an ImageNet
    backbone checkpoint). Every weight the mode selects must exist in the checkpoint with the same shape.
    """
    if mode not in INIT_MODES:
        raise ValueError(f"unknown init mode {mode!r} (choose from {', '.join(INIT_MODES)})")
    contents = read_contents(path)
    variant = backbone_variant(contents)
    if variant != VARIANTS.get(backbone):
        raise _fail(contents.prefix, f"holds backbone scope '{scope(backbone_for_variant(variant))}', this model's backbone is '{scope(backbone)}'")
    targets = variables_for_mode(model, backbone, mode)
    copied = _copy(targets, contents, mode)
    unused = tuple(sorted(set(contents.shapes) - set(targets)))
    return LoadReport(contents.prefix, mode, copied, unused, contents.ignored, contents.global_step)


def import_deeplab(path: str | Path, output_stride: int = 16, atrous_rates: tuple[int, ...] | None = None) -> tuple[keras.Model, DeepLabCheckpoint]:
    """The Keras model equal to the checkpoint's DeepLab network, with every model variable copied.

    Strict both ways: a model weight with no checkpoint variable, a shape mismatch, or a checkpoint model
    variable the detected network has no place for is an error naming it.
    """
    found = inspect_checkpoint(path, output_stride, atrous_rates)
    model = build(found.config)
    report = load_deeplab_weights(model, found.config.backbone, found.prefix, "all")
    if report.unused:
        extra = report.unused[0]
        raise _fail(found.prefix, f"checkpoint variable '{extra}' has no place in the detected {found.variant} model ({len(report.unused)} such variables)")
    return model, DeepLabCheckpoint(found.prefix, found.variant, found.config, found.model_variables, found.ignored, found.global_step, report.copied)


def is_tf1_checkpoint(path: str | Path) -> bool:
    """True for a readable TF1 (name-based) checkpoint, False for a TF2 object-based one or anything else.

    Lets `fit --init-checkpoint` tell a DeepLab checkpoint from a segtrain one without raising.
    """
    try:
        prefix = resolve_prefix(path)
        names = tf.train.list_variables(prefix)
    except (DeepLabCheckpointError, tf.errors.OpError, ValueError):
        return False
    return not any(name == _TF2_GRAPH for name, _ in names)
