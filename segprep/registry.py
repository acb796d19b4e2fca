"""The dataset registry: the one source of truth for what a dataset is.

Two layers. The built-in datasets ship with the package (the top-level `dataset_registry.yaml`, installed as `segprep/dataset_registry.yaml`,
read-only data that works from a wheel as from a checkout). The user's registry file (--registry,
else $SEGPREP_REGISTRY, else ~/.config/segprep/registry.yaml; it may not exist yet) holds their own
datasets and what segprep recorded: split sizes, data folders, class weights. It layers over the
built-ins key by key, so an entry there may be partial (`camvid: {splits: ..., data_dir: ...}`)
or replace a built-in whole. Every write goes to the user's file only; the package is never written.

Reading uses PyYAML (fast, C loader when available) with one addition: a key given twice in a
mapping is an error, not "the last one wins" (a dataset pasted twice, or `num_classes` typed twice,
would otherwise silently change what segtrain trains). Every entry is checked, after layering, for
everything that would make training crash or learn nothing (class counts, colours, weights, split
counts), so a broken registry is refused when it is read, naming the file, the dataset and the key.

Writing uses ruamel.yaml's round-trip mode, because users annotate this file by hand and a rewrite
must keep their comments and key order. A change is made under a lock on the file, re-validated
as PyYAML will read it, and written to a temporary in the same folder that is renamed over the
original (keeping its mode and owner; a symlink keeps pointing at it): the registry changes only
when the whole change succeeds, and otherwise stays byte for byte what it was.
"""

from __future__ import annotations

import io
import math
import os
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from segprep.colormaps import BUILTIN_COLORMAPS, resolve_colormap
from segprep.errors import SegprepError, describe_os_error
from segprep.fileio import atomic_write

REGISTRY_ENV = "SEGPREP_REGISTRY"
BUILTIN_REGISTRY = Path(__file__).resolve().parent / "dataset_registry.yaml"  # the top-level dataset_registry.yaml, shipped as package data
_KNOWN_KEYS = ("num_classes", "ignore_label", "colormap", "class_names", "splits", "class_weights", "data_dir")
_REQUIRED_KEYS = ("num_classes", "ignore_label", "colormap", "class_names")
_TOP_LEVEL_KEYS = ("datasets",)
# segtrain finds a split's shards with the glob `{split}-*.tfrecord` in the data folder.
_SPLIT_NAME_FORBIDDEN = set("/\\*?[]") | {os.sep}


class RegistryError(SegprepError, ValueError):
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
            # Copies, not coercions: a wrong type here is for validate_entry to name, not to crash on.
            "class_names": list(self.class_names) if isinstance(self.class_names, (list, tuple)) else self.class_names,
            "splits": dict(self.splits) if isinstance(self.splits, dict) else self.splits,
            "class_weights": self.class_weights,
        }
        if self.data_dir is not None:
            out["data_dir"] = self.data_dir
        return out


def default_registry_path() -> Path:
    """Where the user's registry lives when neither --registry nor $SEGPREP_REGISTRY names one."""
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "segprep" / "registry.yaml"


def resolve_registry_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The user's registry file: --registry, else $SEGPREP_REGISTRY, else the default location.

    The file need not exist: a missing one is an empty layer over the built-ins, created by the
    first command that records something.
    """
    if explicit:
        return Path(explicit)
    if os.environ.get(REGISTRY_ENV):
        return Path(os.environ[REGISTRY_ENV])
    return default_registry_path()


# --- checking one entry -------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    """A YAML integer; `true`/`false` are booleans, not 1 and 0, in a registry."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _as_finite_float(value: Any) -> float | None:
    """float(value) when it is a finite number (huge YAML integers overflow a float), else None."""
    if not _is_number(value):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number + 0.0 if math.isfinite(number) else None  # + 0.0 turns -0.0 into 0.0


def class_weights_problem(weights: list[Any], num_classes: int | None = None, ignore_label: int | None = None) -> str | None:
    """What is wrong with a class-weight vector for the loss, or None.

    A weight must be a finite number >= 0 (inf or NaN makes every loss NaN; a negative weight
    rewards mistakes), and at least one class that is trained on (not the ignore label) must
    weigh more than 0: otherwise every pixel's loss is 0 and nothing is learnt.
    """
    if num_classes is not None and len(weights) != num_classes:
        return f"must be null or a list of {num_classes} numbers, got {len(weights)}"
    numbers = [_as_finite_float(w) for w in weights]
    bad = [repr(w) for w, n in zip(weights, numbers) if n is None or n < 0]
    if bad:
        return f"must be finite numbers >= 0, got {', '.join(bad[:5])}"
    trained = [n for index, n in enumerate(numbers) if index != ignore_label]
    if not any(trained):
        return "are all 0 for the classes trained on, which leaves nothing to learn (the loss is 0/0)"
    return None


def _check_int(where: str, raw: dict, key: str, low: int, high: int, why: str = "") -> int:
    value = raw[key]
    if not _is_int(value) or not low <= value <= high:
        raise RegistryError(f"{where}: {key} must be an integer in {low}..{high}{why}, got {value!r}")
    return value


def _check_class_names(where: str, raw: dict, num_classes: int) -> list[str]:
    names = raw["class_names"]
    if not isinstance(names, list):
        raise RegistryError(f"{where}: class_names must be a list of non-empty strings, got {names!r}")
    bad = [n for n in names if not isinstance(n, str) or not n.strip() or not n.isprintable()]
    if bad:
        raise RegistryError(f"{where}: class_names must be a list of non-empty strings, got {bad[0]!r} (quote it)")
    if len(names) != num_classes:
        raise RegistryError(f"{where}: class_names has {len(names)} names but num_classes is {num_classes}")
    duplicates = sorted(n for n, count in Counter(names).items() if count > 1)
    if duplicates:
        raise RegistryError(f"{where}: class_names has duplicate name(s) {', '.join(map(repr, duplicates))}")
    return list(names)


def _check_colormap(where: str, raw: dict, num_classes: int) -> str | list[list[int]]:
    colormap = raw["colormap"]
    try:
        colors = resolve_colormap(colormap)
    except (ValueError, TypeError) as exc:
        known = ", ".join(BUILTIN_COLORMAPS)
        raise RegistryError(f"{where}: bad colormap ({exc}); use one of {known} or a list of [r, g, b]") from None
    if len(colors) < num_classes:
        raise RegistryError(f"{where}: colormap has {len(colors)} colours but num_classes is {num_classes}")
    return colormap if isinstance(colormap, str) else [[int(v) for v in c] for c in colormap]


def _check_splits(where: str, raw: dict) -> dict[str, int]:
    splits = raw.get("splits")
    if splits is None:
        return {}
    if not isinstance(splits, dict):
        raise RegistryError(f"{where}: splits must map split names to record counts, got {splits!r}")
    for name, count in splits.items():
        if not isinstance(name, str) or not name or set(name) & _SPLIT_NAME_FORBIDDEN or not name.isprintable():
            raise RegistryError(f"{where}: splits must map split names to record counts; bad split name {name!r}")
        if not _is_int(count) or count < 0:
            raise RegistryError(f"{where}: splits must map split names to record counts; {name}: {count!r} is not a count >= 0")
    return dict(splits)


def _check_class_weights(where: str, raw: dict, num_classes: int, ignore_label: int) -> list[float] | None:
    weights = raw.get("class_weights")
    if weights is None:
        return None
    if not isinstance(weights, list):
        raise RegistryError(f"{where}: class_weights must be null or a list of {num_classes} numbers, got {weights!r}")
    problem = class_weights_problem(weights, num_classes, ignore_label)
    if problem:
        raise RegistryError(f"{where}: class_weights {problem}")
    return [float(w) + 0.0 for w in weights]


def _check_data_dir(where: str, raw: dict) -> str | None:
    data_dir = raw.get("data_dir")
    if data_dir is not None and (not isinstance(data_dir, str) or not data_dir.strip() or "\0" in data_dir):
        raise RegistryError(f"{where}: data_dir must be a path string, got {data_dir!r}")
    return data_dir


def validate_entry(name: Any, raw: Any, source: Path | str = "registry") -> DatasetEntry:
    """Check one dataset mapping and return it typed; RegistryError names the file, dataset and key."""
    where = f"{source}: dataset {name!r}"
    if not isinstance(name, str) or not name.strip() or not name.isprintable() or name != name.strip():
        raise RegistryError(f"{where}: a dataset name must be a non-empty string without surrounding spaces (quote it)")
    if not isinstance(raw, dict):
        raise RegistryError(f"{where}: expected a mapping of {', '.join(_REQUIRED_KEYS)}, ..., got {raw!r}"[:300])
    unknown = [repr(k) for k in raw if k not in _KNOWN_KEYS]
    if unknown:
        raise RegistryError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(_KNOWN_KEYS)})")
    for key in _REQUIRED_KEYS:
        if key not in raw:
            raise RegistryError(f"{where}: missing key {key!r}")
    num_classes = _check_int(where, raw, "num_classes", 1, 256)
    ignore = _check_int(where, raw, "ignore_label", 0, 255, " (8-bit labels)")
    return DatasetEntry(
        name=name,
        num_classes=num_classes,
        ignore_label=ignore,
        colormap=_check_colormap(where, raw, num_classes),
        class_names=_check_class_names(where, raw, num_classes),
        splits=_check_splits(where, raw),
        class_weights=_check_class_weights(where, raw, num_classes, ignore),
        data_dir=_check_data_dir(where, raw),
    )


# --- reading ------------------------------------------------------------------------------------


class _DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key: Any, line: int, first_line: int) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key, self.line, self.first_line = key, line, first_line


_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _StrictLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """PyYAML's safe loader (the C one when built), refusing a key given twice in one mapping.

    Only the scalar keys written in the mapping itself are compared: keys brought in by a merge
    (`<<: *base`) may be overridden, as YAML intends. Constructed keys are cached by PyYAML, so
    the check costs one dictionary lookup per key.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _value in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=False)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:
                continue  # unhashable: PyYAML's own construction reports it
            if first is not None:
                raise _DuplicateKeyError(key, line, first)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _parse_yaml(text: str, source: Path | str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except _DuplicateKeyError as exc:
        raise RegistryError(
            f"{source}: line {exc.line}: duplicate key {exc.key!r} (first at line {exc.first_line}); "
            "YAML would silently keep only the last one"
        ) from None
    except Exception as exc:  # noqa: BLE001
        # Not only yaml.YAMLError: PyYAML's constructors raise ValueError, IndexError, OverflowError...
        # on malformed scalars such as `2020-13-45`, `0x_` or an empty `!!float`, RecursionError on deep nesting.
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise RegistryError(f"{source}: not valid YAML ({detail})") from None


def _raw_datasets(text: str, source: Path | str) -> dict[Any, Any]:
    """The `datasets:` mapping of a registry document, its structure checked (entries not yet)."""
    document = _parse_yaml(text, source)
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise RegistryError(f"{source}: expected a top-level 'datasets:' mapping, got {type(document).__name__}")
    unknown = [repr(k) for k in document if k not in _TOP_LEVEL_KEYS]
    if unknown:
        raise RegistryError(f"{source}: unknown top-level key(s) {', '.join(sorted(unknown))}; datasets go under 'datasets:'")
    datasets = document.get("datasets")
    if datasets is None:
        return {}
    if not isinstance(datasets, dict):
        raise RegistryError(f"{source}: 'datasets' must be a mapping of dataset names to entries, got {type(datasets).__name__}")
    return datasets


def _builtin_raw() -> dict[Any, Any]:
    """The built-in entries as written in the package's registry."""
    return _raw_datasets(_decode(BUILTIN_REGISTRY.read_bytes(), BUILTIN_REGISTRY), BUILTIN_REGISTRY)


def _layered(name: Any, raw: Any, base: dict[Any, Any]) -> Any:
    """A user entry over the built-in one of the same name, key by key."""
    if name in base and isinstance(raw, dict) and isinstance(base[name], dict):
        return {**base[name], **raw}
    return raw


def parse_registry(text: str, source: Path | str = "registry", *, over_builtins: bool = True) -> dict[str, DatasetEntry]:
    """Every dataset of a registry document (layered over the built-ins), validated.

    RegistryError names the source, dataset and key.
    """
    user = _raw_datasets(text, source)
    base = _builtin_raw() if over_builtins else {}
    datasets = {name: validate_entry(name, raw, BUILTIN_REGISTRY) for name, raw in base.items() if name not in user}
    datasets.update({name: validate_entry(name, _layered(name, raw, base), source) for name, raw in user.items()})
    return datasets


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
            where = "" if self.path.exists() else " (not created yet: segprep writes it when it records a dataset)"
            raise RegistryError(f"{self.path}{where}: no dataset {name!r} (known: {known})") from None


def _os_reason(exc: OSError) -> str:
    """The reason of an OS error in words, without its path (the caller names the path)."""
    return describe_os_error(OSError(exc.errno, exc.strerror))


def _decode(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RegistryError(f"{path}: cannot read registry (not UTF-8 text: byte {exc.start})") from None


def load_registry(path: Path | None = None) -> Registry:
    """The built-ins with the user's registry over them, every entry validated (a broken one is found at once).

    A user registry that does not exist yet is an empty layer.
    """
    path = Path(path or resolve_registry_path())
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = b""
    except OSError as exc:
        raise RegistryError(f"{path}: cannot read registry ({_os_reason(exc)})") from None
    return Registry(path, parse_registry(_decode(data, path), path))


# --- writing ------------------------------------------------------------------------------------


def _round_trip_yaml():  # type: ignore[no-untyped-def]
    from ruamel.yaml import YAML

    handler = YAML()
    handler.preserve_quotes = True
    handler.width = 120
    handler.indent(mapping=2, sequence=4, offset=2)
    # Write None as `null` (ruamel's default is an empty value), as the hand-written file does.
    handler.representer.add_representer(type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null"))
    return handler


_PLAIN_RESOLVER = yaml.resolver.Resolver()


def _quoted_if_needed(value: Any) -> Any:
    """A string that PyYAML would read back as something else (`yes`, `null`, `1e3`) gets quotes.

    ruamel writes YAML 1.2, where `yes` is a plain string; PyYAML reads YAML 1.1, where it is
    True. Without quotes, `segprep register x --class-names yes,no` would write a registry that
    no longer loads.
    """
    if isinstance(value, str):
        tag = _PLAIN_RESOLVER.resolve(yaml.ScalarNode, value, (True, False))
        if tag != "tag:yaml.org,2002:str":
            from ruamel.yaml.scalarstring import SingleQuotedScalarString

            return SingleQuotedScalarString(value)
    return value


def _plain(value: Any) -> Any:
    """Strings quoted where YAML 1.1 needs it, all the way down."""
    if isinstance(value, dict):
        return {_quoted_if_needed(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return _quoted_if_needed(value)


def _flow(value: Any) -> Any:
    """Short lists and split maps read best on one line, as the registry is written by hand."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(value, dict):
        mapping = CommentedMap(_plain(value))
        mapping.fa.set_flow_style()
        return mapping
    if isinstance(value, list):
        seq = CommentedSeq(_flow(v) if isinstance(v, list) else _quoted_if_needed(v) for v in value)
        seq.fa.set_flow_style()
        return seq
    return _quoted_if_needed(value)


@contextmanager
def _locked(path: Path) -> Iterator[IO[bytes] | None]:
    """The registry file open for reading under an exclusive lock (None when it does not exist yet).

    Two segprep runs that update the registry at the same time must not lose each other's
    change. The lock is on the file itself; since a write replaces the file, a waiter that wakes
    up holding the lock of a replaced file tries again on the new one.
    """
    import fcntl

    while True:
        try:
            handle = open(path, "rb")
        except FileNotFoundError:
            yield None
            return
        except OSError as exc:
            raise RegistryError(f"{path}: cannot read registry ({_os_reason(exc)})") from None
        with handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            except OSError:
                pass  # a file system without locks: go on unlocked, as before
            try:
                current = os.stat(path)
            except FileNotFoundError:
                continue
            opened = os.fstat(handle.fileno())
            if (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino):
                yield handle
                return


def _round_trip_load(handler: Any, text: str, path: Path) -> Any:
    from ruamel.yaml.error import YAMLError as RuamelError

    try:
        return handler.load(text)
    except (RuamelError, ValueError, TypeError) as exc:
        detail = " ".join(str(exc).split())
        raise RegistryError(f"{path}: cannot be rewritten keeping its comments ({detail})") from None


def _rewrite(path: Path, change: Callable[[Any], None]) -> None:
    """Apply change(datasets) to a round-trip load of the registry and replace the file atomically.

    The current file must be a valid registry, and so must the result (read back as PyYAML reads
    it) before anything is written: a failed change leaves the file byte for byte as it was.
    """
    from ruamel.yaml.comments import CommentedMap

    path = Path(path)
    target = Path(os.path.realpath(path))  # a symlinked registry: write its target, keep the link
    handler = _round_trip_yaml()
    with _locked(target) as handle:
        text = _decode(handle.read(), path) if handle is not None else ""
        parse_registry(text, path)
        document = _round_trip_load(handler, text, path) if text.strip() else None
        if document is None:
            document = CommentedMap()
        if document.get("datasets") is None:
            document["datasets"] = CommentedMap()
        change(document["datasets"])
        buffer = io.StringIO()
        handler.dump(document, buffer)
        new_text = buffer.getvalue()
        parse_registry(new_text, path)
        atomic_write(
            target,
            lambda out: out.write(new_text),
            mode="w",
            encoding="utf-8",
            make_parents=path == default_registry_path(),  # ~/.config/segprep may not exist yet
            durable=True,
        )


def _user_entry(datasets: Any, name: str, path: Path) -> Any:
    """The user's entry for a dataset, a new partial one over its built-in entry if the user has none."""
    if name in datasets:
        return datasets[name]
    if name not in _builtin_raw():
        raise RegistryError(f"{path}: no dataset {name!r}")
    from ruamel.yaml.comments import CommentedMap

    datasets[_quoted_if_needed(name)] = entry = CommentedMap()
    return entry


def record_splits(path: Path, name: str, sizes: dict[str, int], data_dir: str | None = None, *, exactly: bool = False) -> None:
    """Set the record counts of the given splits and the data folder of a dataset.

    exactly: the given splits become the dataset's only ones (a convert records what its --out
    holds, so a split of an earlier run elsewhere cannot stay listed); otherwise others are kept.
    """

    def change(datasets) -> None:  # type: ignore[no-untyped-def]
        entry = _user_entry(datasets, name, path)
        splits = {} if exactly else dict(entry.get("splits") or {})
        splits.update(sizes)
        entry["splits"] = _flow(splits)
        if data_dir is not None:
            entry["data_dir"] = _quoted_if_needed(data_dir)

    _rewrite(path, change)


def register_dataset(path: Path, entry: DatasetEntry) -> None:
    """Add a dataset, or update an existing one in place (keeping its comments and recorded splits)."""
    validate_entry(entry.name, entry.to_dict(), path)

    def change(datasets) -> None:  # type: ignore[no-untyped-def]
        from ruamel.yaml.comments import CommentedMap

        values = entry.to_dict()
        existing = datasets.get(entry.name)
        if existing is None:
            datasets[_quoted_if_needed(entry.name)] = existing = CommentedMap()
        elif not values["splits"]:
            values["splits"] = dict(existing.get("splits") or {})
        for key, value in values.items():
            # Short lists on one line; class names one per line, which round-trips without reflowing.
            existing[key] = _flow(value) if key in ("splits", "colormap", "class_weights") else _plain(value)

    _rewrite(path, change)


def set_class_weights(path: Path, name: str, weights: list[float] | None) -> None:
    """Set (or clear, with None) a dataset's class weights; validated against its class count."""

    def change(datasets) -> None:  # type: ignore[no-untyped-def]
        entry = _user_entry(datasets, name, path)
        raw = _layered(name, {**dict(entry), "class_weights": weights}, _builtin_raw())
        validate_entry(name, raw, path)
        entry["class_weights"] = _flow(weights) if weights is not None else None

    _rewrite(path, change)
