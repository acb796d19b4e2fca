"""Seeded random splits of a list of names, reproducible across machines and Python versions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segprep.errors import SegprepError


class SplitSpecError(SegprepError, ValueError):
    """A bad NAME=FRACTION split, a split given twice, fractions over 1, or a name unfit for a list file."""


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
            raise SplitSpecError(f"bad split {spec!r}: expected NAME=FRACTION with 0 < FRACTION <= 1")
        check_split_name(name)
        if name in fractions:
            raise SplitSpecError(f"split {name!r} given twice")
        fractions[name] = fraction
    if sum(fractions.values()) > 1 + 1e-9:
        raise SplitSpecError(f"split fractions add up to {sum(fractions.values()):g} > 1")
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


def unplaced_note(unplaced: int, total: int, fractions: dict[str, float]) -> str:
    """The note printed when the fractions leave names out of every split (never silently)."""
    given = " + ".join(f"{name}={value:g}" for name, value in fractions.items())
    return f"{unplaced} of {total} samples are in no split: the fractions add up to {sum(fractions.values()):g} ({given}), not 1"


def check_split_name(name: str) -> None:
    """A split name becomes a file name ({name}.txt): no folders, no hidden files, no spaces."""
    if not name or name.startswith(".") or any(ch in name for ch in "/\\\0") or any(ch.isspace() for ch in name):
        raise SplitSpecError(f"bad split name {name!r}: it names the list file {name}.txt, so no '/', '\\', spaces or leading '.'")


def with_trainval(lists: dict[str, list[str]]) -> dict[str, list[str]]:
    """The lists plus trainval (train then val) when both exist and trainval was not given."""
    lists = dict(lists)
    if "train" in lists and "val" in lists and "trainval" not in lists:
        lists["trainval"] = lists["train"] + lists["val"]
    return lists


def list_file_bytes(out_dir: Path, lists: dict[str, list[str]]) -> dict[Path, bytes]:
    """{out_dir/split.txt: its bytes} for every split (trainval included, see with_trainval)."""
    return {out_dir / f"{split}.txt": "".join(f"{line}\n" for line in lines).encode("utf-8") for split, lines in with_trainval(lists).items()}


def write_owned_list_files(out_dir: Path, lists: dict[str, list[str]]) -> list[Path]:
    """Write the list files as `segprep lists` does: all or none, never replacing a user's list.

    A list file already in out_dir is replaced only when segprep lists wrote it (recorded with its
    sha256 in out_dir/.segprep-lists.json) or holds exactly the new lines; otherwise
    OutputLocationError, before anything is written. Temporaries of killed runs are removed.
    """
    from segprep.safewrite import ANY_TEMP_PATTERN, OutputLedger, make_folder, remove_stale_temporaries

    files = list_file_bytes(out_dir, lists)
    owned = OutputLedger(out_dir, LISTS_SIDECAR, "segprep lists")
    owned.refuse_foreign(files, "move it away, or choose another --out")
    make_folder(out_dir)
    names = {target.name for target in files} | {LISTS_SIDECAR}
    remove_stale_temporaries(out_dir, ANY_TEMP_PATTERN, accept=lambda _path, match: match["name"] in names)
    owned.replace(files)
    return list(files)


LISTS_SIDECAR = ".segprep-lists.json"


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
