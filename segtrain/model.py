"""segtrain's model: DeepLab's own network (segtrain.deeplab_model), chosen by `fit`'s options.

There is one model code path. `fit` builds the network DeepLab's TF1 graph computes (slim's MobilenetV2 or
DeepLab's aligned Xception, ASPP with image pooling, the v3+ decoder, align-corners resizes), under DeepLab's
TF1 variable names, so a DeepLab checkpoint, an ImageNet backbone checkpoint and a segtrain logdir all map
onto it by name. This module maps the command-line options onto `DeepLabConfig`, names the format of the
`model` object in segtrain.json, and loads ImageNet backbone weights (`--backbone-weights`).

The keras.applications models earlier segtrain versions built (MobileNetV2 with explicit padding and no
align-corners resizes, ResNet50) are gone: their checkpoints do not compute DeepLab's function, and
their logdirs are refused by segtrain.json's model format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path

import keras

from segtrain import deeplab_model
from segtrain.backbones import BACKBONE_NAMES, spec
from segtrain.deeplab_model import DeepLabConfig
from segtrain.errors import SegtrainError

BACKBONES = BACKBONE_NAMES  # the table in segtrain.backbones
# segtrain.json's "model_format": 2 is DeepLab's network with TF1-named weights (this module). Logdirs of
# the earlier keras.applications model carry no model_format (format 1) and cannot be restored.
MODEL_FORMAT = 2
# DeepLab pads images with the mean pixel, which its preprocessing (2/255 x - 1) maps to 0.
MEAN_PIXEL = (127.5, 127.5, 127.5)
_KERAS_IMAGENET_MULTIPLIER = 1.0


class BackboneWeightsError(SegtrainError):
    """--backbone-weights names something that cannot initialize this backbone."""


@dataclass(frozen=True)
class ModelConfig(DeepLabConfig):
    """DeepLabConfig plus where the backbone's starting weights come from (not part of the architecture).

    backbone_weights: None (DeepLab's initializers), "imagenet" (keras.applications' MobileNetV2 ImageNet
    weights, needs internet), a TF1 checkpoint prefix or folder (slim's `mobilenet_v2_1.0_224`, DeepLab's
    `xception_65_imagenet`), or a Keras weights file of keras.applications' MobileNetV2.
    """

    backbone_weights: str | None = None

    def architecture(self) -> dict:
        """What segtrain.json stores as "model": the DeepLabConfig fields (JSON types)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(DeepLabConfig)}

    @classmethod
    def from_architecture(cls, document: dict) -> ModelConfig:
        """The config of a segtrain.json "model" object (already validated)."""
        return cls(**DeepLabConfig.from_dict(document).to_dict())


def _jsonable(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def build_deeplab(config: DeepLabConfig) -> keras.Model:
    """images [B, H, W, 3] in 0..255 -> logits [B, H, W, num_classes] (float32): DeepLab's network."""
    return deeplab_model.build(config)


def model_info(model: keras.Model) -> tuple[str, int]:
    """(backbone, output stride) of a model made by build_deeplab (its name says them)."""
    match = re.fullmatch(r"deeplab_(\w+?)_os(\d+)", model.name)
    if not match or match[1] not in BACKBONES:
        raise ValueError(f"model {model.name!r} was not built by segtrain.model.build_deeplab")
    return match[1], int(match[2])


def input_requirements(model: keras.Model) -> tuple[int, tuple[float, float, float]]:
    """(smallest height and width predictions pad to, the pixel to pad with).

    DeepLab's network takes any size (TF 'SAME' and Xception's fixed padding never shrink a map to
    nothing), but an image smaller than the output stride has no meaningful stride-16 feature; such
    images are padded to the output stride with the mean pixel and the prediction cropped back.
    """
    try:
        return model_info(model)[1], MEAN_PIXEL
    except ValueError:
        return 16, MEAN_PIXEL


# ------------------------------------------------------------------------------ backbone weights


def check_backbone_weights(backbone: str, depth_multiplier: float, weights: str | None) -> None:
    """Refuse, before anything is built, --backbone-weights that cannot fit the backbone."""
    if weights is None:
        return
    if weights == "imagenet":
        if not spec(backbone).keras_imagenet:
            raise BackboneWeightsError(
                f"--backbone-weights imagenet: Keras has no ImageNet weights of DeepLab's {backbone} (keras.applications' models "
                f"are not DeepLab's); download the {spec(backbone).imagenet_checkpoint} checkpoint and pass --backbone-weights PATH/model.ckpt"
            )
        if depth_multiplier != _KERAS_IMAGENET_MULTIPLIER:
            raise BackboneWeightsError(
                f"--backbone-weights imagenet: keras.applications' MobileNetV2 has DeepLab's channel counts only at depth multiplier 1.0 "
                f"(asked {depth_multiplier:g}); pass a TF1 checkpoint of that width instead"
            )
        return
    path = Path(weights)
    if not path.exists() and not Path(f"{weights}.index").exists():
        raise BackboneWeightsError(f"{weights}: no such backbone weights file or checkpoint (expected imagenet, none, a TF1 checkpoint or a Keras weights file)")


def load_backbone_weights(model: keras.Model, config: ModelConfig) -> str:
    """Copy config.backbone_weights into the backbone of model; returns a one-line account of what was copied."""
    weights = config.backbone_weights
    check_backbone_weights(config.backbone, config.depth_multiplier, weights)
    if weights is None:
        return "backbone starts from DeepLab's initializers"
    from segtrain.deeplab_checkpoint import is_tf1_checkpoint, load_deeplab_weights

    if weights != "imagenet" and _names_a_tf1_checkpoint(weights) and is_tf1_checkpoint(weights):
        report = load_deeplab_weights(model, config.backbone, weights, "backbone")
        return f"{report.copied} backbone variables from {report.prefix}"
    if not spec(config.backbone).keras_imagenet:
        raise BackboneWeightsError(f"{weights}: not a TF1 checkpoint; {config.backbone}'s backbone weights come from the TF1 ImageNet checkpoint {spec(config.backbone).imagenet_checkpoint} (Keras weights files are for mobilenetv2)")
    if config.depth_multiplier != _KERAS_IMAGENET_MULTIPLIER:
        raise BackboneWeightsError(f"{weights}: keras.applications' MobileNetV2 has DeepLab's channel counts only at depth multiplier 1.0 (this model: {config.depth_multiplier:g})")
    source = _keras_mobilenet_v2(weights)
    copied = copy_keras_mobilenet_v2(source, model, str(weights))
    return f"{copied} backbone variables from keras.applications MobileNetV2 ({weights})"


def _names_a_tf1_checkpoint(weights: str) -> bool:
    """A folder, a prefix with an .index file, or one of a prefix's files (not an .h5 TensorFlow would log about)."""
    path = Path(weights)
    return path.is_dir() or Path(f"{weights}.index").is_file() or path.suffix == ".index" or ".data-" in path.name


def _keras_mobilenet_v2(weights: str) -> keras.Model:
    """keras.applications' MobileNetV2 (alpha 1.0, no top) with ImageNet weights or those of a file."""
    if weights == "imagenet":
        try:
            return keras.applications.MobileNetV2(input_shape=(224, 224, 3), include_top=False, weights="imagenet")
        except Exception as exc:  # noqa: BLE001 - keras.utils.get_file raises a bare Exception when offline
            detail = " ".join(str(exc).split())[:400]
            raise BackboneWeightsError(f"--backbone-weights imagenet: cannot download keras.applications' MobileNetV2 ImageNet weights ({detail}); it needs internet, or pass a TF1 checkpoint or weights file") from None
    source = keras.applications.MobileNetV2(input_shape=(None, None, 3), include_top=False, weights=None)
    try:
        source.load_weights(str(weights))
    except (OSError, ValueError, KeyError, TypeError) as exc:  # h5py and Keras say what, not which file
        detail = " ".join(str(exc).split())[:200]
        raise BackboneWeightsError(f"{weights}: not a Keras weights file of keras.applications' MobileNetV2 (alpha 1.0, include_top=False) ({detail})") from None
    return source


def keras_mobilenet_v2_scope(name: str) -> str | None:
    """The TF1 scope of slim's MobilenetV2 that a keras.applications MobileNetV2 layer stands for.

    The two networks are the same layer for layer at depth multiplier 1.0 (keras' block_N is slim's
    expanded_conv_N, keras' first block is slim's expanded_conv); keras' Conv_1 (1280 channels) is
    beyond where DeepLab stops and has no counterpart (None).
    """
    stem = {"Conv1": "Conv", "bn_Conv1": "Conv/BatchNorm"}
    if name in stem:
        return f"MobilenetV2/{stem[name]}"
    match = re.fullmatch(r"(?:block_(\d+)|expanded_conv)_(expand|depthwise|project)(_BN)?", name)
    if not match:
        return None
    block = f"expanded_conv_{match[1]}" if match[1] else "expanded_conv"
    return f"MobilenetV2/{block}/{match[2]}" + ("/BatchNorm" if match[3] else "")


def copy_keras_mobilenet_v2(source: keras.Model, model: keras.Model, origin: str) -> int:
    """Copy keras.applications MobileNetV2 weights into DeepLab's MobilenetV2; every backbone weight must be matched."""
    table = deeplab_model.variables(model)
    targets = {name: var for name, var in table.items() if name.startswith("MobilenetV2/")}
    pairs = []
    for layer in source.layers:
        scope = keras_mobilenet_v2_scope(layer.name)
        if scope is None or not layer.weights:
            continue
        if isinstance(layer, keras.layers.BatchNormalization):
            names = [f"{scope}/{leaf}" for leaf in ("gamma", "beta", "moving_mean", "moving_variance")]
            values = [layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance]
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            names, values = [f"{scope}/depthwise_weights"], [layer.kernel]
        else:
            names, values = [f"{scope}/weights"], [layer.kernel]
        pairs.extend(zip(names, values))
    missing = sorted(set(targets) - {name for name, _ in pairs})
    if missing:
        raise BackboneWeightsError(f"{origin}: keras.applications MobileNetV2 has no weight for '{missing[0]}' ({len(missing)} backbone variables unmatched)")
    for name, value in pairs:
        if name not in targets:
            raise BackboneWeightsError(f"{origin}: keras.applications MobileNetV2 weight '{value.path}' has no place in DeepLab's MobilenetV2 ('{name}')")
        if tuple(value.shape) != tuple(targets[name].shape):
            raise BackboneWeightsError(f"{origin}: '{value.path}' has shape {list(value.shape)}, DeepLab's '{name}' needs {list(targets[name].shape)}")
    for name, value in pairs:
        targets[name].assign(value)
    return len(pairs)
