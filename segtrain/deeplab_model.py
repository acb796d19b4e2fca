"""DeepLab (v3 / v3+) as one Keras 3 model whose weights carry DeepLab's TF1 variable names.

`build(config)` makes the network that DeepLab's `model.predict_labels` runs: input scaling
(2/255) * x - 1 inside the model (so exports take raw uint8 pixels), a DeepLab backbone at output stride
8 or 16, ASPP with image pooling, the optional decoder, `logits/semantic`, and a final bilinear resize to the
image with align_corners=True. The model's output is those full-size logits (float32), as segtrain's
training, evaluation and export expect. The same model trains from scratch (`fit`) or takes a DeepLab TF1
checkpoint's weights (`segtrain.deeplab_checkpoint`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import keras
from keras import layers

from segtrain import heads
from segtrain.backbones import BACKBONE_NAMES as BACKBONES
from segtrain.backbones import extract_features, scope, spec
from segtrain.backbones.slim_layers import tf1_variables

DEFAULT_RATES = (6, 12, 18)  # DeepLab's atrous rates at output stride 16
INIT_MODES = ("all", "all-but-logits", "backbone")


@dataclass(frozen=True)
class DeepLabConfig:
    """Everything that shapes the network (what `fit --backbone ... --output-stride ...` chooses).

    aspp: the three atrous branches (DeepLab's `atrous_rates`); image pooling, aspp0 and concat_projection
    are there either way, as in DeepLab (its MobileNetV2 checkpoints have them without atrous branches).
    atrous_rates None: DeepLab's 6, 12, 18 at output stride 16, doubled at 8.
    bn_momentum None: DeepLab's decays (0.997 MobileNetV2, 0.9997 Xception and the heads); epsilons are
    fixed by the architecture (1e-3 backbones, 1e-5 heads).
    weight_init: "deeplab" (DeepLab's initializers) or "keras" (Glorot uniform everywhere).
    """

    num_classes: int
    backbone: str = "mobilenetv2"
    depth_multiplier: float = 1.0
    output_stride: int = 16
    aspp: bool = True
    atrous_rates: tuple[int, ...] | None = None
    image_pooling: bool = True
    decoder: bool = True
    filters: int = 256
    bn_momentum: float | None = None
    weight_init: str = "deeplab"

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r} (choose from {', '.join(BACKBONES)})")
        if self.output_stride not in (8, 16):
            raise ValueError(f"output stride must be 8 or 16, got {self.output_stride}")
        if not spec(self.backbone).has_width and self.depth_multiplier != 1.0:
            raise ValueError(f"{self.backbone} has no depth multiplier (got {self.depth_multiplier})")
        if self.weight_init not in ("deeplab", "keras"):
            raise ValueError(f"weight_init must be 'deeplab' or 'keras', got {self.weight_init!r}")
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {self.num_classes}")
        if self.atrous_rates is not None:
            object.__setattr__(self, "atrous_rates", tuple(int(r) for r in self.atrous_rates))

    @property
    def rates(self) -> tuple[int, ...]:
        """The atrous rates ASPP uses (none when aspp is off)."""
        if not self.aspp:
            return ()
        if self.atrous_rates is not None:
            return self.atrous_rates
        return tuple(rate * 16 // self.output_stride for rate in DEFAULT_RATES)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, document: dict) -> DeepLabConfig:
        """The config a to_dict() document (e.g. read back from JSON) describes; unknown keys are an error."""
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(document) - known)
        if unknown:
            raise ValueError(f"unknown DeepLab model settings: {', '.join(unknown)}")
        return cls(**document)


def build(config: DeepLabConfig) -> keras.Model:
    """images [B, H, W, 3] in 0..255 (any size, uint8 values as float) -> logits [B, H, W, num_classes] float32."""
    images = keras.Input((None, None, 3), name="image")
    scaled = heads.ScaleToUnitRange(name="preprocess")(images)
    features, low_level = extract_features(scaled, config.backbone, config.output_stride, config.depth_multiplier, config.bn_momentum, config.weight_init)
    norm = heads.NORM if config.bn_momentum is None else replace(heads.NORM, momentum=config.bn_momentum)
    x = heads.aspp(features, config.rates, config.image_pooling, config.filters, norm, config.weight_init)
    if config.decoder:
        x = heads.decoder(x, low_level[4], config.filters, norm, config.weight_init)
    logits = heads.logits(x, config.num_classes, config.weight_init)
    full = heads.ResizeAlignCorners(name="logits.resize")([logits, images])
    full = layers.Activation("linear", dtype="float32", name="logits.float32")(full)
    return keras.Model(images, full, name=f"deeplab_{config.backbone}_os{config.output_stride}")


def with_merged_logits(model: keras.Model) -> keras.Model:
    """The same network with two outputs: DeepLab's `merged_logits` (at the logits' stride) and the full-size logits."""
    return keras.Model(model.input, [model.get_layer(heads.LOGITS_LAYER).output, model.output])


def variables(model: keras.Model) -> dict[str, keras.Variable]:
    """TF1 variable name (as in DeepLab's checkpoints) -> the model's variable."""
    return tf1_variables(model)


def variables_for_mode(model: keras.Model, backbone: str, mode: str) -> dict[str, keras.Variable]:
    """The variables DeepLab's FAQ modes restore: all; all but `logits/` (initialize_last_layer=False);
    backbone only (also leaving out image_pooling, aspp, concat_projection and decoder)."""
    table = variables(model)
    if mode == "all":
        return table
    if mode == "all-but-logits":
        return {name: var for name, var in table.items() if not name.startswith("logits/")}
    if mode == "backbone":
        prefix = scope(backbone) + "/"
        return {name: var for name, var in table.items() if name.startswith(prefix)}
    raise ValueError(f"unknown init mode {mode!r} (choose from {', '.join(INIT_MODES)})")
