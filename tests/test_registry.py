"""The registry: built-in entries, validation errors, atomic comment-keeping updates, path resolution."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from segprep.registry import (
    DatasetEntry,
    RegistryError,
    load_registry,
    record_splits,
    register_dataset,
    resolve_registry_path,
)

REPO_REGISTRY = Path(__file__).resolve().parent.parent / "dataset_registry.yaml"


def test_builtin_entries():
    reg = load_registry(REPO_REGISTRY)
    expected = {"pascal_voc_seg": (21, 255), "cityscapes": (19, 255), "ade20k": (151, 0), "camvid": (11, 255), "kitti_road": (2, 255), "mapillary_vistas": (65, 65), "apolloscape": (22, 255)}
    assert {name: (e.num_classes, e.ignore_label) for name, e in reg.datasets.items()} == expected
    assert reg.get("pascal_voc_seg").class_names[15] == "person"
    assert reg.get("cityscapes").class_names[-1] == "bicycle"
    assert reg.get("ade20k").class_names[:3] == ["other", "wall", "building"]
    assert reg.get("kitti_road").class_names == ["background", "road"]
    assert all(e.splits == {} for e in reg.datasets.values()), "split sizes are written by segprep, not shipped"


def write(tmp_path: Path, entry: dict) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"datasets": {"d": entry}}))
    return path


GOOD = {"num_classes": 3, "ignore_label": 255, "colormap": "pascal", "class_names": ["a", "b", "c"]}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"num_classes": None}, "missing key 'num_classes'"),
        ({"class_names": ["a", "b"]}, "class_names has 2 names but num_classes is 3"),
        ({"colormap": [[0, 0, 0], [1, 1, 1]]}, "colormap has 2 colours but num_classes is 3"),
        ({"colormap": "nope"}, "bad colormap"),
        ({"ignore_label": 256}, "ignore_label must be an integer in 0..255"),
        ({"splits": {"train": -1}}, "splits must map"),
        ({"class_weights": [1.0]}, "class_weights must be null or a list of 3"),
        ({"colour_map": "x"}, "unknown key"),
    ],
)
def test_validation_errors_name_file_dataset_and_key(tmp_path, change, message):
    entry = {**GOOD, **change}
    entry = {k: v for k, v in entry.items() if v is not None}
    path = write(tmp_path, entry)
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    assert message in str(info.value) and str(path) in str(info.value) and "'d'" in str(info.value)


def test_broken_yaml_and_missing_file(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("datasets: [unclosed")
    with pytest.raises(RegistryError, match="not valid YAML"):
        load_registry(path)
    layered = load_registry(tmp_path / "missing.yaml")  # not created yet: the built-ins alone
    assert sorted(layered.datasets) == sorted(load_registry(REPO_REGISTRY).datasets)
    with pytest.raises(RegistryError, match="not created yet"):
        layered.get("mine")


def test_record_splits_keeps_comments_order_and_other_splits(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(REPO_REGISTRY.read_text())
    record_splits(path, "camvid", {"train": 367, "val": 101}, data_dir="/data/camvid")
    record_splits(path, "camvid", {"test": 233})
    text = path.read_text()
    original = REPO_REGISTRY.read_text().splitlines()
    changed = [line for line in text.splitlines() if line not in original]
    assert changed == ["    splits: {train: 367, val: 101, test: 233}", "    data_dir: /data/camvid"]
    assert "# SegNet layout: labels 0..10, void 11 stored as 255." in text
    assert list(load_registry(path).datasets) == ["pascal_voc_seg", "cityscapes", "ade20k", "camvid", "kitti_road", "mapillary_vistas", "apolloscape"]
    assert not [p for p in tmp_path.iterdir() if p.name != "r.yaml"], "no temporary file left"
    with pytest.raises(RegistryError, match="no dataset 'nope'"):
        record_splits(path, "nope", {"train": 1})


def test_register_adds_then_updates_keeping_splits(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(REPO_REGISTRY.read_text())
    register_dataset(path, DatasetEntry("shapes", 4, 255, "pascal", ["bg", "circle", "rect", "tri"]))
    record_splits(path, "shapes", {"train": 54})
    register_dataset(path, DatasetEntry("shapes", 4, 255, [[0, 0, 0], [1, 1, 1], [2, 2, 2], [3, 3, 3]], ["bg", "c", "r", "t"]))
    entry = load_registry(path).get("shapes")
    assert entry.splits == {"train": 54} and entry.class_names == ["bg", "c", "r", "t"] and entry.colormap[3] == [3, 3, 3]
    with pytest.raises(RegistryError):
        register_dataset(path, DatasetEntry("bad", 2, 255, "pascal", ["only-one"]))


def test_registry_path_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("SEGPREP_REGISTRY", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dataset_registry.yaml").write_text("datasets: {}\n")  # a file in the working folder is not used
    assert resolve_registry_path() == tmp_path / "config" / "segprep" / "registry.yaml"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_registry_path() == tmp_path / "home" / ".config" / "segprep" / "registry.yaml"
    monkeypatch.setenv("SEGPREP_REGISTRY", "/x/env.yaml")
    assert resolve_registry_path() == Path("/x/env.yaml")
    assert resolve_registry_path("/x/flag.yaml") == Path("/x/flag.yaml")


def test_user_entries_layer_over_the_builtins_and_writes_go_to_the_user_file(tmp_path, monkeypatch):
    """record_splits on a built-in writes a partial entry to the user's file; the package file is never written."""
    builtin_before = REPO_REGISTRY.read_bytes()
    path = tmp_path / "config" / "segprep" / "registry.yaml"  # the default location, folder not there yet
    monkeypatch.delenv("SEGPREP_REGISTRY")
    assert resolve_registry_path() == path
    record_splits(path, "camvid", {"train": 367}, data_dir="/data/camvid")
    text = path.read_text()
    assert "num_classes" not in text and "367" in text  # only what was recorded
    camvid = load_registry(path).get("camvid")
    assert camvid.splits == {"train": 367} and camvid.data_dir == "/data/camvid" and camvid.num_classes == 11
    path.write_text(text + "  kitti_road:\n    num_classes: 3\n")  # a partial override that breaks the entry
    with pytest.raises(RegistryError, match="kitti_road"):
        load_registry(path)
    assert REPO_REGISTRY.read_bytes() == builtin_before
