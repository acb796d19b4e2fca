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
from segprep.registry import DatasetEntry, record_splits, register_dataset
from segprep.manifest import find_manifests, journal_path, manifest_path, staged_shard_name
from segprep.writer import SplitResult, WriterOptions, foreign_shards, owned_shard_files, remove_stale_temporaries, write_split


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


def other_splits(out_dir: Path, splits: list[str]) -> list[str]:
    """Splits that an earlier run finished in out_dir (a sound manifest) and this run does not write."""
    if not out_dir.is_dir():
        return []
    return sorted(split for split in find_manifests(out_dir) if split not in splits)


def prepare_output(out_dir: Path, splits: list[str], prune: bool = False) -> list[str]:
    """Under the output lock: remove what killed runs left, refuse shard-named files segprep did not
    write, and refuse splits of an earlier run that this run would leave behind (unless prune).

    A convert owns its --out as a whole: a split it does not write may no longer match the dataset
    (other split fractions put its images in train too), so it is never kept silently. Returns the
    splits to remove once every split of this run is written (prune).
    """
    stale = other_splits(out_dir, splits)
    if stale and not prune:
        raise SegprepError(
            f"{out_dir}: holds split(s) {', '.join(stale)} of an earlier run that this run does not write "
            "and that may no longer match the dataset: add --prune to remove them, or name them in --splits "
            "to write them again (a split whose inputs did not change is kept as it is)"
        )
    remove_stale_temporaries(out_dir)
    foreign = [path for split in splits for path in foreign_shards(out_dir, split)]
    if foreign:
        shown = ", ".join(p.name for p in foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise SegprepError(
            f"{out_dir}: holds {len(foreign)} shard file(s) that segprep did not write ({shown}); "
            "move them away or choose another --out"
        )
    return stale


def prune_splits(out_dir: Path, splits: list[str]) -> None:
    """Remove the files segprep wrote for these splits: the manifest first (from then on the split
    is unfinished), then the shards it lists and any journal or staged shard of an unfinished run."""
    for split in splits:
        owned = owned_shard_files(out_dir, split)
        manifest_path(out_dir, split).unlink(missing_ok=True)
        for name in owned:
            (out_dir / name).unlink(missing_ok=True)
        for path in out_dir.glob(f"{staged_shard_name('')}{split}-*"):
            path.unlink(missing_ok=True)
        journal_path(out_dir, split).unlink(missing_ok=True)


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
        stale = prepare_output(out_dir, list(layout.splits), options.prune)
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
                        class_mapping=layout.class_mapping,
                    )
                )
        if all(r.status != "failed" for r in results):
            prune_splits(out_dir, stale)
    record_results(results, entry, str(options.out_dir.resolve()), registry_path, register)
    return results


def record_results(results: list[SplitResult], entry: DatasetEntry, data_dir: str, registry_path: Path | None, register: bool) -> None:
    """Split sizes (and, with register, the entry itself) into the registry, only when no split failed.

    The entry's splits become exactly the ones written (with data_dir, the folder that holds them):
    a split recorded by an earlier run, in this --out or another, is not this data's.
    """
    if registry_path is None or not results or any(r.status == "failed" for r in results):
        return
    sizes = {r.split: r.records for r in results}
    if register:
        # One write that adds or updates the entry with its split sizes.
        register_dataset(registry_path, dataclasses.replace(entry, splits=sizes, data_dir=data_dir))
    else:
        record_splits(registry_path, entry.name, sizes, data_dir=data_dir, exactly=True)
