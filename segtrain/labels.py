"""What a dataset's labels mean, as one object: from the registry to fit, the augmentation, the
evaluation, segtrain.json and the pictures.

The registry entry is the source; a logdir's segtrain.json keeps a copy (without the class
weights, which only training uses), so that eval, predict and export know the classes and colours
of a model wherever it goes. Light on purpose (no TensorFlow): the CLI builds it before anything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Labels:
    """num_classes classes named class_names, coloured by colormap (one [r, g, b] per class, at least),
    the ignore label left out of loss and metrics, and optional class weights of the loss."""

    num_classes: int
    ignore_label: int
    colormap: tuple[tuple[int, int, int], ...]
    class_names: tuple[str, ...]
    class_weights: tuple[float, ...] | None = None
    dataset: str | None = None

    @classmethod
    def from_entry(cls, entry: Any, use_class_weights: bool = True) -> Labels:
        """A segprep registry entry's labels (its colormap resolved to colours)."""
        from segprep.colormaps import resolve_colormap

        weights = tuple(entry.class_weights) if use_class_weights and entry.class_weights else None
        colours = tuple(tuple(int(v) for v in rgb) for rgb in resolve_colormap(entry.colormap).tolist())
        return cls(entry.num_classes, entry.ignore_label, colours, tuple(entry.class_names), weights, entry.name)  # type: ignore[arg-type]

    @classmethod
    def default(cls, num_classes: int) -> Labels:
        """No dataset known (import-deeplab without --dataset): PASCAL's colours (DeepLab's default),
        ignore label 255, classes class_0, class_1, ..."""
        from segprep.colormaps import builtin_colormap

        colours = tuple(tuple(int(v) for v in rgb) for rgb in builtin_colormap("pascal").tolist())
        return cls(num_classes, 255, colours, tuple(f"class_{i}" for i in range(num_classes)))  # type: ignore[arg-type]

    @classmethod
    def from_run(cls, run: dict[str, Any]) -> Labels:
        """The labels a (validated) segtrain.json document records."""
        colours = tuple(tuple(int(v) for v in rgb) for rgb in run["colormap"])
        names = run.get("class_names") or [f"class_{i}" for i in range(run["model"]["num_classes"])]
        return cls(run["model"]["num_classes"], run["ignore_label"], colours, tuple(names), None, run.get("dataset"))  # type: ignore[arg-type]

    def run_fields(self) -> dict[str, Any]:
        """What segtrain.json records of the labels (JSON types)."""
        return {"dataset": self.dataset, "ignore_label": self.ignore_label, "colormap": [list(c) for c in self.colormap], "class_names": list(self.class_names)}

    @property
    def colour_list(self) -> list[list[int]]:
        """The colours as segprep.colormaps.colorize takes them."""
        return [list(c) for c in self.colormap]
