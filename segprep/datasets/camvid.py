"""CamVid in the SegNet tutorial layout: train/ trainannot/ val/ valannot/ test/ testannot/ and {split}.txt.

The list files hold `IMAGE LABEL` pairs with absolute paths from the machine that made them
(/SegNet/CamVid/train/x.png); they are resolved by their last two components against the root,
as every user of this layout has to. Labels are 0..10 with 11 = void, stored as 255.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

from segprep.datasets.adapter import ConvertContext, ConvertPlan
from segprep.datasets.base import (
    DatasetLayout,
    LabelRules,
    LayoutError,
    Sample,
    read_pair_list,
    union_split,
)

CAMVID_SPLITS = ("train", "val", "test")
CAMVID_RULES = LabelRules(void_values=(11,))  # SegNet's void class 11 is stored as the ignore label


def _tail(path_text: str) -> Path:
    """The last two components (folder/file) of a path written on any OS."""
    parts = PureWindowsPath(path_text).parts if "\\" in path_text else PurePosixPath(path_text).parts
    return Path(*parts[-2:])


def load_camvid(root: Path, splits: list[str] | None = None) -> DatasetLayout:
    """Read {split}.txt where present, else pair {split}/ with {split}annot/ by file name.

    `trainval` may be asked for: it is train followed by val, as a list (nothing is copied).
    """
    wanted = list(splits or CAMVID_SPLITS)
    needed = [s for s in wanted if s != "trainval"]
    if "trainval" in wanted:
        needed += [s for s in ("train", "val") if s not in needed]
    layout = DatasetLayout({}, CAMVID_RULES)
    for split in needed:
        list_file = root / f"{split}.txt"
        samples: list[Sample] = []
        if os.path.lexists(list_file):  # whatever it is: a FIFO or folder there is refused by name, not bypassed
            samples, problems = read_pair_list(list_file, split, lambda text: root / _tail(text))
            layout.problems.extend(problems)
        elif (root / split).is_dir():
            for image in sorted((root / split).glob("*.png")):
                samples.append(Sample(image.stem, image, root / f"{split}annot" / image.name))
        else:
            raise LayoutError(f"{root}: no {split}.txt and no {split}/ folder (expected the SegNet CamVid layout)")
        layout.splits[split] = samples
    if "trainval" in wanted:
        union_split(layout, "trainval", ["train", "val"])
    for split in list(layout.splits):
        if split not in wanted:
            del layout.splits[split]
    return layout


def plan(context: ConvertContext) -> ConvertPlan:
    return ConvertPlan(load_camvid(context.root, context.splits), context.registry.get("camvid"))
