"""The dataset registry (dataset_registry.yaml): the one source of truth for what a dataset is.

Reading uses PyYAML (fast, C loader when available). Writing uses ruamel.yaml's round-trip mode,
because users annotate this file by hand and a rewrite must keep their comments and key order;
every write goes to a temporary file in the same folder and is renamed over the original, so a
crash never leaves a half-written registry.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from segprep.colormaps import BUILTIN_COLORMAPS, resolve_colormap
from segprep.fileio import atomic_write

REGISTRY_ENV = "SEGPREP_REGISTRY"
REGISTRY_FILENAME = "dataset_registry.yaml"
_CHECKOUT_REGISTRY = Path(__file__).resolve().parent.parent / REGISTRY_FILENAME
_KNOWN_KEYS = {"num_classes", "ignore_label", "colormap", "class_names", "splits", "class_weights", "data_dir"}


class RegistryError(ValueError):
    """The registry file is missing, unreadable or inconsistent; the message names the file and key."""


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset as the registry describes it."""

    name: str
    num_classes: int
    ignore_label: int
    colormap: str | list[list[int]]
    class_names: list[str]
    splits: dict[str, int] = field(default_factory=dict)
    class_weights: list[float] | None = None
    data_dir: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The YAML mapping for this entry (without the name), in the registry's key order."""
        out: dict[str, Any] = {
            "num_classes": self.num_classes,
            "ignore_label": self.ignore_label,
            "colormap": self.colormap,
            "class_names": list(self.class_names),
            "splits": dict(self.splits),
            "class_weights": self.class_weights,
        }
        if self.data_dir is not None:
            out["data_dir"] = self.data_dir
        return out


def resolve_registry_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The registry to use: --registry, else $SEGPREP_REGISTRY, else ./dataset_registry.yaml, else the checkout's."""
    if explicit:
        return Path(explicit)
    if os.environ.get(REGISTRY_ENV):
        return Path(os.environ[REGISTRY_ENV])
    local = Path.cwd() / REGISTRY_FILENAME
    if local.is_file():
        return local
    if _CHECKOUT_REGISTRY.is_file():
        return _CHECKOUT_REGISTRY
    raise RegistryError(f"no {REGISTRY_FILENAME} found; pass --registry PATH or set {REGISTRY_ENV}")


def validate_entry(name: str, raw: Any, source: Path | str = "registry") -> DatasetEntry:
    """Check one dataset mapping and return it typed; RegistryError names the file, dataset and key."""
    where = f"{source}: dataset {name!r}"
    if not isinstance(raw, dict):
        raise RegistryError(f"{where}: expected a mapping, got {type(raw).__name__}")
    for key in ("num_classes", "ignore_label", "colormap", "class_names"):
        if key not in raw:
            raise RegistryError(f"{where}: missing key {key!r}")
    unknown = set(raw) - _KNOWN_KEYS
    if unknown:
        raise RegistryError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    num_classes = raw["num_classes"]
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or not 1 <= num_classes <= 256:
        raise RegistryError(f"{where}: num_classes must be an integer in 1..256, got {num_classes!r}")
    ignore = raw["ignore_label"]
    if not isinstance(ignore, int) or isinstance(ignore, bool) or not 0 <= ignore <= 255:
        raise RegistryError(f"{where}: ignore_label must be an integer in 0..255 (8-bit labels), got {ignore!r}")
    names = raw["class_names"]
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise RegistryError(f"{where}: class_names must be a list of non-empty strings")
    if len(names) != num_classes:
        raise RegistryError(f"{where}: class_names has {len(names)} names but num_classes is {num_classes}")
    colormap = raw["colormap"]
    try:
        colors = resolve_colormap(colormap)
    except ValueError as exc:
        known = ", ".join(BUILTIN_COLORMAPS)
        raise RegistryError(f"{where}: bad colormap ({exc}); use one of {known} or a list of [r, g, b]") from None
    if len(colors) < num_classes:
        raise RegistryError(f"{where}: colormap has {len(colors)} colours but num_classes is {num_classes}")
    splits = raw.get("splits") or {}
    if not isinstance(splits, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0 for k, v in splits.items()
    ):
        raise RegistryError(f"{where}: splits must map split names to record counts")
    weights = raw.get("class_weights")
    if weights is not None:
        if not isinstance(weights, list) or len(weights) != num_classes:
            raise RegistryError(f"{where}: class_weights must be null or a list of {num_classes} numbers")
        if not all(isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0 for w in weights):
            raise RegistryError(f"{where}: class_weights must be non-negative numbers")
        weights = [float(w) for w in weights]
    data_dir = raw.get("data_dir")
    if data_dir is not None and not isinstance(data_dir, str):
        raise RegistryError(f"{where}: data_dir must be a path string")
    return DatasetEntry(
        name=name,
        num_classes=num_classes,
        ignore_label=ignore,
        colormap=colormap if isinstance(colormap, str) else [list(c) for c in colormap],
        class_names=list(names),
        splits=dict(splits),
        class_weights=weights,
        data_dir=data_dir,
    )


@dataclass(frozen=True)
class Registry:
    """A loaded, validated registry file."""

    path: Path
    datasets: dict[str, DatasetEntry]

    def get(self, name: str) -> DatasetEntry:
        try:
            return self.datasets[name]
        except KeyError:
            known = ", ".join(sorted(self.datasets)) or "none"
            raise RegistryError(f"{self.path}: no dataset {name!r} (known: {known})") from None


def load_registry(path: Path | None = None) -> Registry:
    """Load and validate the whole registry (every entry, so a broken one is found at once)."""
    path = path or resolve_registry_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RegistryError(f"{path}: registry file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{path}: cannot read registry ({exc})") from None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        document = yaml.load(text, Loader=loader) or {}
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path}: not valid YAML ({exc})".replace("\n", " ")) from None
    if not isinstance(document, dict) or not isinstance(document.get("datasets", {}), dict):
        raise RegistryError(f"{path}: expected a top-level 'datasets:' mapping")
    datasets = {name: validate_entry(str(name), raw, path) for name, raw in (document.get("datasets") or {}).items()}
    return Registry(path, datasets)


def _round_trip_yaml():  # type: ignore[no-untyped-def]
    from ruamel.yaml import YAML

    handler = YAML()
    handler.preserve_quotes = True
    handler.width = 120
    handler.indent(mapping=2, sequence=4, offset=2)
    # Write None as `null` (ruamel's default is an empty value), as the hand-written file does.
    handler.representer.add_representer(type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null"))
    return handler


def _flow(value: Any) -> Any:
    """Short lists and split maps read best on one line, as the registry is written by hand."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(value, dict):
        mapping = CommentedMap(value)
        mapping.fa.set_flow_style()
        return mapping
    if isinstance(value, list):
        seq = CommentedSeq(_flow(v) if isinstance(v, list) else v for v in value)
        seq.fa.set_flow_style()
        return seq
    return value


def _rewrite(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    """Apply change(document) to a round-trip load of the registry and replace the file atomically."""
    handler = _round_trip_yaml()
    if path.exists():
        with open(path, encoding="utf-8") as handle:
            document = handler.load(handle)
    else:
        document = None
    if document is None:
        from ruamel.yaml.comments import CommentedMap

        document = CommentedMap()
    if document.get("datasets") is None:
        from ruamel.yaml.comments import CommentedMap

        document["datasets"] = CommentedMap()
    change(document["datasets"])
    atomic_write(path, lambda handle: handler.dump(document, handle), mode="w", encoding="utf-8")


def record_splits(path: Path, name: str, sizes: dict[str, int], data_dir: str | None = None) -> None:
    """Set the record counts of the given splits (others are kept) and the data folder of a dataset."""

    def change(datasets) -> None:  # type: ignore[no-untyped-def]
        if name not in datasets:
            raise RegistryError(f"{path}: no dataset {name!r} to record splits for")
        entry = datasets[name]
        splits = dict(entry.get("splits") or {})
        splits.update(sizes)
        entry["splits"] = _flow(splits)
        if data_dir is not None:
            entry["data_dir"] = data_dir

    _rewrite(path, change)


def register_dataset(path: Path, entry: DatasetEntry) -> None:
    """Add a dataset, or update an existing one in place (keeping its comments and recorded splits)."""
    validate_entry(entry.name, entry.to_dict(), path)

    def change(datasets) -> None:  # type: ignore[no-untyped-def]
        values = entry.to_dict()
        existing = datasets.get(entry.name)
        if existing is None:
            from ruamel.yaml.comments import CommentedMap

            datasets[entry.name] = existing = CommentedMap()
        elif not values["splits"]:
            values["splits"] = dict(existing.get("splits") or {})
        for key, value in values.items():
            # Short lists on one line; class names one per line, which round-trips without reflowing.
            existing[key] = _flow(value) if key in ("splits", "colormap", "class_weights") else value

    _rewrite(path, change)


def set_class_weights(path: Path, name: str, weights: list[float] | None) -> None:
    """Set (or clear, with None) a dataset's class weights; validated against its class count."""

    def change(datasets) -> None:  # type: ignore[no-untyped-def]
        if name not in datasets:
            raise RegistryError(f"{path}: no dataset {name!r}")
        raw = dict(datasets[name])
        raw["class_weights"] = weights
        validate_entry(name, raw, path)
        datasets[name]["class_weights"] = _flow(weights) if weights is not None else None

    _rewrite(path, change)
