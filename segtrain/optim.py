"""`segtrain fit`'s optimizer and DeepLab's weight decay.

DeepLab (TF1, slim) regularizes with `slim.l2_regularizer(weight_decay)` set on `slim.conv2d` only:
each regularized kernel k adds weight_decay * tf.nn.l2_loss(k) = weight_decay * sum(k**2) / 2 to the
loss. The regularized kernels are the convolutions' `weights`, in the backbone (MobileNetV2's
training_scope, Xception's arg scope with regularize_depthwise=False) as in the heads (image pooling,
aspp0, concat_projection, the pointwise halves of the split separable convolutions, the decoder's
projection, the logits). Never regularized: `depthwise_weights` (DeepLab's split_separable_conv2d and
both backbones set no regularizer on them), biases (slim sets no biases_regularizer), batch-norm gamma and
beta (no param_regularizers). The kernels are picked here by their TF1 name, `<scope>/weights`, which
`segtrain.backbones.slim_layers.tf1_variables` gives exactly the Conv2D kernels.

With SGD (DeepLab's momentum 0.9) the penalty is a term of the loss, so momentum carries its gradient
as DeepLab's does. With AdamW the same kernels instead get AdamW's decoupled decay (Keras': each step
k -= lr * weight_decay * k), which Adam's per-variable scaling would otherwise undo for a loss term.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import tensorflow as tf

from segtrain.deeplab_model import variables

OPTIMIZERS = ("sgd", "adamw")


@dataclass(frozen=True)
class OptimizerDefaults:
    """What --lr and --weight-decay mean when not given, per --optimizer."""

    learning_rate: float
    weight_decay: float


# sgd: DeepLab's train.py (base_learning_rate 0.007, weight_decay 4e-5 as L2 on the loss);
# adamw: Keras' AdamW defaults (learning_rate 0.001, weight_decay 0.004, decoupled). 0.007 is far too
# high a step for Adam, and 4e-5 decoupled decay scaled by the learning rate does nothing.
DEFAULTS = {"sgd": OptimizerDefaults(0.007, 4e-5), "adamw": OptimizerDefaults(0.001, 0.004)}


def default_optimizer(resumed: str | None, from_weights: bool) -> str:
    """--optimizer when it is not given.

    A resumed logdir keeps the optimizer it was trained with (`resumed`, from its segtrain.json).
    Training from scratch uses adamw: at equal wall time on the same data it reached 1.40x the val mIoU
    of DeepLab's SGD with DeepLab's model (benchmarks/recipe_compare.py, arms deeplab and adamw).
    Starting from pretrained weights (--init-checkpoint, --backbone-weights) keeps DeepLab's own
    fine-tuning recipe, sgd.
    """
    if resumed is not None:
        return resumed
    return "sgd" if from_weights else "adamw"


def decayed_kernels(model: keras.Model) -> dict[str, keras.Variable]:
    """TF1 name -> kernel for every weight DeepLab's L2 regularizer covers: the convolutions' `weights`."""
    return {name: variable for name, variable in variables(model).items() if name.endswith("/weights")}


def l2_penalty(kernels: list[keras.Variable], weight_decay: float) -> tf.Tensor:
    """weight_decay * sum(k**2) / 2 over the kernels (slim.l2_regularizer, i.e. tf.nn.l2_loss), float32."""
    if not kernels or weight_decay == 0:
        return tf.constant(0.0, tf.float32)
    return weight_decay * tf.add_n([tf.nn.l2_loss(tf.cast(tf.convert_to_tensor(k), tf.float32)) for k in kernels])


def loss_regularizer(optimizer: str, model: keras.Model, weight_decay: float) -> Callable[[], tf.Tensor] | None:
    """The term the train step adds to the loss: DeepLab's L2 under sgd; None under adamw or with no decay."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r} (choose from {', '.join(OPTIMIZERS)})")
    if optimizer != "sgd" or weight_decay == 0:
        return None
    kernels = list(decayed_kernels(model).values())
    return lambda: l2_penalty(kernels, weight_decay)


def make_optimizer(
    optimizer: str, schedule: keras.optimizers.schedules.LearningRateSchedule | float, model: keras.Model, momentum: float, weight_decay: float
) -> keras.optimizers.Optimizer:
    """SGD with momentum and no decoupled decay (its decay is loss_regularizer's term), or AdamW whose
    decoupled decay covers only the kernels DeepLab regularizes (not batch norm, biases or depthwise kernels)."""
    if optimizer == "sgd":
        return keras.optimizers.SGD(schedule, momentum=momentum)
    if optimizer == "adamw":
        adamw = keras.optimizers.AdamW(schedule, weight_decay=weight_decay)
        decayed = {id(k) for k in decayed_kernels(model).values()}
        adamw.exclude_from_weight_decay(var_list=[v for v in model.trainable_variables if id(v) not in decayed])
        return adamw
    raise ValueError(f"unknown optimizer {optimizer!r} (choose from {', '.join(OPTIMIZERS)})")


def resume_problem(saved: object, asked: str) -> str | None:
    """Why a logdir trained with optimizer `saved` (segtrain.json's "optimizer"; None: written before the
    option, so sgd) cannot resume under `asked`, or None. The optimizers' states do not map onto each
    other: restoring SGD's momentum into AdamW's slots makes the weights NaN at the next step."""
    saved = "sgd" if saved is None else saved
    if saved not in OPTIMIZERS:
        return f'"optimizer" must be one of {", ".join(OPTIMIZERS)}, found {saved!r}'
    if saved != asked:
        return f"this logdir was trained with --optimizer {saved}, whose state cannot resume under --optimizer {asked}; resume with --optimizer {saved} or choose a new --logdir"
    return None
