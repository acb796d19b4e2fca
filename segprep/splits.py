"""Seeded random splits of a list of names, reproducible across machines and Python versions."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def parse_fractions(specs: list[str] | tuple[str, ...]) -> dict[str, float]:
    """['train=0.8', 'val=0.2'] -> {'train': 0.8, 'val': 0.2}; fractions must be positive and sum to at most 1."""
    fractions: dict[str, float] = {}
    for spec in specs:
        name, sep, value = spec.partition("=")
        try:
            fraction = float(value)
        except ValueError:
            fraction = -1.0
        if not sep or not name or not 0 < fraction <= 1:
            raise ValueError(f"bad split {spec!r}: expected NAME=FRACTION with 0 < FRACTION <= 1")
        if name in fractions:
            raise ValueError(f"split {name!r} given twice")
        fractions[name] = fraction
    if sum(fractions.values()) > 1 + 1e-9:
        raise ValueError(f"split fractions add up to {sum(fractions.values()):g} > 1")
    return fractions


def seeded_split(names: list[str], fractions: dict[str, float], seed: int = 0) -> dict[str, list[str]]:
    """Shuffle the sorted names with numpy's PCG64(seed) and cut them in the order the splits are given.

    Counts are rounded; when the fractions sum to 1 the last split takes the remainder so every
    name is placed. Each split's list is returned sorted, so the lists are easy to diff.
    """
    ordered = sorted(names)
    permutation = np.random.default_rng(seed).permutation(len(ordered))
    shuffled = [ordered[i] for i in permutation]
    total = len(shuffled)
    result: dict[str, list[str]] = {}
    start = 0
    items = list(fractions.items())
    for position, (split, fraction) in enumerate(items):
        last = position == len(items) - 1
        count = total - start if last and abs(sum(fractions.values()) - 1) < 1e-9 else int(round(fraction * total))
        count = max(0, min(count, total - start))
        result[split] = sorted(shuffled[start : start + count])
        start += count
    return result


def write_list_files(out_dir: Path, lists: dict[str, list[str]]) -> list[Path]:
    """Write {split}.txt for each split, plus trainval.txt (train then val) when both exist; atomic per file."""
    from segprep.fileio import atomic_write_text

    out_dir.mkdir(parents=True, exist_ok=True)
    lists = dict(lists)
    if "train" in lists and "val" in lists and "trainval" not in lists:
        lists["trainval"] = lists["train"] + lists["val"]
    written = []
    for split, lines in lists.items():
        target = out_dir / f"{split}.txt"
        atomic_write_text(target, "".join(f"{line}\n" for line in lines))
        written.append(target)
    return written


def seeded_pick(names: list[str], count: int, seed: int = 0) -> list[str]:
    """`count` of the names, chosen by numpy's PCG64(seed) shuffle of the sorted names; returned sorted."""
    ordered = sorted(names)
    permutation = np.random.default_rng(seed).permutation(len(ordered))
    return sorted(ordered[i] for i in permutation[:count])
