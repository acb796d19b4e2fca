"""The Cityscapes label table, as facts: name, id, trainId and colour of each of the 35 labels.

The numbers are those of the official table (cityscapesScripts `helpers/labels.py`, which the
evaluation server uses), typed in here so that segprep does not depend on that package at run
time. Labels with trainId 255 are void for training; `license plate` has id -1 and trainId -1,
meaning "never drawn" (its pixels keep whatever lies beneath). A test compares every entry with
the reference package when it is installed.

Pure data and lookups; no numpy, so the CLI can validate class names without loading it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from segprep.errors import SegprepError


@dataclass(frozen=True)
class CityscapesLabel:
    """One label: `id` is what the official *_labelIds.png holds, `train_id` what training uses."""

    name: str
    id: int
    train_id: int
    color: tuple[int, int, int]


LABELS: tuple[CityscapesLabel, ...] = (
    CityscapesLabel("unlabeled", 0, 255, (0, 0, 0)),
    CityscapesLabel("ego vehicle", 1, 255, (0, 0, 0)),
    CityscapesLabel("rectification border", 2, 255, (0, 0, 0)),
    CityscapesLabel("out of roi", 3, 255, (0, 0, 0)),
    CityscapesLabel("static", 4, 255, (0, 0, 0)),
    CityscapesLabel("dynamic", 5, 255, (111, 74, 0)),
    CityscapesLabel("ground", 6, 255, (81, 0, 81)),
    CityscapesLabel("road", 7, 0, (128, 64, 128)),
    CityscapesLabel("sidewalk", 8, 1, (244, 35, 232)),
    CityscapesLabel("parking", 9, 255, (250, 170, 160)),
    CityscapesLabel("rail track", 10, 255, (230, 150, 140)),
    CityscapesLabel("building", 11, 2, (70, 70, 70)),
    CityscapesLabel("wall", 12, 3, (102, 102, 156)),
    CityscapesLabel("fence", 13, 4, (190, 153, 153)),
    CityscapesLabel("guard rail", 14, 255, (180, 165, 180)),
    CityscapesLabel("bridge", 15, 255, (150, 100, 100)),
    CityscapesLabel("tunnel", 16, 255, (150, 120, 90)),
    CityscapesLabel("pole", 17, 5, (153, 153, 153)),
    CityscapesLabel("polegroup", 18, 255, (153, 153, 153)),
    CityscapesLabel("traffic light", 19, 6, (250, 170, 30)),
    CityscapesLabel("traffic sign", 20, 7, (220, 220, 0)),
    CityscapesLabel("vegetation", 21, 8, (107, 142, 35)),
    CityscapesLabel("terrain", 22, 9, (152, 251, 152)),
    CityscapesLabel("sky", 23, 10, (70, 130, 180)),
    CityscapesLabel("person", 24, 11, (220, 20, 60)),
    CityscapesLabel("rider", 25, 12, (255, 0, 0)),
    CityscapesLabel("car", 26, 13, (0, 0, 142)),
    CityscapesLabel("truck", 27, 14, (0, 0, 70)),
    CityscapesLabel("bus", 28, 15, (0, 60, 100)),
    CityscapesLabel("caravan", 29, 255, (0, 0, 90)),
    CityscapesLabel("trailer", 30, 255, (0, 0, 110)),
    CityscapesLabel("train", 31, 16, (0, 80, 100)),
    CityscapesLabel("motorcycle", 32, 17, (0, 0, 230)),
    CityscapesLabel("bicycle", 33, 18, (119, 11, 32)),
    CityscapesLabel("license plate", -1, -1, (0, 0, 142)),
)

IGNORE_TRAIN_ID = 255
"""trainId of every void label, and of pixels no polygon covers (the `unlabeled` background)."""

BY_NAME: Mapping[str, CityscapesLabel] = MappingProxyType({label.name: label for label in LABELS})
BY_ID: Mapping[int, CityscapesLabel] = MappingProxyType({label.id: label for label in LABELS})

TRAIN_LABELS: tuple[CityscapesLabel, ...] = tuple(
    sorted((label for label in LABELS if 0 <= label.train_id < IGNORE_TRAIN_ID), key=lambda label: label.train_id)
)
TRAIN_CLASS_NAMES: tuple[str, ...] = tuple(label.name for label in TRAIN_LABELS)
"""The 19 classes trained on, in trainId order (road = 0 ... bicycle = 18)."""

LABEL_IDS: frozenset[int] = frozenset(label.id for label in LABELS if label.id >= 0)
"""The values an official *_labelIds.png may hold (0..33)."""


def _id_to_train_id_table() -> bytes:
    table = bytearray([IGNORE_TRAIN_ID]) * 256
    for label in LABELS:
        if label.id >= 0:
            table[label.id] = label.train_id
    return bytes(table)


ID_TO_TRAIN_ID: bytes = _id_to_train_id_table()
"""256-entry id -> trainId table (usable with bytes.translate or np.frombuffer); non-ids map to 255.

Immutable bytes rather than a numpy array so that no caller can change it for everyone else.
Whether a value is an id at all is LABEL_IDS' business, not this table's.
"""


class UnknownClassError(SegprepError, ValueError):
    """A class name that is not one of the 19 train classes; the message lists the valid names."""


def resolve_classes(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The train classes named, in the order given, as the table spells them.

    `_` may stand for a space (`traffic_light`), since spaces are awkward on a command line.
    Unknown, repeated or no names raise UnknownClassError.
    """
    chosen: list[str] = []
    unknown: list[str] = []
    for raw in names:
        name = raw.strip().replace("_", " ")
        if name not in TRAIN_CLASS_NAMES:
            unknown.append(raw.strip())
        elif name in chosen:
            raise UnknownClassError(f"class {name!r} is given twice")
        else:
            chosen.append(name)
    if unknown:
        valid = ", ".join(TRAIN_CLASS_NAMES)
        raise UnknownClassError(f"unknown Cityscapes class(es) {', '.join(map(repr, unknown))}; valid: {valid}")
    if not chosen:
        raise UnknownClassError("no classes given; valid: " + ", ".join(TRAIN_CLASS_NAMES))
    return tuple(chosen)
