"""Write every split of a dataset layout and record what was written in the registry."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from segprep.datasets.adapter import label_policy
from segprep.datasets.base import DatasetLayout
from segprep.errors import OutputLocationError, SegprepError
from segprep.outlock import exclusive_output
from segprep.parallel import OrderedPool
from segprep.paths import check_output_location
from segprep.progress import NoProgress, ProgressSink
from segprep.registry import DatasetEntry, load_registry, record_splits, register_dataset
from segprep.writer import SplitResult, WriterOptions, foreign_shards, remove_stale_temporaries, write_split


def entry_fingerprint_fields(entry: DatasetEntry) -> dict[str, object]:
    """The parts of a registry entry that change what is written (not splits, which follow from it)."""
    return {
        "num_classes": entry.num_classes,
        "ignore_label": entry.ignore_label,
        "colormap": entry.colormap,
        "class_names": entry.class_names,
    }


def check_output_folder(out_dir: Path, inputs: Sequence[Path], layout: DatasetLayout) -> None:
    """Refuse an --out that is, is inside or contains an input folder or file, or holds any sample file."""
    check_output_location(out_dir, inputs, "--out")
    target = Path(os.path.realpath(os.path.abspath(out_dir)))
    folders = {sample_path.parent for samples in layout.splits.values() for s in samples for sample_path in (s.image, s.label)}
    for folder in folders:
        resolved = Path(os.path.realpath(folder))
        if target == resolved or target in resolved.parents:
            raise OutputLocationError(f"{out_dir}: --out holds input files (in {folder}); choose a folder outside the inputs")


def prepare_output(out_dir: Path, splits: list[str]) -> None:
    """Under the output lock: remove what killed runs left, and refuse shard-named files segprep did not write."""
    remove_stale_temporaries(out_dir)
    foreign = [path for split in splits for path in foreign_shards(out_dir, split)]
    if foreign:
        shown = ", ".join(p.name for p in foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise SegprepError(
            f"{out_dir}: holds {len(foreign)} shard file(s) that segprep did not write ({shown}); "
            "move them away or choose another --out"
        )


def write_layout(
    layout: DatasetLayout,
    entry: DatasetEntry,
    options: WriterOptions,
    workers: int,
    progress: ProgressSink | None = None,
    registry_path: Path | None = None,
    *,
    inputs: Sequence[Path] = (),
    register: bool = False,
) -> list[SplitResult]:
    """Write each split with one shared worker pool; on full success, record what was written in the registry.

    The label rules come from the adapter, with class count and ignore label from the registry,
    which is the source of truth for both. Before any work: --out may not overlap the inputs, it
    is locked against a second writer, temporaries of killed runs are removed, and shard-named
    files segprep did not write stop the run. The registry changes only when every split was
    written (register=True adds or updates the entry itself in the same write).
    """
    check_output_folder(options.out_dir, inputs, layout)
    policy = label_policy(entry, layout.rules)
    progress = progress or NoProgress()
    results: list[SplitResult] = []
    with exclusive_output(options.out_dir) as out_dir:
        prepare_output(out_dir, list(layout.splits))
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
    record_results(results, entry, str(options.out_dir.resolve()), registry_path, register)
    return results


def record_results(results: list[SplitResult], entry: DatasetEntry, data_dir: str, registry_path: Path | None, register: bool) -> None:
    """Split sizes (and, with register, the entry itself) into the registry, only when no split failed."""
    if registry_path is None or not results or any(r.status == "failed" for r in results):
        return
    sizes = {r.split: r.records for r in results}
    if register:
        # One write that adds or updates the entry with its split sizes (others recorded earlier are kept).
        current = load_registry(registry_path).datasets.get(entry.name)
        known = {**(current.splits if current else {}), **entry.splits, **sizes}
        register_dataset(registry_path, dataclasses.replace(entry, splits=known, data_dir=data_dir))
    else:
        record_splits(registry_path, entry.name, sizes, data_dir=data_dir)
