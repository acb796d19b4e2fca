"""Write every split of a dataset layout and record what was written in the registry."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from segprep.datasets.base import DatasetLayout
from segprep.parallel import OrderedPool
from segprep.registry import DatasetEntry, record_splits
from segprep.writer import SplitResult, WriterOptions, write_split


class ProgressSink(Protocol):
    """Where long work reports progress (a rich bar in the CLI, nothing in tests)."""

    def task(self, description: str, total: int) -> Callable[[int], None]: ...


class NoProgress:
    def task(self, description: str, total: int) -> Callable[[int], None]:
        return lambda n: None


def entry_fingerprint_fields(entry: DatasetEntry) -> dict[str, object]:
    """The parts of a registry entry that change what is written (not splits, which follow from it)."""
    return {
        "num_classes": entry.num_classes,
        "ignore_label": entry.ignore_label,
        "colormap": entry.colormap,
        "class_names": entry.class_names,
    }


def write_layout(
    layout: DatasetLayout,
    entry: DatasetEntry,
    options: WriterOptions,
    workers: int,
    progress: ProgressSink | None = None,
    registry_path: Path | None = None,
) -> list[SplitResult]:
    """Write each split with one shared worker pool; then record the sizes of the splits written.

    The label rules come from the adapter, with class count and ignore label from the registry,
    which is the source of truth for both.
    """
    policy = dataclasses.replace(layout.policy, num_classes=entry.num_classes, ignore_label=entry.ignore_label)
    progress = progress or NoProgress()
    results: list[SplitResult] = []
    with OrderedPool(workers) as pool:
        for split, samples in layout.splits.items():
            advance = progress.task(f"{entry.name} {split}", len(samples))
            results.append(
                write_split(
                    split,
                    samples,
                    policy,
                    options,
                    pool,
                    dataset=entry.name,
                    registry_entry=entry_fingerprint_fields(entry),
                    list_problems=layout.problems_for(split),
                    advance=advance,
                )
            )
    sizes = {r.split: r.records for r in results if r.status != "failed"}
    if registry_path is not None and sizes:
        record_splits(registry_path, entry.name, sizes, data_dir=str(options.out_dir.resolve()))
    return results
