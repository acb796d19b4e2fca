"""Any list files of pairs: `IMAGE LABEL` lines, or one stem per line with image and label folders.

This is what `segprep tfrecord` reads; each list file's stem is the split name (train.txt -> train),
as DeepLab's build_voc2012_data.py does with ImageSets/Segmentation/*.txt.
"""

from __future__ import annotations

import errno
from pathlib import Path

from segprep.datasets.base import (
    DatasetLayout,
    LabelRules,
    LayoutError,
    Sample,
    ambiguous_stem,
    image_candidates,
    read_list_lines,
    read_pair_list,
)
from segprep.fileio import check_regular_file
from segprep.problems import Problem


def load_lists(
    list_files: list[Path],
    root: Path | None = None,
    image_dir: Path | None = None,
    label_dir: Path | None = None,
) -> DatasetLayout:
    """Pair lines are resolved against root (default: the list's folder); stem lines need image_dir and label_dir."""
    layout = DatasetLayout({}, LabelRules(accept_palette=True))  # index or palette PNGs, as DeepLab's converter reads them
    for list_file in list_files:
        split = list_file.stem
        if split in layout.splits:
            raise LayoutError(f"{list_file}: a second list for split {split!r}")
        try:
            check_regular_file(list_file)
        except FileNotFoundError:
            raise LayoutError(f"{list_file}: list file not found") from None
        except OSError as exc:
            raise LayoutError(f"{list_file}: list path {'is a folder, not a file' if exc.errno == errno.EISDIR else 'is ' + str(exc.strerror)}") from None
        base = root or list_file.parent
        entries, _ = read_list_lines(list_file, split)
        if entries and len(entries[0][1].split()) == 2:
            samples, problems = read_pair_list(list_file, split, lambda text: base / text)
        else:
            if image_dir is None or label_dir is None:
                raise LayoutError(f"{list_file}: lists of stems need --image-dir and --label-dir")
            entries, problems = read_list_lines(list_file, split)
            samples = []
            for number, stem in entries:
                if len(stem.split()) != 1:
                    problems.append(Problem(f"{list_file}:{number}", f"expected one stem per line, got {stem!r}", split=split))
                    continue
                candidates = image_candidates(image_dir, stem)
                if not candidates:
                    problems.append(Problem(f"{list_file}:{number}", f"unknown stem {stem!r}: no image {stem}.jpg/.png in {image_dir}", split=split))
                    continue
                if len(candidates) > 1:
                    problems.append(Problem(f"{list_file}:{number}", ambiguous_stem(stem, candidates), split=split))
                    continue
                samples.append(Sample(stem, candidates[0], label_dir / f"{stem}.png"))
        layout.splits[split] = samples
        layout.problems.extend(problems)
    return layout
