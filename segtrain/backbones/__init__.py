"""DeepLab's feature extractors, built layer for layer under their TF1 variable names.

`extract_features` is DeepLab's `feature_extractor.extract_features` for the backbones segtrain supports:
preprocessed images in [-1, 1] -> (last feature, {4: the decoder's stride-4 feature}).
"""

from __future__ import annotations

from dataclasses import replace

from segtrain.backbones import mobilenet_v2 as _mnv2
from segtrain.backbones import xception as _xception
from segtrain.backbones.slim_layers import Init, Norm

# segtrain's backbone name -> DeepLab's model_variant.
VARIANTS = {
    "mobilenetv2": "mobilenet_v2",
    "xception41": "xception_41",
    "xception65": "xception_65",
    "xception71": "xception_71",
}
BACKBONES = tuple(VARIANTS)


def variant(backbone: str) -> str:
    """DeepLab's model_variant for a segtrain backbone name."""
    if backbone not in VARIANTS:
        raise ValueError(f"unknown backbone {backbone!r} (choose from {', '.join(BACKBONES)})")
    return VARIANTS[backbone]


def backbone_for_variant(model_variant: str) -> str:
    """segtrain's backbone name for a DeepLab model_variant."""
    for name, known in VARIANTS.items():
        if known == model_variant:
            return name
    raise ValueError(f"unsupported DeepLab model_variant {model_variant!r}")


def scope(backbone: str) -> str:
    """The TF1 variable scope the backbone's weights live under."""
    return _mnv2.SCOPE if backbone == "mobilenetv2" else variant(backbone)


def extract_features(images, backbone: str, output_stride: int, depth_multiplier: float = 1.0, bn_momentum: float | None = None, weight_init: str = "deeplab"):  # type: ignore[no-untyped-def]
    """(features at output_stride, {4: low-level feature}) for images already scaled to [-1, 1].

    bn_momentum None keeps DeepLab's decay (0.997 MobilenetV2, 0.9997 Xception); weight_init "deeplab"
    starts kernels as DeepLab does (truncated normal, stddev 0.09), "keras" with Glorot uniform.
    """
    model_variant = variant(backbone)
    if output_stride not in (8, 16, 32):
        raise ValueError(f"output stride must be 8, 16 or 32, got {output_stride}")
    module_norm, module_init = (_mnv2.NORM, _mnv2.INIT) if backbone == "mobilenetv2" else (_xception.NORM, _xception.INIT)
    norm = module_norm if bn_momentum is None else replace(module_norm, momentum=bn_momentum)
    init = module_init if weight_init == "deeplab" else Init()
    if backbone == "mobilenetv2":
        return _mnv2.mobilenet_v2(images, depth_multiplier, output_stride, norm, init)
    if depth_multiplier != 1.0:
        raise ValueError(f"{backbone} has no depth multiplier (got {depth_multiplier})")
    return _xception.xception(images, model_variant, output_stride, norm, init)


__all__ = ["BACKBONES", "VARIANTS", "variant", "backbone_for_variant", "scope", "extract_features", "Norm", "Init"]
