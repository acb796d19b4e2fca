"""Class subsets, merges and drops of any dataset: one mapping from its class ids to a new dataset's.

`segprep convert LAYOUT --classes a,b | --merge NEW=a,b ... | --drop c` and `segtrain score --merge`
share this module. A mapping is a 256-entry table over the source dataset's stored values:

- `--merge NEW=a,b,...` (repeatable): the groups become classes 0..g-1 in the order given; every
  class named in no group keeps its own name (and colour) after them, in its original order. A
  group's colour is its first member's.
- `--classes a,b`: the Cityscapes convention for every layout: class 0 `background` (black) holds
  every class not named, the named classes are 1..k in the order given, with their own colours.
- `--drop c` (repeatable or comma-separated): the class's pixels become the ignore label.

The ignore label stays the ignore label; any other value outside the source classes stays itself,
so that the label check still refuses it. Names are matched as written, or with `_` for a space
(`traffic_light`). Class weights of the new dataset are cleared: `segprep inspect --class-weights`
computes them from the written split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from segprep.errors import SegprepError

if TYPE_CHECKING:
    from segprep.registry import DatasetEntry


class ClassMappingError(SegprepError, ValueError):
    """A --classes/--merge/--drop that cannot be applied; `option` is the flag to name in a usage error."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


@dataclass(frozen=True)
class ClassMapping:
    """Source class id -> new class id (or the ignore label), with the new classes' names and colours."""

    source: str  # the dataset mapped from
    ignore_label: int
    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    ids: tuple[int, ...]  # new id (or ignore_label) of each source class, in source order
    groups: dict[str, list[str]]  # new class -> the source classes it holds
    dropped: tuple[str, ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def table(self) -> list[int]:
        """256 entries over stored values: a source class -> its new id, any other value -> itself."""
        return [self.ids[v] if v < len(self.ids) else v for v in range(256)]

    def record(self) -> dict[str, Any]:
        """What each split manifest records (parameters.class_mapping)."""
        return {"from": self.source, "groups": {k: list(v) for k, v in self.groups.items()}, "dropped": list(self.dropped), "ids": list(self.ids)}


def parse_merge(specs: Sequence[str], option: str = "--merge") -> list[tuple[str, list[str]]]:
    """`NEW=a,b,...` specs -> [(NEW, [a, b, ...])]: names stripped, none empty."""
    groups: list[tuple[str, list[str]]] = []
    for spec in specs:
        new, sep, members = spec.partition("=")
        names = [m.strip() for m in members.split(",") if m.strip()]
        if not sep or not new.strip() or not names:
            raise ClassMappingError(option, f"{option} {spec!r}: expected NEW=CLASS,CLASS,... (e.g. vehicle=car,truck,bus)")
        groups.append((new.strip(), names))
    seen = [new for new, _ in groups]
    twice = sorted({n for n in seen if seen.count(n) > 1})
    if twice:
        raise ClassMappingError(option, f"{option}: new class {twice[0]!r} is given twice")
    return groups


def split_names(values: Sequence[str] | str | None) -> list[str]:
    """`a,b` or repeated values -> [a, b]."""
    if values is None:
        return []
    items = [values] if isinstance(values, str) else list(values)
    return [n.strip() for item in items for n in item.split(",") if n.strip()]


def _resolver(class_names: Sequence[str], option: str, dataset: str):  # type: ignore[no-untyped-def]
    def resolve(raw: str) -> int:
        for candidate in (raw, raw.replace("_", " ")):
            if candidate in class_names:
                return list(class_names).index(candidate)
        raise ClassMappingError(option, f"{option}: unknown class {raw!r} of {dataset} (its classes: {', '.join(class_names)})")

    return resolve


def build_mapping(
    dataset: str,
    class_names: Sequence[str],
    colors: Sequence[Sequence[int]],
    ignore_label: int,
    *,
    classes: Sequence[str] = (),
    merges: Sequence[tuple[str, list[str]]] = (),
    drops: Sequence[str] = (),
) -> ClassMapping:
    """The mapping of a dataset's classes that --classes, --merge and --drop ask for (see module docstring)."""
    if classes and merges:
        raise ClassMappingError("--merge", f"--classes and --merge exclude each other (--classes {','.join(classes)} makes a background class of the others)")
    if not (classes or merges or drops):
        raise ClassMappingError("--merge", "no --classes, --merge or --drop given")
    k = len(class_names)
    owner: dict[int, str] = {}  # source id -> the option or group that names it

    def claim(raw: str, option: str, what: str) -> int:
        index = _resolver(class_names, option, dataset)(raw)
        if index in owner:
            raise ClassMappingError(option, f"{option}: class {class_names[index]!r} is in {owner[index]} and {what}")
        owner[index] = what
        return index

    dropped = [claim(raw, "--drop", "--drop") for raw in drops]
    ids = [ignore_label] * k
    names: list[str] = []
    out_colors: list[tuple[int, int, int]] = []
    groups: dict[str, list[str]] = {}

    def add(name: str, members: list[int], color: Sequence[int]) -> None:
        if name in names:
            raise ClassMappingError("--merge", f"new class {name!r} would be named twice (a group named like a class kept on its own)")
        for m in members:
            ids[m] = len(names)
        names.append(name)
        out_colors.append((int(color[0]), int(color[1]), int(color[2])))
        groups[name] = [class_names[m] for m in members]

    if classes:
        chosen = [claim(raw, "--classes", "--classes") for raw in classes]
        rest = [i for i in range(k) if i not in owner]
        if not rest:
            raise ClassMappingError("--classes", f"--classes names every class of {dataset}: nothing would be background")
        add("background", rest, (0, 0, 0))
        for i in chosen:
            add(class_names[i], [i], colors[i])
    else:
        for new, members in merges:
            add(new, [claim(raw, "--merge", f"--merge {new}") for raw in members], colors[_resolver(class_names, "--merge", dataset)(members[0])])
        for i in range(k):
            if i not in owner:
                add(class_names[i], [i], colors[i])
    if not names:
        raise ClassMappingError("--drop", f"--drop drops every class of {dataset}")
    if ignore_label < len(names):
        raise ClassMappingError("--merge", f"{dataset}'s ignore label {ignore_label} is one of its classes: cannot map it")
    return ClassMapping(dataset, ignore_label, tuple(names), tuple(out_colors), tuple(ids), groups, tuple(class_names[i] for i in dropped))


def mapping_of_entry(entry: DatasetEntry, classes: Sequence[str] = (), merges: Sequence[tuple[str, list[str]]] = (), drops: Sequence[str] = ()) -> ClassMapping:
    """build_mapping over a registry entry's names and colours."""
    from segprep.colormaps import resolve_colormap

    rows = resolve_colormap(entry.colormap)[: entry.num_classes]
    names = list(entry.class_names) if entry.class_names else [str(i) for i in range(entry.num_classes)]
    return build_mapping(entry.name, names, [tuple(int(v) for v in r) for r in rows], entry.ignore_label, classes=classes, merges=merges, drops=drops)


def default_name(source: str, classes: Sequence[str], mapping: ClassMapping) -> str:
    """`<source>_<classes>` for --classes (as cityscapes_car), else `<source>_merged`."""
    if classes:
        return source + "_" + "_".join(n.replace(" ", "_") for n in mapping.names[1:])
    return f"{source}_merged"


def mapped_entry(mapping: ClassMapping, name: str) -> DatasetEntry:
    """The new dataset's registry entry: its names and colours; class weights cleared (recompute them
    with `segprep inspect --class-weights`)."""
    from segprep.registry import DatasetEntry

    return DatasetEntry(name, mapping.num_classes, mapping.ignore_label, [list(c) for c in mapping.colors], list(mapping.names))


def merge_confusion(confusion: Any, ids: Sequence[int], num_classes: int, rows: Sequence[int] | None = None) -> Any:
    """A K x K confusion matrix (rows ground truth, columns prediction) summed into the merged classes:
    the rows and the columns of each group's members are added. ids: the new class of each source
    class (one outside 0..num_classes-1, a dropped class, adds nowhere); rows: the same for the rows
    where they differ (ground truth already merged: the identity, its rows past num_classes empty)."""
    import numpy as np

    confusion = np.asarray(confusion, dtype=np.int64)

    def members(targets: Sequence[int]) -> Any:
        matrix = np.zeros((confusion.shape[0], num_classes), dtype=np.int64)
        for source, target in enumerate(targets):
            if 0 <= target < num_classes:
                matrix[source, target] = 1
        return matrix

    row_members = members(ids if rows is None else rows)
    if rows is not None and confusion[[r for r, t in enumerate(rows) if not 0 <= t < num_classes]].any():
        bad = [r for r, t in enumerate(rows) if not 0 <= t < num_classes and confusion[r].any()]
        raise ValueError(f"ground truth values {bad[:8]} are outside the {num_classes} merged classes")
    return row_members.T @ confusion @ members(ids)
