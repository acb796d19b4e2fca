"""DeepLab's feature extractors that segtrain builds: one table row per backbone, one module per family.

A backbone is a BackboneSpec: its `--backbone` name, DeepLab's model_variant, the TF1 scope its
weights live under (how a checkpoint's backbone is recognised), whether it takes a width (depth
multiplier), the family module that builds it, and where ImageNet weights for it come from. fit's
options and --help, import-deeplab's detection, --backbone-weights and the model builder all read
this table: a new backbone is a family module (`features` and `detect`, see mobilenet_v2.py) and
one row here.

Light on purpose: a family module (and Keras with it) is imported only when a model is built or a
checkpoint read, so `segtrain --help` reads the table instantly.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any


class BackboneMismatch(ValueError):
    """A checkpoint's variables under a backbone's scope that do not make that backbone; the reader names the checkpoint."""


@dataclass(frozen=True)
class BackboneSpec:
    """One backbone segtrain builds.

    module: the family module, with `features(images, spec, output_stride, depth_multiplier, bn_momentum,
    weight_init) -> (features, {4: low-level feature})` for images in [-1, 1], and `detect(shapes, spec)
    -> {ModelConfig field: value}` reading its settings (a width) from a checkpoint's variable shapes.
    """

    name: str  # --backbone
    variant: str  # DeepLab's model_variant
    scope: str  # TF1 variable scope of its weights
    module: str
    has_width: bool = False  # takes a depth multiplier (--width)
    keras_imagenet: bool = False  # keras.applications' ImageNet weights map onto it (--backbone-weights imagenet, width 1.0)
    imagenet_checkpoint: str = ""  # the TF1 ImageNet checkpoint of DeepLab's model zoo / slim for --backbone-weights PATH

    def family(self) -> ModuleType:
        return importlib.import_module(self.module)


_MOBILENET = "segtrain.backbones.mobilenet_v2"
_XCEPTION = "segtrain.backbones.xception"

BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec("mobilenetv2", "mobilenet_v2", "MobilenetV2", _MOBILENET, has_width=True, keras_imagenet=True, imagenet_checkpoint="mobilenet_v2_1.0_224"),
        BackboneSpec("xception41", "xception_41", "xception_41", _XCEPTION, imagenet_checkpoint="xception_41_imagenet"),
        BackboneSpec("xception65", "xception_65", "xception_65", _XCEPTION, imagenet_checkpoint="xception_65_imagenet"),
        BackboneSpec("xception71", "xception_71", "xception_71", _XCEPTION, imagenet_checkpoint="xception_71_imagenet"),
    )
}
BACKBONE_NAMES = tuple(BACKBONES)
VARIANTS = {name: spec.variant for name, spec in BACKBONES.items()}  # segtrain's name -> DeepLab's model_variant


def spec(backbone: str) -> BackboneSpec:
    """The table row of a backbone name; ValueError naming the choices for another name."""
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r} (choose from {', '.join(BACKBONE_NAMES)})")
    return BACKBONES[backbone]


def variant(backbone: str) -> str:
    """DeepLab's model_variant for a segtrain backbone name."""
    return spec(backbone).variant


def backbone_for_variant(model_variant: str) -> str:
    """segtrain's backbone name for a DeepLab model_variant."""
    for name, row in BACKBONES.items():
        if row.variant == model_variant:
            return name
    raise ValueError(f"unsupported DeepLab model_variant {model_variant!r}")


def backbone_for_scope(scope_name: str) -> BackboneSpec | None:
    """The backbone whose weights live under a checkpoint's top-level scope, if segtrain builds it."""
    return next((row for row in BACKBONES.values() if row.scope == scope_name), None)


def scope(backbone: str) -> str:
    """The TF1 variable scope the backbone's weights live under."""
    return spec(backbone).scope


def extract_features(images, backbone: str, output_stride: int, depth_multiplier: float = 1.0, bn_momentum: float | None = None, weight_init: str = "deeplab"):  # type: ignore[no-untyped-def]
    """(features at output_stride, {4: low-level feature}) for images already scaled to [-1, 1]: DeepLab's
    feature_extractor.extract_features. bn_momentum None keeps DeepLab's decay; weight_init "deeplab" starts
    kernels as DeepLab does (truncated normal, stddev 0.09), "keras" with Glorot uniform."""
    row = spec(backbone)
    if output_stride not in (8, 16, 32):
        raise ValueError(f"output stride must be 8, 16 or 32, got {output_stride}")
    if not row.has_width and depth_multiplier != 1.0:
        raise ValueError(f"{backbone} has no depth multiplier (got {depth_multiplier})")
    return row.family().features(images, row, output_stride, depth_multiplier, bn_momentum, weight_init)


def detect(backbone: str, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, Any]:
    """The ModelConfig fields a checkpoint's variables give for this backbone (e.g. its width); BackboneMismatch otherwise."""
    row = spec(backbone)
    return dict(row.family().detect(shapes, row))


__all__ = ["BACKBONES", "BACKBONE_NAMES", "BackboneMismatch", "BackboneSpec", "VARIANTS", "backbone_for_scope", "backbone_for_variant", "detect", "extract_features", "scope", "spec", "variant"]
