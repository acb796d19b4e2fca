"""DeepLab (v3 / v3+) as one Keras 3 model whose weights carry DeepLab's TF1 variable names.

`build(config)` makes the network that DeepLab's `model.predict_labels` runs: input scaling
(2/255) * x - 1 inside the model (so exports take raw uint8 pixels), a DeepLab backbone at output stride
8 or 16, ASPP with image pooling, the optional decoder, `logits/semantic`, and a final bilinear resize to the
image with align_corners=True. The model's output is those full-size logits (float32), as segtrain's
training, evaluation and export expect. The same model trains from scratch (`fit`) or takes a DeepLab TF1
checkpoint's weights (`segtrain.deeplab_checkpoint`).

Two additions that are not DeepLab's (`fit --attention`, `fit --aux-loss`): DANet's position / channel attention
over ASPP's output (segtrain.attention; its gammas start at 0, so the network starts as DeepLab's function),
and an auxiliary FCN head on the backbone's last feature (the one ASPP reads) that only `build_training`'s
training model has: eval, predict and export build the inference model, whose one output is the main logits.
Their variables (`attention/...`, `aux/...`) are outside what DeepLab checkpoints hold (ADDED_SCOPES).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import keras
from keras import layers

from segtrain import heads
from segtrain.attention import ATTENTION_KINDS, DualAttention
from segtrain.backbones import BACKBONE_NAMES as BACKBONES
from segtrain.backbones import extract_features, scope, spec
from segtrain.backbones.slim_layers import conv, conv_bn, tf1_variables

DEFAULT_RATES = (6, 12, 18)  # DeepLab's atrous rates at output stride 16
INIT_MODES = ("all", "all-but-logits", "backbone")
# Scopes of variables no DeepLab checkpoint has (--attention, --aux-loss): never required by an init mode.
ADDED_SCOPES = ("attention/", "aux/")
AUX_SCOPE = "aux"


@dataclass(frozen=True)
class DeepLabConfig:
    """Everything that shapes the network (what `fit --backbone ... --output-stride ...` chooses).

    aspp: the three atrous branches (DeepLab's `atrous_rates`); image pooling, aspp0 and concat_projection
    are there either way, as in DeepLab (its MobileNetV2 checkpoints have them without atrous branches).
    atrous_rates None: DeepLab's 6, 12, 18 at output stride 16, doubled at 8.
    bn_momentum None: DeepLab's decays (0.997 MobileNetV2, 0.9997 Xception and the heads); epsilons are
    fixed by the architecture (1e-3 backbones, 1e-5 heads).
    weight_init: "deeplab" (DeepLab's initializers) or "keras" (Glorot uniform everywhere).
    attention: None, or DANet's "position", "channel" or "dual" attention after ASPP (segtrain.attention).
    aux_loss: the weight of the auxiliary head's loss in training (0: no auxiliary head); the inference
    model never has the head, whatever the weight.
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
    attention: str | None = None
    aux_loss: float = 0.0

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
        if self.attention is not None and self.attention not in ATTENTION_KINDS:
            raise ValueError(f"attention must be None or one of {', '.join(ATTENTION_KINDS)}, got {self.attention!r}")
        if not (isinstance(self.aux_loss, (int, float)) and not isinstance(self.aux_loss, bool) and 0 <= self.aux_loss < float("inf")):
            raise ValueError(f"aux_loss must be a finite number >= 0, got {self.aux_loss!r}")
        object.__setattr__(self, "aux_loss", float(self.aux_loss))
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
    return build_training(config)[0]


def build_training(config: DeepLabConfig) -> tuple[keras.Model, keras.Model, list[layers.Layer]]:
    """(inference model, training model, the auxiliary head's layers), sharing every layer.

    Without --aux-loss the training model is the inference model and the list is empty; with it the training
    model has two outputs, [logits, auxiliary logits] (both full size, float32), and the auxiliary head
    (3x3 conv-BN-ReLU at config.filters, 1x1 conv with bias to the classes, align-corners resize to the
    image) reads the backbone's last feature, the one ASPP reads.
    """
    images = keras.Input((None, None, 3), name="image")
    scaled = heads.ScaleToUnitRange(name="preprocess")(images)
    features, low_level = extract_features(scaled, config.backbone, config.output_stride, config.depth_multiplier, config.bn_momentum, config.weight_init)
    norm = heads.NORM if config.bn_momentum is None else replace(heads.NORM, momentum=config.bn_momentum)
    x = heads.aspp(features, config.rates, config.image_pooling, config.filters, norm, config.weight_init)
    if config.attention is not None:
        x = DualAttention(config.attention, name="attention")(x)
    if config.decoder:
        x = heads.decoder(x, low_level[4], config.filters, norm, config.weight_init)
    logits = heads.logits(x, config.num_classes, config.weight_init)
    full = heads.ResizeAlignCorners(name="logits.resize")([logits, images])
    full = layers.Activation("linear", dtype="float32", name="logits.float32")(full)
    name = f"deeplab_{config.backbone}_os{config.output_stride}"
    model = keras.Model(images, full, name=name)
    if config.aux_loss <= 0:
        return model, model, []
    inits = heads.DEEPLAB_INIT if config.weight_init == "deeplab" else heads.KERAS_INIT
    aux = conv_bn(features, config.filters, 3, f"{AUX_SCOPE}/conv0", norm, inits["conv"], "relu")
    aux = conv(aux, config.num_classes, 1, f"{AUX_SCOPE}/logits", inits["logits"], use_bias=True)
    aux = heads.ResizeAlignCorners(name=f"{AUX_SCOPE}.resize")([aux, images])
    aux = layers.Activation("linear", dtype="float32", name=f"{AUX_SCOPE}.float32")(aux)
    training = keras.Model(images, [full, aux], name=f"{name}_train")
    shared = {id(layer) for layer in model.layers}
    return model, training, [layer for layer in training.layers if id(layer) not in shared]


def with_merged_logits(model: keras.Model) -> keras.Model:
    """The same network with two outputs: DeepLab's `merged_logits` (at the logits' stride) and the full-size logits."""
    return keras.Model(model.input, [model.get_layer(heads.LOGITS_LAYER).output, model.output])


def variables(model: keras.Model) -> dict[str, keras.Variable]:
    """TF1 variable name (as in DeepLab's checkpoints) -> the model's variable."""
    return tf1_variables(model)


def variables_for_mode(model: keras.Model, backbone: str, mode: str) -> dict[str, keras.Variable]:
    """The variables DeepLab's FAQ modes restore: all; all but `logits/` (initialize_last_layer=False);
    backbone only (also leaving out image_pooling, aspp, concat_projection and decoder). Never the variables of
    ADDED_SCOPES (attention, auxiliary head), which no DeepLab checkpoint has: they keep their initial values."""
    table = {name: var for name, var in variables(model).items() if not name.startswith(ADDED_SCOPES)}
    if mode == "all":
        return table
    if mode == "all-but-logits":
        return {name: var for name, var in table.items() if not name.startswith("logits/")}
    if mode == "backbone":
        prefix = scope(backbone) + "/"
        return {name: var for name, var in table.items() if name.startswith(prefix)}
    raise ValueError(f"unknown init mode {mode!r} (choose from {', '.join(INIT_MODES)})")


def added_variables(model: keras.Model) -> dict[str, keras.Variable]:
    """The model's variables under ADDED_SCOPES (not DeepLab's)."""
    return {name: var for name, var in variables(model).items() if name.startswith(ADDED_SCOPES)}
