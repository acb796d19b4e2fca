"""The ApolloScape scene-parsing label table, as facts: name, id, trainId, category and colour of each label.

The numbers are those of ApolloScape's own table (`labels_apollo.py` in the dataset's utilities,
and the class table of scene_parsing/README.md in github.com/ApolloScapeAuto/dataset-api), typed in
here so that segprep needs neither. The *_bin.png labels hold the ids; training uses the trainIds:
22 classes, each `*_group` id (a crowd of one class) trained as its class, and others, rover,
bridge, tunnel, overpass and unlabeled (255) the ignore label 255. Names keep the official
spelling (`siderwalk`, `vegatation`, `car_groups`): the evaluation tools use them.
The categories are the English names of the README's groups.

Pure data and lookups; no numpy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class ApolloLabel:
    """One label: `id` is what a *_bin.png holds, `train_id` what training uses (255: ignored)."""

    name: str
    id: int
    train_id: int
    category: str
    color: tuple[int, int, int]


LABELS: tuple[ApolloLabel, ...] = (
    ApolloLabel("others", 0, 255, "others", (0, 0, 0)),
    ApolloLabel("rover", 1, 255, "others", (0, 0, 0)),
    ApolloLabel("sky", 17, 0, "sky", (70, 130, 180)),
    ApolloLabel("car", 33, 1, "movable object", (0, 0, 142)),
    ApolloLabel("car_groups", 161, 1, "movable object", (0, 0, 142)),
    ApolloLabel("motorbicycle", 34, 2, "movable object", (0, 0, 230)),
    ApolloLabel("motorbicycle_group", 162, 2, "movable object", (0, 0, 230)),
    ApolloLabel("bicycle", 35, 3, "movable object", (119, 11, 32)),
    ApolloLabel("bicycle_group", 163, 3, "movable object", (119, 11, 32)),
    ApolloLabel("person", 36, 4, "movable object", (0, 128, 192)),
    ApolloLabel("person_group", 164, 4, "movable object", (0, 128, 192)),
    ApolloLabel("rider", 37, 5, "movable object", (128, 64, 128)),
    ApolloLabel("rider_group", 165, 5, "movable object", (128, 64, 128)),
    ApolloLabel("truck", 38, 6, "movable object", (128, 0, 192)),
    ApolloLabel("truck_group", 166, 6, "movable object", (128, 0, 192)),
    ApolloLabel("bus", 39, 7, "movable object", (192, 0, 64)),
    ApolloLabel("bus_group", 167, 7, "movable object", (192, 0, 64)),
    ApolloLabel("tricycle", 40, 8, "movable object", (128, 128, 192)),
    ApolloLabel("tricycle_group", 168, 8, "movable object", (128, 128, 192)),
    ApolloLabel("road", 49, 9, "flat", (192, 128, 192)),
    ApolloLabel("siderwalk", 50, 10, "flat", (192, 128, 64)),
    ApolloLabel("traffic_cone", 65, 11, "road obstacles", (0, 0, 64)),
    ApolloLabel("road_pile", 66, 12, "road obstacles", (0, 0, 192)),
    ApolloLabel("fence", 67, 13, "road obstacles", (64, 64, 128)),
    ApolloLabel("traffic_light", 81, 14, "roadside objects", (192, 64, 128)),
    ApolloLabel("pole", 82, 15, "roadside objects", (192, 128, 128)),
    ApolloLabel("traffic_sign", 83, 16, "roadside objects", (0, 64, 64)),
    ApolloLabel("wall", 84, 17, "roadside objects", (192, 192, 128)),
    ApolloLabel("dustbin", 85, 18, "roadside objects", (64, 0, 192)),
    ApolloLabel("billboard", 86, 19, "roadside objects", (192, 0, 192)),
    ApolloLabel("building", 97, 20, "building", (192, 0, 128)),
    ApolloLabel("bridge", 98, 255, "building", (128, 128, 0)),
    ApolloLabel("tunnel", 99, 255, "building", (128, 0, 0)),
    ApolloLabel("overpass", 100, 255, "building", (64, 128, 64)),
    ApolloLabel("vegatation", 113, 21, "natural", (128, 128, 64)),
    ApolloLabel("unlabeled", 255, 255, "unlabeled", (255, 255, 255)),
)

IGNORE_TRAIN_ID = 255
"""trainId of the labels not trained on (others, rover, bridge, tunnel, overpass, unlabeled)."""

BY_ID: Mapping[int, ApolloLabel] = MappingProxyType({label.id: label for label in LABELS})

LABEL_IDS: tuple[int, ...] = tuple(sorted(BY_ID))
"""The values a *_bin.png may hold; any other is not an ApolloScape label."""

TRAIN_LABELS: tuple[ApolloLabel, ...] = tuple(
    sorted((label for label in LABELS if label.train_id != IGNORE_TRAIN_ID and not label.name.endswith(("_group", "_groups"))), key=lambda label: label.train_id)
)
"""The 22 classes trained on, in trainId order (sky = 0 ... vegatation = 21): each class's own label, not its group."""

TRAIN_CLASS_NAMES: tuple[str, ...] = tuple(label.name for label in TRAIN_LABELS)
TRAIN_COLORS: tuple[tuple[int, int, int], ...] = tuple(label.color for label in TRAIN_LABELS)
NUM_CLASSES = len(TRAIN_LABELS)


def _id_to_train_id_table() -> bytes:
    table = bytearray([IGNORE_TRAIN_ID]) * 256
    for label in LABELS:
        table[label.id] = label.train_id
    return bytes(table)


ID_TO_TRAIN_ID: bytes = _id_to_train_id_table()
"""256-entry id -> trainId lookup (bytes.translate or np.frombuffer); values that are no id map to 255.

Whether a value is an id at all is LABEL_IDS' business: the converter refuses the others.
"""
