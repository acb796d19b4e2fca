"""The one interface every dataset layout implements, and the one place its label policy is built.

`segprep convert NAME` looks NAME up in segprep.datasets.catalog, hands the adapter a
ConvertContext (root, splits asked for, the values of the options it declared, the registry)
and gets back a ConvertPlan: the samples of each split, the registry entry they are written
under, and whether that entry is registered once every split is written. The writer (local or
Beam) takes it from there; adapters never decode or write anything.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segprep.datasets.base import DatasetLayout, LabelRules
from segprep.errors import SegprepError
from segprep.progress import ProgressFactory, silent

if TYPE_CHECKING:
    from segprep.ops.labels import LabelPolicy
    from segprep.registry import DatasetEntry, Registry


class OptionError(SegprepError, ValueError):
    """An option of the layout is missing or wrong; the CLI shows it as a usage error naming the option."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


class PrepareError(SegprepError, ValueError):
    """The adapter's preparation step found bad files (one line each); nothing was converted."""

    def __init__(self, lines: list[str], message: str) -> None:
        super().__init__(message)
        self.lines = lines


@dataclass(frozen=True)
class LayoutOption:
    """An option some layouts take, declared once: the CLI makes a click option of it.

    kind: "text", "int", "byte" (0..255), "file" (an existing file), "dir" (an existing folder) or
    "pairs" (repeatable text).
    """

    flag: str
    help: str
    kind: str = "text"
    default: Any = None

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


@dataclass
class ConvertContext:
    """What an adapter may read: the dataset folder, the splits asked for, its options and the registry."""

    root: Path
    splits: list[str] | None  # None: every split the layout has
    options: Mapping[str, Any]  # by LayoutOption.dest, only the adapter's own
    registry: Registry
    workers: int = 1
    progress: ProgressFactory = silent  # for a prepare step's long work


@dataclass
class ConvertPlan:
    """A layout ready to write: its samples, the entry they are written under, and the inputs to protect."""

    layout: DatasetLayout
    entry: DatasetEntry
    register: bool = False  # add or update the entry in the user's registry once every split is written
    inputs: list[Path] = field(default_factory=list)  # files besides the root that --out may not overlap


@dataclass(frozen=True)
class Adapter:
    """A dataset layout `segprep convert` knows: its name, its options, and the module that plans it.

    The module is imported only when the layout is converted, so that `segprep --help` stays fast;
    it defines `plan(context: ConvertContext) -> ConvertPlan`.
    """

    name: str
    summary: str
    splits: str  # the splits the layout has, for --help
    module: str
    options: tuple[str, ...] = ()  # LayoutOption dests it reads

    def plan(self, context: ConvertContext) -> ConvertPlan:
        return importlib.import_module(self.module).plan(context)  # type: ignore[no-any-return]


def label_policy(entry: DatasetEntry, rules: LabelRules) -> LabelPolicy:
    """What a written label may hold: class count, ignore label and colours from the registry entry
    (the source of truth), conversions from the adapter's rules."""
    from segprep.colormaps import resolve_colormap
    from segprep.ops.labels import LabelPolicy

    colormap = None
    if rules.colour_coded:
        if rules.colors is not None:  # a class mapping: the labels are drawn in the source dataset's colours
            colormap = rules.colors
        else:
            rows = resolve_colormap(entry.colormap)[: entry.num_classes]
            colormap = tuple((int(r), int(g), int(b)) for r, g, b in rows)
    return LabelPolicy(
        num_classes=entry.num_classes,
        ignore_label=entry.ignore_label,
        remap=rules.remap + tuple((value, entry.ignore_label) for value in rules.void_values),
        accept_palette=rules.accept_palette,
        colormap=colormap,
        extra_colors=tuple((color, entry.ignore_label) for color in rules.void_colors),
        known_values=rules.known_values,
    )


def apply_to_plan(plan: ConvertPlan, registry: Registry, options: dict[str, Any], *, classes_taken: bool = False) -> ConvertPlan:
    """The plan with the mapping the options ask for (classes, merge, drop, name), or the plan unchanged.

    The layout's own label rules are composed with the mapping into one remap, so the writer applies
    both in one pass; colour-coded labels keep the source's colours. --name names the new dataset,
    unless the layout read it as the source's name (folder, labelme): then the default name is used.
    classes_taken: the layout made its own subset of --classes (Cityscapes) and only --merge/--drop are ours.
    """
    from segprep.colormaps import resolve_colormap
    from segprep.ops.class_mapping import ClassMappingError, default_name, mapped_entry, mapping_of_entry, parse_merge, split_names

    classes = [] if classes_taken else split_names(options.get("classes"))
    merges = parse_merge(list(options.get("merge") or ()))
    drops = split_names(options.get("drop"))
    if classes_taken and options.get("classes") and (merges or drops):
        raise ClassMappingError("--merge" if merges else "--drop", "--classes and --merge/--drop exclude each other")
    if not (classes or merges or drops):
        return plan
    source = plan.entry
    mapping = mapping_of_entry(source, classes, merges, drops)
    given = options.get("name")
    name = given if given and given != source.name else default_name(source.name, classes, mapping)
    entry = mapped_entry(mapping, name)
    register = True
    if name in registry.datasets:
        known = registry.get(name)
        if (known.num_classes, list(known.class_names), known.ignore_label) != (entry.num_classes, entry.class_names, entry.ignore_label):
            raise ClassMappingError("--name", f"--name {name}: the registry's {name!r} has other classes ({', '.join(known.class_names)}); choose another --name")
        entry, register = known, False  # keep its colours and class weights
    rules = plan.layout.rules
    first = list(range(256))
    for value in rules.void_values:
        first[value] = source.ignore_label
    for value, target in rules.remap:
        first[value] = target
    second = mapping.table()
    composed = tuple((v, second[first[v]]) for v in range(256) if second[first[v]] != v)
    colors = None
    if rules.colour_coded:
        colors = rules.colors or tuple((int(r), int(g), int(b)) for r, g, b in resolve_colormap(source.colormap)[: source.num_classes])
    plan.layout.rules = replace(rules, remap=composed, void_values=(), colors=colors)
    plan.layout.class_mapping = mapping.record()
    plan.entry, plan.register = entry, register
    return plan
