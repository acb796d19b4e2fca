"""TF-Slim's MobilenetV2 as DeepLab builds it (`feature_extractor._mobilenet_v2`), in Keras 3.

What makes it DeepLab's rather than keras.applications':
- channel counts follow slim's depth multiplier: DeepLab rounds to multiples of 8 (minimum 8) at multiplier
  1.0 and to whole numbers (minimum 1) otherwise, while the expansion layers always round to multiples of 8;
- the network stops at `layer_18` (expanded_conv_16, 320 channels): no Conv_1, no classifier;
- padding is TF 'SAME' everywhere (DeepLab never sets `use_explicit_padding` for MobilenetV2), which is not
  the explicit ZeroPadding keras.applications puts before its strided convolutions;
- output stride 8 or 16 is reached as slim does it: once the running stride equals the target, a layer that
  would stride keeps stride 1 and runs at the atrous rate accumulated so far, and later layers use the rate
  multiplied by the strides removed (so at output stride 16, expanded_conv_13 is not dilated but 14-16 are 2);
- batch norm is slim's default epsilon 1e-3, with DeepLab's decay 0.997; activations are relu6.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from keras import layers

from segtrain.backbones.slim_layers import Init, Norm, conv_bn, depthwise_bn, keras_name

SCOPE = "MobilenetV2"
NORM = Norm(epsilon=1e-3, momentum=0.997)
INIT = Init(conv=0.09, depthwise=0.09)  # slim training_scope: truncated normal, stddev 0.09

# (expansion factor, stride, output channels) of expanded_conv, expanded_conv_1, ... expanded_conv_16.
_BLOCKS = (
    (1, 1, 16),
    (6, 2, 24), (6, 1, 24),
    (6, 2, 32), (6, 1, 32), (6, 1, 32),
    (6, 2, 64), (6, 1, 64), (6, 1, 64), (6, 1, 64),
    (6, 1, 96), (6, 1, 96), (6, 1, 96),
    (6, 2, 160), (6, 1, 160), (6, 1, 160),
    (6, 1, 320),
)
_STEM = (2, 32)  # Conv: stride, output channels
# The block whose depthwise output DeepLab's decoder reads at stride 4 ('layer_4/depthwise_output' is
# expanded_conv_2: layer_1 is the stem Conv).
LOW_LEVEL_BLOCK = {4: 2}


def make_divisible(value: float, divisor: int, min_value: int | None = None) -> int:
    """slim's channel rounding: nearest multiple of divisor, at least min_value, never 10 % below value."""
    floor = divisor if min_value is None else min_value
    rounded = max(floor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return int(rounded)


@dataclass(frozen=True)
class Widths:
    """Channel counts: the stem, then (expansion or None when there is no expand layer, output) per block."""

    stem: int
    blocks: tuple[tuple[int | None, int], ...]


def widths(depth_multiplier: float) -> Widths:
    """The channel counts DeepLab's MobilenetV2 has at a depth multiplier."""
    if depth_multiplier <= 0:
        raise ValueError(f"depth multiplier must be positive, got {depth_multiplier}")
    divisor = 8 if depth_multiplier == 1.0 else 1

    def scaled(channels: int) -> int:
        return make_divisible(channels * depth_multiplier, divisor, divisor)

    stem = scaled(_STEM[1])
    previous, blocks = stem, []
    for factor, _, outputs in _BLOCKS:
        # The expansion is sized from the actual input channels and always rounded to multiples of 8; the
        # first block's (factor 1, divisor 1) equals its input, and slim adds an expand layer only when the
        # expansion is wider than the input.
        inner = previous if factor == 1 else make_divisible(previous * factor, 8)
        out = scaled(outputs)
        blocks.append((inner if inner > previous else None, out))
        previous = out
    return Widths(stem, tuple(blocks))


def strides_and_rates(output_stride: int | None) -> list[tuple[int, int]]:
    """(stride, atrous rate) of the stem and each block, by slim's rule for reaching output_stride."""
    current, rate, plan = 1, 1, []
    for stride in [_STEM[0]] + [block[1] for block in _BLOCKS]:
        if output_stride is not None and current == output_stride:
            plan.append((1, rate))
            rate *= stride
        else:
            plan.append((stride, 1))
            current *= stride
    if output_stride is not None and current != output_stride:
        raise ValueError(f"MobilenetV2 cannot reach output stride {output_stride}")
    return plan


def block_scope(index: int) -> str:
    return f"{SCOPE}/expanded_conv" + (f"_{index}" if index else "")


def mobilenet_v2(images, depth_multiplier: float = 1.0, output_stride: int = 16, norm: Norm = NORM, init: Init = INIT):  # type: ignore[no-untyped-def]
    """Preprocessed images in [-1, 1] -> (features, {stride: low-level feature}) as DeepLab extracts them."""
    plan = strides_and_rates(output_stride)
    width = widths(depth_multiplier)
    stride, _ = plan[0]
    x = conv_bn(images, width.stem, 3, f"{SCOPE}/Conv", norm, init.conv, "relu6", stride=stride)
    low_level = {}
    for index, ((inner, outputs), (stride, rate)) in enumerate(zip(width.blocks, plan[1:])):
        scope = block_scope(index)
        block_input = x
        if inner is not None:
            x = conv_bn(x, inner, 1, f"{scope}/expand", norm, init.conv, "relu6")
        x = depthwise_bn(x, 3, f"{scope}/depthwise", norm, init.depthwise, "relu6", stride=stride, rate=rate)
        for level, block in LOW_LEVEL_BLOCK.items():
            if block == index:
                low_level[level] = x
        x = conv_bn(x, outputs, 1, f"{scope}/project", norm, init.conv, None)
        if stride == 1 and block_input.shape[-1] == outputs:
            x = layers.Add(name=keras_name(scope) + ".residual")([block_input, x])
    return x, low_level


def features(images, spec, output_stride: int, depth_multiplier: float, bn_momentum: float | None, weight_init: str):  # type: ignore[no-untyped-def]
    """The family's entry for segtrain.backbones' table: DeepLab's settings unless bn_momentum / weight_init say otherwise."""
    norm = NORM if bn_momentum is None else replace(NORM, momentum=bn_momentum)
    init = INIT if weight_init == "deeplab" else Init()
    return mobilenet_v2(images, depth_multiplier, output_stride, norm, init)


# Depth multipliers of DeepLab's and slim's MobilenetV2 checkpoints, tried before a finer search.
_COMMON_MULTIPLIERS = (1.0, 0.5, 0.75, 0.35, 0.25, 1.4, 1.3)


def detect(shapes, spec) -> dict:  # type: ignore[no-untyped-def]
    """{"depth_multiplier": m} for a checkpoint's MobilenetV2 variables: the multiplier whose channel counts
    are the checkpoint's, layer for layer; BackboneMismatch when none is."""
    from segtrain.backbones import BackboneMismatch

    if f"{SCOPE}/Conv/weights" not in shapes:
        raise BackboneMismatch(f"has no variable '{SCOPE}/Conv/weights'")
    stem = shapes[f"{SCOPE}/Conv/weights"][3]
    found = []
    for index in range(len(_BLOCKS)):
        block = block_scope(index)
        expand = shapes.get(f"{block}/expand/weights")
        project = shapes.get(f"{block}/project/weights")
        if project is None:
            raise BackboneMismatch(f"has no variable '{block}/project/weights' (not DeepLab's MobilenetV2)")
        found.append((expand[3] if expand else None, project[3]))
    wanted = (stem, tuple(found))
    fine = [round(0.005 * k, 3) for k in range(1, 601)]
    for multiplier in (*_COMMON_MULTIPLIERS, *fine):
        candidate = widths(multiplier)
        if (candidate.stem, candidate.blocks) == wanted:
            return {"depth_multiplier": multiplier}
    raise BackboneMismatch(f"MobilenetV2 channel counts (Conv: {stem}) match no depth multiplier")


__all__ = ["mobilenet_v2", "features", "detect", "widths", "strides_and_rates", "make_divisible", "SCOPE", "NORM", "INIT"]
