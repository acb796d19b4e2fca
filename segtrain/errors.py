"""segtrain's own error types: each message is one line that names the file and what is wrong.

They derive from segprep's SegprepError, so the command-line layer (GuardedGroup) prints them as
one `error:` line with exit status 1, and from ValueError, so code that caught the ValueErrors
these replaced keeps working.
"""

from __future__ import annotations

import re

from segprep.errors import SegprepError


class SegtrainError(SegprepError, ValueError):
    """A problem with a user's records, checkpoints, images or options found by segtrain."""


class EmptySplitError(SegtrainError):
    """A split with no record: training would wait forever for a first batch."""


class RunFileError(SegtrainError):
    """A logdir's segtrain.json is missing, not JSON, or lacks what rebuilding the model needs."""


class CheckpointError(SegtrainError):
    """A checkpoint that cannot be read, or that does not fit the model it should restore."""


class TrainingDiverged(SegtrainError):
    """The loss or the weights became NaN or infinite; nothing of them is saved."""


class ImageReadError(SegtrainError):
    """An input image that cannot be decoded, or whose pixels have no defined 8-bit RGB meaning."""


def tf_message(exc: BaseException, limit: int = 240) -> str:
    """A TensorFlow error's message on one line, without its graph-node and op decorations."""
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    text = re.sub(r"\{\{function_node [^}]*\}\}", "", text)
    text = re.sub(r"\[\[\{\{node [^}]*\}\}\]\]", "", text)  # tf.data's "[[{{node DecodePng}}]]"
    text = re.sub(r"\[Op:[^\]]*\].*$", "", text, flags=re.S)
    return " ".join(text.split())[:limit]
