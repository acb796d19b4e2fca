"""DeepLab's modified aligned Xception (`core/xception.py`: xception_41, xception_65, xception_71), in Keras 3.

The network as DeepLab runs it:
- stem: entry_flow/conv1_1 (3x3, 32, stride 2, explicitly padded) and conv1_2 (3x3, 64), each BN + ReLU;
- blocks of units; a unit ("xception_module") is three separable convolutions (depthwise -> BN -> pointwise
  -> BN) plus a shortcut: a strided 1x1 conv + BN ('conv'), the unit's input ('sum') or none. Max pooling is
  replaced by a stride-2 third separable convolution. In every block but the last, ReLU comes *before* each
  separable convolution (the shortcut reads the input before that ReLU); in exit_flow/block2 ReLU comes after
  the depthwise and after the pointwise batch norm instead;
- strided convolutions pad explicitly (k_eff - 1) // 2 before and the rest after, then run VALID, which keeps
  features aligned for even input sizes (TF 'SAME' would pad 0 before and 1 after);
- output stride: the stem strides 2, then the blocks follow the same rule as slim's resnet (once the running
  stride reaches the target, a strided unit runs at stride 1 with the rate so far, and later units' rates are
  multiplied by the removed stride). At output stride 16 the exit flow's first unit is not dilated, the last
  runs at rate 2;
- batch norm epsilon 1e-3, decay 0.9997; weights start from a truncated normal with stddev 0.09.
The decoder reads the batch-normed output of a stride-4 unit's second pointwise convolution (no ReLU).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from keras import layers

from segtrain.backbones.slim_layers import Init, Norm, activation, batch_norm, conv, conv_bn, depthwise, fixed_padding, keras_name

NORM = Norm(epsilon=1e-3, momentum=0.9997)
INIT = Init(conv=0.09, depthwise=0.09)


@dataclass(frozen=True)
class Block:
    scope: str
    depths: tuple[int, int, int]
    shortcut: str  # 'conv', 'sum' or 'none'
    units: int
    stride: int
    activation_inside: bool = False  # ReLU after depthwise and pointwise instead of before the separable conv


def _entry(scope: str, depth: int, stride: int) -> Block:
    return Block(f"entry_flow/{scope}", (depth, depth, depth), "conv", 1, stride)


def _middle(units: int) -> Block:
    return Block("middle_flow/block1", (728, 728, 728), "sum", units, 1)


_EXIT = (
    Block("exit_flow/block1", (728, 1024, 1024), "conv", 1, 2),
    Block("exit_flow/block2", (1536, 1536, 2048), "none", 1, 1, activation_inside=True),
)

VARIANTS: dict[str, tuple[Block, ...]] = {
    "xception_41": (_entry("block1", 128, 2), _entry("block2", 256, 2), _entry("block3", 728, 2), _middle(8), *_EXIT),
    "xception_65": (_entry("block1", 128, 2), _entry("block2", 256, 2), _entry("block3", 728, 2), _middle(16), *_EXIT),
    "xception_71": (
        _entry("block1", 128, 2), _entry("block2", 256, 1), _entry("block3", 256, 2),
        _entry("block4", 728, 1), _entry("block5", 728, 2), _middle(16), *_EXIT,
    ),
}

# DeepLab's decoder end point at stride 4 (feature_extractor.networks_to_feature_maps).
LOW_LEVEL_UNIT = {
    "xception_41": "entry_flow/block2/unit_1",
    "xception_65": "entry_flow/block2/unit_1",
    "xception_71": "entry_flow/block3/unit_1",
}


def unit_plan(blocks: tuple[Block, ...], output_stride: int) -> list[tuple[int, int]]:
    """(stride, rate) for every unit after the stem, by DeepLab's stack_blocks_dense rule."""
    target = output_stride // 2  # the stem has already strided by 2
    current, rate, plan = 1, 1, []
    for block in blocks:
        for _ in range(block.units):
            if current == target:
                plan.append((1, rate))
                rate *= block.stride
            else:
                plan.append((block.stride, 1))
                current *= block.stride
    if current != target:
        raise ValueError(f"Xception cannot reach output stride {output_stride}")
    return plan


def _separable(x, depth: int, scope: str, norm: Norm, init: Init, *, stride: int, rate: int, inside: bool):  # type: ignore[no-untyped-def]
    """One of a unit's three separable convolutions (ReLU before it, or after each half when `inside`)."""
    if not inside:
        x = activation(x, "relu", scope, "relu_in")
    if stride == 1:
        x = depthwise(x, 3, f"{scope}_depthwise", init.depthwise, rate=rate)
    else:
        x = fixed_padding(x, 3, rate, f"{scope}_depthwise")
        x = depthwise(x, 3, f"{scope}_depthwise", init.depthwise, stride=stride, rate=rate, padding="valid")
    x = activation(batch_norm(x, f"{scope}_depthwise", norm), "relu" if inside else None, f"{scope}_depthwise")
    x = conv(x, depth, 1, f"{scope}_pointwise", init.conv)
    return activation(batch_norm(x, f"{scope}_pointwise", norm), "relu" if inside else None, f"{scope}_pointwise")


def _unit(x, block: Block, scope: str, norm: Norm, init: Init, stride: int, rate: int):  # type: ignore[no-untyped-def]
    """One xception_module; returns (output, the second pointwise conv's output for the decoder)."""
    residual, second = x, None
    for i, depth in enumerate(block.depths):
        residual = _separable(
            residual, depth, f"{scope}/separable_conv{i + 1}", norm, init,
            stride=stride if i == 2 else 1, rate=rate, inside=block.activation_inside,
        )
        if i == 1:
            second = residual
    if block.shortcut == "conv":
        shortcut = conv(x, block.depths[-1], 1, f"{scope}/shortcut", init.conv, stride=stride)
        shortcut = batch_norm(shortcut, f"{scope}/shortcut", norm)
        residual = layers.Add(name=keras_name(scope) + ".add")([residual, shortcut])
    elif block.shortcut == "sum":
        residual = layers.Add(name=keras_name(scope) + ".add")([residual, x])
    return residual, second


def xception(images, variant: str = "xception_65", output_stride: int = 16, norm: Norm = NORM, init: Init = INIT):  # type: ignore[no-untyped-def]
    """Preprocessed images in [-1, 1] -> (features, {4: low-level feature}) as DeepLab extracts them."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown Xception variant {variant!r} (choose from {', '.join(VARIANTS)})")
    blocks = VARIANTS[variant]
    plan = iter(unit_plan(blocks, output_stride))
    x = fixed_padding(images, 3, 1, f"{variant}/entry_flow/conv1_1")
    x = conv_bn(x, 32, 3, f"{variant}/entry_flow/conv1_1", norm, init.conv, "relu", stride=2, padding="valid")
    x = conv_bn(x, 64, 3, f"{variant}/entry_flow/conv1_2", norm, init.conv, "relu")
    low_level = {}
    for block in blocks:
        for index in range(block.units):
            stride, rate = next(plan)
            unit = f"{block.scope}/unit_{index + 1}"
            x, second = _unit(x, block, f"{variant}/{unit}/xception_module", norm, init, stride, rate)
            if unit == LOW_LEVEL_UNIT[variant]:
                low_level[4] = second
    return x, low_level


def features(images, spec, output_stride: int, depth_multiplier: float, bn_momentum: float | None, weight_init: str):  # type: ignore[no-untyped-def]
    """The family's entry for segtrain.backbones' table (no width: depth_multiplier is 1.0)."""
    norm = NORM if bn_momentum is None else replace(NORM, momentum=bn_momentum)
    init = INIT if weight_init == "deeplab" else Init()
    return xception(images, spec.variant, output_stride, norm, init)


def detect(shapes, spec) -> dict:  # type: ignore[no-untyped-def]
    """Nothing to read (Xception has no width), but its middle flow must have the variant's unit count."""
    import re

    from segtrain.backbones import BackboneMismatch

    units = {int(m[1]) for name in shapes if (m := re.match(rf"{spec.scope}/middle_flow/block1/unit_(\d+)/", name))}
    expected = next(b.units for b in VARIANTS[spec.variant] if b.scope == "middle_flow/block1")
    if len(units) != expected:
        raise BackboneMismatch(f"scope '{spec.scope}' has {len(units)} middle-flow units, DeepLab's {spec.variant} has {expected}")
    return {}
