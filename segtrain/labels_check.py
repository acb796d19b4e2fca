"""What a split's labels hold against what the model will learn, read from segprep's manifests.

The registry gives fit its class count and ignore label; the records were converted with the
registry entry each split's manifest records (parameters.registry_entry), and the manifest counts
every label value of every sample (samples[i].histogram). Checked before any model is built:

- Refused (SegtrainError naming the manifest): a registry entry whose num_classes or ignore_label
  differ from the ones the split was converted with, and labels holding a value that is neither a
  class (0..num_classes-1) nor the ignore label. Unchecked, the first batch ends training with
  TensorFlow's "Received a label value of 2 which is outside the valid range of [0, 2)" and a
  dump of the graph. An ignore label inside the classes is fine (DeepLab's ADE20K: 151 classes,
  0 "other" ignored): the rule is about the values the labels hold.
- Warned (one line each): a split none of whose pixels is trainable (every one is the ignore
  label: the loss is 0 at every step and nothing is learned), and samples without a trainable pixel.

A split without a manifest (records made by other tools) has nothing to check. Pure Python.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from segtrain.errors import SegtrainError


class LabelMismatchError(SegtrainError):
    """A split whose labels or conversion do not fit the registry entry fit would train with."""


def _values(samples: list[dict[str, Any]]) -> dict[int, tuple[int, int]]:
    """{label value: (pixels, samples holding it)} over the samples' histograms."""
    found: dict[int, tuple[int, int]] = {}
    for sample in samples:
        for key, count in sample["histogram"].items():
            if count:
                pixels, holders = found.get(int(key), (0, 0))
                found[int(key)] = (pixels + count, holders + 1)
    return found


def check_split_labels(entry: Any, data_dir: Path, split: str, registry_path: Path | str, training: bool = True) -> list[str]:
    """Warning lines for split (may be empty); LabelMismatchError naming its manifest when fit must not start.

    entry: the registry entry (name, num_classes, ignore_label) the model is built from.
    training: the split is trained on (else evaluated: the warnings say what that means there).
    A damaged manifest is segprep's ManifestError naming it.
    """
    from segprep.manifest import load_manifest, manifest_path

    path = manifest_path(data_dir, split)
    if not path.exists():
        return []
    document = load_manifest(path)
    classes, ignore = entry.num_classes, entry.ignore_label
    converted = document["parameters"]["registry_entry"]
    samples = document["samples"]
    outside = {v: n for v, n in sorted(_values(samples).items()) if v != ignore and not 0 <= v < classes}
    detail = ""
    if outside:
        shown = ", ".join(f"{v} ({pixels} pixels in {holders} of {len(samples)} samples)" for v, (pixels, holders) in list(outside.items())[:5])
        more = f" and {len(outside) - 5} more" if len(outside) > 5 else ""
        detail = f"its labels hold {shown}{more}, neither one of the {classes} classes (0..{classes - 1}) nor the ignore label {ignore}"
    if (converted["num_classes"], converted["ignore_label"]) != (classes, ignore):
        why = f"; {detail}" if detail else ""
        raise LabelMismatchError(
            f"{path}: split {split!r} was converted with {converted['num_classes']} classes and ignore label {converted['ignore_label']}, "
            f"but the registry entry of {entry.name!r} ({registry_path}) has {classes} classes and ignore label {ignore}{why}; "
            "convert the split again with this entry, or fix the entry"
        )
    if detail:
        raise LabelMismatchError(f"{path}: {detail}; the model cannot learn them: convert the split again (segprep checks the values against the classes)")
    return _trainable_warnings(path, split, samples, classes, ignore, training)


def _trainable_warnings(path: Path, split: str, samples: list[dict[str, Any]], classes: int, ignore: int, training: bool) -> list[str]:
    if not samples:
        return []
    empty = sum(1 for sample in samples if not any(count for key, count in sample["histogram"].items() if int(key) != ignore and int(key) < classes))
    if empty == len(samples):
        effect = "so the loss is 0 at every step and nothing is learned" if training else "so there is nothing to score"
        return [f"warning: {path}: no trainable pixel in split {split!r}: every label pixel of its {len(samples)} sample(s) is the ignore label {ignore}, {effect}"]
    if empty:
        effect = "they add nothing to the loss" if training else "they add nothing to the scores"
        return [f"warning: {path}: {empty} of {len(samples)} {split} sample(s) have no trainable pixel (every label pixel is the ignore label {ignore}); {effect}"]
    return []
