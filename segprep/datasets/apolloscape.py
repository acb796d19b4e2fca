"""ApolloScape scene parsing: ROAD/ColorImage/RECORD/CAMERA/*.jpg with ROAD/Label/RECORD/CAMERA/*_bin.png.

--root holds the road folders as the archives unpack (road01_ins/, road02_seg/, ...; or is one of
them). A frame `170908_061502408_Camera_5.jpg` has the label `170908_061502408_Camera_5_bin.png` in
the same RECORD/CAMERA folder under Label/; its sample name is ROAD/RECORD/STEM
(`road01_ins/Record001/170908_061502408_Camera_5`). The labels hold ApolloScape's label ids, stored
as trainIds by the dataset's own table (segprep.ops.apolloscape_labels): 22 classes, each `*_group`
id its class, others/rover/bridge/tunnel/overpass/unlabeled the ignore label. A value that is no id
of the table is refused, named with its pixel count, never taken for a class.

Splits: ApolloScape's official lists (image_lists.tar.gz: ROAD_{train,val,test}.lst, one
`IMAGE<TAB>LABEL` line per frame, paths relative to the root) when they lie in --root or
--root/public_image_lists/ and --split is not given; frames of roads that no list names are left
out, with a note. Otherwise a seeded split BY RECORD (--split NAME=FRACTION of the records,
default train=0.9, val=0.1, a split that rounds to none getting one record; --seed): a record is
one drive, its frames a metre apart and nearly identical, so a split by frame would put copies of
val frames in train. trainval is train + val.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path, PurePath

from segprep.datasets.adapter import ConvertContext, ConvertPlan, OptionError
from segprep.datasets.base import (
    IMAGE_EXTENSIONS,
    DatasetLayout,
    LabelRules,
    LayoutError,
    Sample,
    ambiguous_stem,
    read_list_lines,
    union_split,
)
from segprep.ops.apolloscape_labels import IGNORE_TRAIN_ID, LABEL_IDS, LABELS
from segprep.problems import Problem
from segprep.splits import SplitSpecError, parse_fractions, seeded_pick, seeded_split

APOLLO_RULES = LabelRules(
    remap=tuple((label.id, label.train_id) for label in LABELS if label.train_id != IGNORE_TRAIN_ID),
    void_values=tuple(label.id for label in LABELS if label.train_id == IGNORE_TRAIN_ID and label.id != IGNORE_TRAIN_ID),
    known_values=LABEL_IDS,
)
"""ids -> trainIds (ids that are not trained on -> the registry's ignore label); other values refused."""

IMAGES, LABELS_DIR, LABEL_SUFFIX = "ColorImage", "Label", "_bin.png"
LIST_FOLDERS = (".", "public_image_lists")
OFFICIAL_SPLITS = ("train", "val", "test")
_LIST = re.compile(r"(?P<road>.+)_(?P<split>train|val|test)\.lst")
DEFAULT_FRACTIONS = ("train=0.9", "val=0.1")


def find_roads(root: Path) -> list[Path]:
    """The road folders (ROAD/ColorImage/) under root, or root itself when it is one."""
    if (root / IMAGES).is_dir():
        return [root]
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / IMAGES).is_dir())


def sample_name(image: Path) -> tuple[str, str]:
    """(sample name ROAD/RECORD/STEM, record ROAD/RECORD) of an image path ROAD/ColorImage/RECORD/.../STEM.jpg.

    A path without a ColorImage folder is named by itself (its own record).
    """
    parts = image.parts
    if IMAGES in parts[:-1]:
        i = len(parts) - 2 - parts[:-1][::-1].index(IMAGES)  # the last ColorImage folder
        road = parts[i - 1] if i >= 1 else ""
        record = parts[i + 1] if i + 2 < len(parts) else ""
        key = "/".join(p for p in (road, record) if p)
        return f"{key}/{image.stem}" if key else image.stem, key
    name = PurePath(*parts).with_suffix("").as_posix()
    return name, name


def label_for(image: Path) -> Path | None:
    """ROAD/Label/.../STEM_bin.png for ROAD/ColorImage/.../STEM.jpg; None for a path without ColorImage/."""
    parts = list(image.parts)
    if IMAGES not in parts[:-1]:
        return None
    i = len(parts) - 2 - parts[:-1][::-1].index(IMAGES)
    parts[i] = LABELS_DIR
    return Path(*parts[:-1]) / f"{image.stem}{LABEL_SUFFIX}"


def scan_road(road: Path) -> tuple[list[Sample], dict[str, str], list[Problem]]:
    """Every frame of a road paired with its label: samples, {sample name: record}, unpaired files."""
    images_root, labels_root = road / IMAGES, road / LABELS_DIR
    if not labels_root.is_dir():
        raise LayoutError(f"{road}: {IMAGES}/ without {LABELS_DIR}/ (expected {road.name}/{LABELS_DIR}/RECORD/CAMERA/*{LABEL_SUFFIX})")
    images: dict[tuple[str, str], list[Path]] = defaultdict(list)
    for path in sorted(images_root.rglob("*")):
        if path.suffix in IMAGE_EXTENSIONS:
            images[(path.parent.relative_to(images_root).as_posix(), path.stem)].append(path)
    labels: dict[tuple[str, str], Path] = {}
    for path in sorted(labels_root.rglob(f"*{LABEL_SUFFIX}")):
        labels[(path.parent.relative_to(labels_root).as_posix(), path.name[: -len(LABEL_SUFFIX)])] = path
    samples: list[Sample] = []
    records: dict[str, str] = {}
    problems: list[Problem] = []
    for key, paths in sorted(images.items()):
        if len(paths) > 1:
            problems.append(Problem(str(paths[0]), ambiguous_stem(key[1], paths), split="*"))
            continue
        image = paths[0]
        label = labels.get(key)
        if label is None:
            problems.append(Problem(str(image), f"image has no label {labels_root / key[0] / (key[1] + LABEL_SUFFIX)}", split="*"))
            continue
        name, record = sample_name(Path(road.name) / image.relative_to(road))
        samples.append(Sample(name, image, label))
        records[name] = record
    problems += [Problem(str(labels[key]), f"label has no image in {images_root / key[0]}", split="*") for key in sorted(set(labels) - set(images))]
    return samples, records, problems


def find_official_lists(root: Path) -> dict[str, list[Path]]:
    """{split: [ROAD_split.lst, ...]} found in root or root/public_image_lists/, roads in name order."""
    lists: dict[str, list[Path]] = {}
    for folder in LIST_FOLDERS:
        where = root / folder
        if not where.is_dir():
            continue
        for path in sorted(where.iterdir()):
            match = _LIST.fullmatch(path.name)
            if match:
                lists.setdefault(match["split"], []).append(path)
    return {split: lists[split] for split in OFFICIAL_SPLITS if split in lists}


def _list_fields(text: str) -> list[str]:
    """IMAGE<TAB>LABEL (paths hold spaces: `Camera 5`); `IMAGE LABEL` where neither has one; or IMAGE alone."""
    fields = [f.strip() for f in text.split("\t") if f.strip()]
    if len(fields) == 1:
        words = fields[0].split()
        if len(words) == 2 and words[0].endswith(IMAGE_EXTENSIONS) and words[1].endswith((".png", ".PNG")):
            return words
    return fields


def read_official_list(root: Path, list_file: Path, split: str) -> tuple[list[Sample], list[Problem]]:
    """Samples of one official list; a problem for each line that is not IMAGE[<TAB>LABEL]."""
    entries, problems = read_list_lines(list_file, split)
    samples: list[Sample] = []
    for number, text in entries:
        fields = _list_fields(text)
        image = root / fields[0] if fields else None
        label = root / fields[1] if len(fields) == 2 else (label_for(image) if image is not None and len(fields) == 1 else None)
        if image is None or label is None:
            problems.append(Problem(f"{list_file}:{number}", f"expected 'IMAGE<TAB>LABEL' or an image under {IMAGES}/, got {text!r}", split=split))
            continue
        relative = image.relative_to(root) if image.is_relative_to(root) else image
        samples.append(Sample(sample_name(relative)[0], image, label))
    return samples, problems


def _count_frames(road: Path) -> int:
    return sum(1 for path in (road / IMAGES).rglob("*") if path.suffix in IMAGE_EXTENSIONS)


def load_official_splits(root: Path, lists: dict[str, list[Path]]) -> DatasetLayout:
    """The splits of the official lists (each the roads' lists in name order), plus trainval."""
    layout = DatasetLayout({}, APOLLO_RULES)
    listed_roads: set[str] = set()
    for split, files in lists.items():
        samples: list[Sample] = []
        for list_file in files:
            listed_roads.add(_LIST.fullmatch(list_file.name)["road"])  # type: ignore[index]
            found, problems = read_official_list(root, list_file, split)
            samples += found
            layout.problems += problems
        layout.splits[split] = samples
    union_split(layout, "trainval", ["train", "val"])
    unlisted = [road for road in find_roads(root) if road.name not in listed_roads and road != root]
    if unlisted:
        frames = sum(_count_frames(road) for road in unlisted)
        layout.notes.append(
            f"{frames} frames of {', '.join(r.name for r in unlisted)} are in no official list and are not converted "
            f"(lists: {', '.join(sorted(listed_roads))}); --split draws a split by record of every road instead"
        )
    return layout


def split_records(names: list[str], fractions: dict[str, float], seed: int) -> tuple[dict[str, list[str]], list[str]]:
    """seeded_split of the record names; a split the rounding leaves empty gets one record (seeded_pick)
    of the largest, with a note, so that a few records still make every split asked for."""
    assignment = seeded_split(names, fractions, seed)
    notes = []
    for split in [split for split, chosen in assignment.items() if not chosen]:
        donor = max(assignment, key=lambda s: len(assignment[s]))
        if len(assignment[donor]) < 2:
            given = ", ".join(f"{name}={fraction:g}" for name, fraction in fractions.items())
            raise LayoutError(f"{len(names)} record(s) are too few to split by record into {given}: every split needs a whole record")
        moved = seeded_pick(assignment[donor], 1, seed)
        assignment[donor] = [n for n in assignment[donor] if n not in moved]
        assignment[split] = moved
        notes.append(f"{split}: 1 of {len(names)} records ({moved[0]}), taken from {donor}: {split}={fractions[split]:g} of the records rounds to none")
    return assignment, notes


def load_split_by_record(root: Path, fractions: dict[str, float], seed: int = 0) -> DatasetLayout:
    """Every road's frames, whole records drawn into the splits by seeded_split over ROAD/RECORD names, plus trainval."""
    roads = find_roads(root)
    if not roads:
        raise LayoutError(f"{root}: no ROAD/{IMAGES}/ folder (expected ApolloScape scene parsing: road01_ins/{IMAGES}/Record001/Camera 5/*.jpg with road01_ins/{LABELS_DIR}/...)")
    samples: list[Sample] = []
    records: dict[str, str] = {}
    unpaired: list[Problem] = []
    for road in roads:
        found, found_records, problems = scan_road(road)
        samples += found
        records.update(found_records)
        unpaired += problems
    if not samples and not unpaired:
        raise LayoutError(f"{root}: no frames under {', '.join(str(r / IMAGES) for r in roads)}")
    names = sorted(set(records.values()))
    try:
        assignment, notes = split_records(names, fractions, seed) if names else ({split: [] for split in fractions}, [])
    except LayoutError as exc:
        raise LayoutError(f"{root}: {exc}") from None
    split_of = {record: split for split, chosen in assignment.items() for record in chosen}
    layout = DatasetLayout({split: [] for split in assignment}, APOLLO_RULES, notes=notes)
    for sample in sorted(samples, key=lambda s: s.name):
        split = split_of.get(records[sample.name])
        if split is not None:
            layout.splits[split].append(sample)
    left = [record for record in names if record not in split_of]
    if left:
        frames = sum(1 for sample in samples if records[sample.name] not in split_of)
        given = " + ".join(f"{split}={fraction:g}" for split, fraction in fractions.items())
        layout.notes.append(f"{len(left)} of {len(names)} records ({frames} frames) are in no split: the fractions add up to {sum(fractions.values()):g} ({given}), not 1")
    for split in assignment:
        layout.problems += [p.for_split(split) for p in unpaired]
    union_split(layout, "trainval", ["train", "val"])
    return layout


def load_apolloscape(root: Path, split_specs: list[str] | tuple[str, ...] = (), seed: int = 0) -> DatasetLayout:
    """The official lists when present and no --split is given, else the seeded split by record."""
    lists = {} if split_specs else find_official_lists(root)
    if lists:
        return load_official_splits(root, lists)
    try:
        fractions = parse_fractions(list(split_specs) or list(DEFAULT_FRACTIONS))
    except SplitSpecError as exc:
        raise OptionError("--split", str(exc)) from None
    return load_split_by_record(root, fractions, seed)


def plan(context: ConvertContext) -> ConvertPlan:
    layout = load_apolloscape(context.root, tuple(context.options["split"] or ()), context.options["seed"])
    return ConvertPlan(layout, context.registry.get("apolloscape"))
