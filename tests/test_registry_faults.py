"""Issue 8 for the registry: poison refused with the key named, changes only on success, OS faults in one line.

Every refusal is checked three ways: exit status, an `error:` line that names the registry file,
the dataset and the key, and the registry byte for byte (and mode for mode) as it was. Permission
and space faults cannot be made for real when the tests run as root, so they are injected at the
system call (os.open, os.fsync, os.replace); a path component that is a file is made for real.
The readers and parsers that take user text are fuzzed with hypothesis: every input either parses
or raises the project's own error, never a Python exception of another kind.
"""

from __future__ import annotations

import errno
import io
import math
import os
import threading
import time
from pathlib import Path

import click
import numpy as np
import pytest
import yaml
from conftest import png_bytes, random_image
from faultkit import assert_refused, assert_unchanged, snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segprep.cli.register_cmd import parse_class_weights
from segprep.colormaps import ColormapFileError, parse_colormap_text
from segprep.fileio import atomic_write
from segprep.registry import (
    DatasetEntry,
    Registry,
    RegistryError,
    load_registry,
    parse_registry,
    record_splits,
    register_dataset,
    set_class_weights,
)

GOOD = {"num_classes": 3, "ignore_label": 255, "colormap": "pascal", "class_names": ["a", "b", "c"]}


def leftovers(folder: Path, *keep: str) -> list[str]:
    """Files in folder other than those named: a temporary left behind shows up here."""
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def write_entry(path: Path, entry: object, name: object = "d") -> Path:
    path.write_text(yaml.safe_dump({"datasets": {name: entry}}, sort_keys=False))
    return path


# --- 2. poison: class weights ------------------------------------------------------------------


@pytest.mark.fault("poison", "register")
@pytest.mark.parametrize("weights", ["1,inf,2", "1,nan,2", "1,-1,2", "0,0,0", "1,1e999,1", "-inf,1,1", "1,-0.5,NaN"])
def test_register_refuses_weights_that_make_nan_or_zero_losses(run_cli, registry, weights):
    before = snapshot(registry)
    result = run_cli("register", "x", "--class-names", "a,b,c", "--class-weights", weights)
    assert_refused(result, str(registry), "'x'", "class_weights", code=2)
    assert_unchanged(before, registry)


@pytest.mark.fault("poison", "register")
def test_register_refuses_weights_that_leave_only_the_ignored_class(run_cli, registry):
    assert run_cli("register", "x", "--class-names", "a,b,c", "--ignore-label", "0").exit_code == 0
    before = snapshot(registry)
    result = run_cli("register", "x", "--class-weights", "3,0,0")
    assert_refused(result, str(registry), "'x'", "class_weights", "all 0")
    assert_unchanged(before, registry)


@pytest.mark.fault("poison", "register")
def test_register_accepts_good_weights_and_normalises_negative_zero(run_cli, registry):
    result = run_cli("register", "x", "--class-names", "a,b,c", "--class-weights", "-0,1e-3,2")
    assert result.exit_code == 0, result.output
    weights = load_registry(registry).get("x").class_weights
    assert weights == [0.0, 0.001, 2.0] and math.copysign(1.0, weights[0]) == 1.0


def make_ignore_zero_dataset(root: Path) -> Path:
    """A folder dataset whose labels are all 0, registered below with ignore_label 0: no class left to learn."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(4):
        (root / "images" / f"s{i}.png").write_bytes(png_bytes(random_image(rng, 8, 6)))
        (root / "labels" / f"s{i}.png").write_bytes(png_bytes(np.zeros((6, 8), np.uint8), "L"))
    (root / "class_names.txt").write_text("other\nroad\n")
    return root


@pytest.mark.fault("poison", "inspect")
def test_inspect_class_weights_that_leave_nothing_to_learn_are_not_stored(run_cli, registry, tmp_path):
    root = make_ignore_zero_dataset(tmp_path / "data")
    out = tmp_path / "out"
    result = run_cli("convert", "folder", "--root", root, "--out", out, "--name", "z", "--ignore-label", "0", "--split", "train=1", "--quiet")
    assert result.exit_code == 0, result.output
    before = snapshot(registry)
    result = run_cli("inspect", "z", "--class-weights", "inverse")
    assert_refused(result, str(registry), "'z'", "class_weights")
    assert_unchanged(before, registry)
    result = run_cli("inspect", "z", "--class-weights")  # median frequency: 0 labelled pixels -> not finite
    assert_refused(result, "split train", "not finite")
    assert_unchanged(before, registry)


# --- 2. poison: entries that would crash training, refused when the registry is read -----------


BAD_ENTRIES = [
    ({"class_weights": [1, float("inf"), 1]}, "class_weights"),
    ({"class_weights": [1, float("nan"), 1]}, "class_weights"),
    ({"class_weights": [1, -2, 1]}, "class_weights"),
    ({"class_weights": [0, 0, 0]}, "class_weights"),
    ({"class_weights": [True, 1, 1]}, "class_weights"),
    ({"class_weights": [1, 10**400, 1]}, "class_weights"),
    ({"class_weights": "1,2,3"}, "class_weights"),
    ({"class_weights": [1, 2]}, "class_weights"),
    ({"num_classes": True}, "num_classes"),
    ({"num_classes": 3.0}, "num_classes"),
    ({"num_classes": 0}, "num_classes"),
    ({"num_classes": 257}, "num_classes"),
    ({"num_classes": "3"}, "num_classes"),
    ({"num_classes": 4}, "class_names"),
    ({"ignore_label": -1}, "ignore_label"),
    ({"ignore_label": True}, "ignore_label"),
    ({"ignore_label": "255"}, "ignore_label"),
    ({"ignore_label": None}, "ignore_label"),
    ({"class_names": ["a", "a", "c"]}, "class_names"),
    ({"class_names": ["a", 1, "c"]}, "class_names"),
    ({"class_names": ["a", None, "c"]}, "class_names"),
    ({"class_names": ["a", True, "c"]}, "class_names"),
    ({"class_names": ["a", "  ", "c"]}, "class_names"),
    ({"class_names": "a,b,c"}, "class_names"),
    ({"colormap": [[0, 0, 0], [1, 1], [2, 2, 2]]}, "colormap"),
    ({"colormap": [[0, 0, 0], [1, 1, 1, 1], [2, 2, 2]]}, "colormap"),
    ({"colormap": [[0, 0, 0], [1, 1, 256], [2, 2, 2]]}, "colormap"),
    ({"colormap": [[0, 0, 0], [1, 1, -1], [2, 2, 2]]}, "colormap"),
    ({"colormap": [[0, 0, 0], [True, 1, 1], [2, 2, 2]]}, "colormap"),
    ({"colormap": [[0, 0, 0], [1.5, 1, 1], [2, 2, 2]]}, "colormap"),
    ({"colormap": [[0, 0, 0], "red", [2, 2, 2]]}, "colormap"),
    ({"colormap": [[0, 0, 0], [1, 1, 1]]}, "colormap"),
    ({"colormap": []}, "colormap"),
    ({"colormap": 5}, "colormap"),
    ({"colormap": {"a": 1}}, "colormap"),
    ({"colormap": "no_such_map"}, "colormap"),
    ({"splits": {"train": -1}}, "splits"),
    ({"splits": {"train": 1.5}}, "splits"),
    ({"splits": {"train": True}}, "splits"),
    ({"splits": {"train": "3"}}, "splits"),
    ({"splits": {1: 3}}, "splits"),
    ({"splits": {"a/b": 3}}, "splits"),
    ({"splits": {"tr*": 3}}, "splits"),
    ({"splits": [1, 2]}, "splits"),
    ({"splits": 5}, "splits"),
    ({"splits": False}, "splits"),
    ({"data_dir": 5}, "data_dir"),
    ({"data_dir": ["a"]}, "data_dir"),
    ({"data_dir": ""}, "data_dir"),
    ({"colour_map": "pascal"}, "colour_map"),
    ({7: "x"}, "7"),
]


@pytest.mark.fault("poison", "register")
@pytest.mark.parametrize("change, key", BAD_ENTRIES, ids=[f"{k}-{i}" for i, (_, k) in enumerate(BAD_ENTRIES)])
def test_entries_that_would_crash_training_are_refused_naming_file_dataset_key(run_cli, tmp_path, change, key):
    path = write_entry(tmp_path / "r.yaml", {**GOOD, **change})
    before = snapshot(path)
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    message = str(info.value)
    assert str(path) in message and "'d'" in message and key in message and "\n" not in message
    result = run_cli("register", "other", "--class-names", "a,b", "--registry", path)
    assert_refused(result, str(path), "'d'", key)
    assert_unchanged(before, path)


BAD_DOCUMENTS = [
    ("datasets:\n  1: {}\n", "dataset 1"),
    ("datasets:\n  null: {}\n", "dataset None"),
    ("datasets:\n  true: {}\n", "dataset True"),
    ("datasets:\n  '': {}\n", "dataset ''"),
    ("datasets:\n  ' x': {}\n", "dataset ' x'"),
    ("datasets:\n  2020-01-01: {}\n", "dataset datetime.date"),
    ("datasets:\n  d: 5\n", "dataset 'd'"),
    ("datasets:\n  d: [a]\n", "dataset 'd'"),
    ("datasets:\n  d:\n", "dataset 'd'"),
    ("datasets: [a, b]\n", "'datasets' must be a mapping"),
    ("datasets: 5\n", "'datasets' must be a mapping"),
    ("datasets: cityscapes\n", "'datasets' must be a mapping"),
    ("- datasets\n", "top-level 'datasets:' mapping"),
    ("just text\n", "top-level 'datasets:' mapping"),
    ("dataset:\n  d: {}\n", "unknown top-level key(s) 'dataset'"),
    ("datasets:\n  d: {num_classes: 2020-13-45}\n", "not valid YAML"),
    ("datasets:\n  d: {num_classes: 0x_}\n", "not valid YAML"),
    ("datasets: {[a]: 1}\n", "not valid YAML"),
    ("datasets: [unclosed\n", "not valid YAML"),
    ("\tdatasets: {}\n", "not valid YAML"),
    ("[" * 5000 + "]" * 5000, "not valid YAML"),
]


@pytest.mark.fault("poison", "register")
@pytest.mark.parametrize("text, message", BAD_DOCUMENTS)
def test_malformed_documents_are_refused_in_one_line(run_cli, tmp_path, text, message):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    before = snapshot(path)
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    assert message in str(info.value) and str(path) in str(info.value) and "\n" not in str(info.value)
    result = run_cli("register", "other", "--class-names", "a,b", "--registry", path)
    assert_refused(result, str(path))
    assert_unchanged(before, path)


def test_empty_registry_and_null_datasets_are_empty_not_errors(tmp_path):
    for text in ("", "# nothing yet\n", "datasets:\n", "datasets: {}\n"):
        path = tmp_path / "r.yaml"
        path.write_text(text)
        assert parse_registry(text, path, over_builtins=False) == {}
        assert load_registry(path).datasets == parse_registry("", over_builtins=True)  # the built-ins alone


def test_registry_not_utf8_is_refused(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_bytes(b"datasets:\n  caf\xe9: {}\n")
    with pytest.raises(RegistryError, match=r"r\.yaml: cannot read registry \(not UTF-8"):
        load_registry(path)


# --- 2. poison: duplicate keys -----------------------------------------------------------------


def entry_text(name: str, extra: str = "") -> str:
    return f"  {name}:\n    num_classes: 2\n{extra}    ignore_label: 255\n    colormap: pascal\n    class_names: [a, b]\n"


DUPLICATES = [
    ("datasets:\n" + entry_text("d") + entry_text("d"), "'d'", 7, 2),
    ("datasets:\n" + entry_text("d", "    num_classes: 3\n"), "'num_classes'", 4, 3),
    ("datasets:\n" + entry_text("d", "    splits: {train: 3, val: 1, train: 4}\n"), "'train'", 4, 4),
    ("datasets: {}\ndatasets:\n" + entry_text("d"), "'datasets'", 2, 1),
    ("datasets:\n" + entry_text("d", "    class_weights: null\n    class_weights: [1, 2]\n"), "'class_weights'", 5, 4),
]


@pytest.mark.fault("poison", "register")
@pytest.mark.parametrize("text, key, line, first", DUPLICATES)
def test_duplicate_keys_are_refused_with_key_and_line(run_cli, tmp_path, text, key, line, first):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    yaml.safe_load(text)  # PyYAML alone would take it, keeping the last value
    before = snapshot(path)
    with pytest.raises(RegistryError) as info:
        load_registry(path)
    assert f"{path}: line {line}: duplicate key {key} (first at line {first})" in str(info.value)
    result = run_cli("register", "d", "--class-names", "a,b", "--registry", path)
    assert_refused(result, str(path), f"duplicate key {key}")
    assert_unchanged(before, path)


def test_merge_keys_may_override_what_they_bring_in(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(
        "datasets:\n"
        "  base: &base {num_classes: 2, ignore_label: 255, colormap: pascal, class_names: [a, b]}\n"
        "  other:\n    <<: *base\n    ignore_label: 0\n"
    )
    assert load_registry(path).get("other").ignore_label == 0


def test_strict_reading_stays_fast():
    """The duplicate-key check adds a dictionary lookup per key: the built-in registry still loads in milliseconds."""
    path = Path(__file__).resolve().parent.parent / "dataset_registry.yaml"
    load_registry(path)
    start = time.perf_counter()
    for _ in range(20):
        load_registry(path)
    assert (time.perf_counter() - start) / 20 < 0.05


# --- 3. the registry changes only on success, keeping mode, owner and links ----------------------


@pytest.mark.fault("registry", "register")
def test_write_keeps_mode_and_owner(run_cli, registry):
    registry.chmod(0o640)
    can_chown = os.geteuid() == 0
    if can_chown:
        os.chown(registry, 1234, 2345)
    assert run_cli("register", "x", "--class-names", "a,b").exit_code == 0
    st = os.stat(registry)
    assert st.st_mode & 0o7777 == 0o640
    if can_chown:
        assert (st.st_uid, st.st_gid) == (1234, 2345)
    assert "x" in load_registry(registry).datasets
    assert leftovers(registry.parent) == ["registry.yaml"]


@pytest.mark.fault("registry", "register")
def test_symlinked_registry_writes_the_target_and_keeps_the_link(run_cli, registry, tmp_path):
    (tmp_path / "conf").mkdir()
    link = tmp_path / "conf" / "link.yaml"
    link.symlink_to(registry)
    result = run_cli("register", "x", "--class-names", "a,b", "--registry", link)
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and os.readlink(link) == str(registry)
    assert "x" in load_registry(registry).datasets
    assert leftovers(tmp_path / "conf") == ["link.yaml"]


@pytest.mark.fault("registry", "register")
def test_names_that_yaml_11_reads_as_other_types_are_quoted(run_cli, registry):
    names = ["yes", "no", "null", "1", "0x10", "~", "1e3", "2020-01-01", "on", "#x", "a: b", "- c", "[d]"]
    result = run_cli("register", "x", "--class-names", ",".join(names))
    assert result.exit_code == 0, result.output
    assert load_registry(registry).get("x").class_names == names


def failures(registry: Path):  # type: ignore[no-untyped-def]
    """(label, call) for each way a registry change can fail before the rename."""
    bad_entry = DatasetEntry("bad", 2, 255, "pascal", ["only-one"])
    return [
        ("invalid new entry", lambda: register_dataset(registry, bad_entry)),
        ("unknown dataset (weights)", lambda: set_class_weights(registry, "nope", [1.0])),
        ("unknown dataset (splits)", lambda: record_splits(registry, "nope", {"train": 1})),
        ("weights of the wrong length", lambda: set_class_weights(registry, "camvid", [1.0, 2.0])),
        ("weights all zero", lambda: set_class_weights(registry, "camvid", [0.0] * 11)),
        ("weights with inf", lambda: set_class_weights(registry, "camvid", [1.0] * 10 + [math.inf])),
        ("negative split count", lambda: record_splits(registry, "camvid", {"train": -5})),
        ("split name with a slash", lambda: record_splits(registry, "camvid", {"a/b": 5})),
    ]


@pytest.mark.fault("registry", "register", "inspect", "convert")
def test_each_failed_change_leaves_the_registry_byte_identical(registry):
    before = snapshot(registry)
    for label, call in failures(registry):
        with pytest.raises(RegistryError):
            call()
        assert_unchanged(before, registry)
        assert leftovers(registry.parent) == ["registry.yaml"], label


@pytest.mark.fault("registry", "register")
@pytest.mark.parametrize("exception", [RuntimeError("boom"), KeyboardInterrupt()])
def test_a_crash_while_writing_leaves_the_registry_and_no_temporary(registry, monkeypatch, exception):
    from ruamel.yaml import YAML

    before = snapshot(registry)
    original_dump = YAML.dump

    def dump_then_crash(self, data, stream):  # half of the file is written, then the process dies
        original_dump(self, data, stream)
        if not isinstance(stream, io.StringIO):
            raise exception
        stream.truncate(len(stream.getvalue()) // 2)
        raise exception

    monkeypatch.setattr(YAML, "dump", dump_then_crash)
    with pytest.raises(type(exception)):
        register_dataset(registry, DatasetEntry("x", 2, 255, "pascal", ["a", "b"]))
    assert_unchanged(before, registry)
    assert leftovers(registry.parent) == ["registry.yaml"]


@pytest.mark.fault("registry", "convert")
def test_a_broken_registry_is_not_rewritten(registry):
    registry.write_text(registry.read_text() + "  camvid:\n    num_classes: 11\n  camvid:\n    num_classes: 11\n")
    before = snapshot(registry)
    with pytest.raises(RegistryError, match="duplicate key 'camvid'"):
        record_splits(registry, "kitti_road", {"train": 3})
    assert_unchanged(before, registry)


@pytest.mark.fault("registry", "convert")
def test_concurrent_changes_are_not_lost(registry):
    """A second writer waits for the first (a lock on the file), then applies its change to the new file."""
    import fcntl

    holder = open(registry, "rb")
    fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
    waiter = threading.Thread(target=record_splits, args=(registry, "camvid", {"val": 7}))
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive(), "the second writer did not wait for the lock"
    # The first writer replaces the file (as a registry write does) and lets go.
    replacement = registry.with_name("new.yaml")
    replacement.write_text(registry.read_text() + "  extra:\n    num_classes: 2\n    ignore_label: 255\n    colormap: pascal\n    class_names: [a, b]\n")
    os.replace(replacement, registry)
    fcntl.flock(holder.fileno(), fcntl.LOCK_UN)
    holder.close()
    waiter.join(10)
    assert not waiter.is_alive()
    reg = load_registry(registry)
    assert reg.get("extra").class_names == ["a", "b"] and reg.get("camvid").splits == {"val": 7}


# --- 6. OS faults --------------------------------------------------------------------------------


def inject(monkeypatch, name: str, code: int, only_tmp: bool = True):  # type: ignore[no-untyped-def]
    """Make os.<name> fail with errno `code` for the registry's temporary (like a read-only folder or a full disk)."""
    original = getattr(os, name)

    def failing(*args, **kwargs):  # type: ignore[no-untyped-def]
        target = os.fsdecode(args[0]) if args and isinstance(args[0], (str, bytes, os.PathLike)) else ""
        if not only_tmp or target.endswith(".tmp"):
            raise OSError(code, os.strerror(code), *([target] if target else []))
        return original(*args, **kwargs)

    monkeypatch.setattr(os, name, failing)


OS_FAULTS = [
    ("open", errno.EACCES, "permission denied"),  # read-only folder, as a user
    ("open", errno.EROFS, "read-only file system"),
    ("open", errno.ENOSPC, "no space left on device"),
    ("fsync", errno.ENOSPC, "no space left on device"),  # delayed allocation: the disk fills at fsync
    ("fsync", errno.EDQUOT, "disk quota exceeded"),
    ("replace", errno.EACCES, "permission denied"),
    ("replace", errno.EROFS, "read-only file system"),
    ("replace", errno.EXDEV, "cross-device link"),
]


@pytest.mark.fault("os", "register")
@pytest.mark.parametrize("call, code, reason", OS_FAULTS)
def test_os_faults_while_writing_give_one_line_and_leave_no_trace(run_cli, registry, monkeypatch, call, code, reason):
    before = snapshot(registry)
    inject(monkeypatch, call, code, only_tmp=call != "fsync")
    result = run_cli("register", "x", "--class-names", "a,b")
    monkeypatch.undo()
    assert_refused(result, f"{registry}: ", reason)
    assert ".tmp" not in result.stderr, "the error names the registry, not the hidden temporary"
    assert_unchanged(before, registry)
    assert leftovers(registry.parent) == ["registry.yaml"]


@pytest.mark.fault("os", "inspect")
def test_os_fault_while_inspect_writes_class_weights(run_cli, registry, tmp_path, monkeypatch):
    from conftest import make_folder_dataset

    root = make_folder_dataset(tmp_path / "data", count=4)
    assert run_cli("convert", "folder", "--root", root, "--out", tmp_path / "out", "--name", "w", "--split", "train=1", "--quiet").exit_code == 0
    before = snapshot(registry)
    inject(monkeypatch, "replace", errno.EROFS)
    result = run_cli("inspect", "w", "--class-weights")
    monkeypatch.undo()
    assert_refused(result, f"{registry}: read-only file system")
    assert_unchanged(before, registry)
    assert leftovers(registry.parent) == ["data", "out", "registry.yaml"]


@pytest.mark.fault("os", "register")
def test_registry_under_a_file_for_real(run_cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    path = blocker / "registry.yaml"
    result = run_cli("register", "x", "--class-names", "a,b", "--registry", path)
    assert_refused(result, f"{path}: cannot read registry (a component of the path is a file, not a folder)")
    with pytest.raises(RegistryError, match="a component of the path is a file"):
        record_splits(path, "x", {"train": 1})
    for make_parents in (False, True):
        with pytest.raises(NotADirectoryError) as info:
            atomic_write(path, lambda handle: handle.write(b"x"), make_parents=make_parents)
        assert info.value.filename in (str(path), str(blocker))
    assert leftovers(tmp_path, "registry.yaml") == ["file"] and blocker.read_text() == "not a folder"


@pytest.mark.fault("os", "register")
def test_registry_in_a_missing_folder(run_cli, tmp_path):
    path = tmp_path / "missing" / "registry.yaml"
    result = run_cli("register", "x", "--class-names", "a,b", "--registry", path)
    assert_refused(result, str(path), "no such file or folder")
    with pytest.raises(FileNotFoundError) as info:
        atomic_write(path, lambda handle: handle.write(b"x"), make_parents=False)
    assert info.value.filename == str(path)
    assert leftovers(tmp_path, "registry.yaml") == []


def test_atomic_write_keeps_mode_of_replaced_file_and_umask_for_new(tmp_path):
    path = tmp_path / "f"
    atomic_write(path, lambda handle: handle.write(b"1"))
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~mask
    path.chmod(0o600)
    atomic_write(path, lambda handle: handle.write(b"2"))
    assert os.stat(path).st_mode & 0o777 == 0o600 and path.read_bytes() == b"2"
    from segprep.fileio import temporary_for

    stale = temporary_for(path)  # left by a killed process that had our pid
    stale.write_bytes(b"stale")
    atomic_write(path, lambda handle: handle.write(b"3"))
    assert path.read_bytes() == b"3" and leftovers(tmp_path) == ["f"]


# --- fuzzing: the registry reader and register's parsers take user text ----------------------------

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def check_loaded(registry: Registry) -> None:
    """What load_registry returns is safe for segtrain: every invariant it relies on holds."""
    for name, entry in registry.datasets.items():
        assert isinstance(name, str) and name == entry.name
        assert 1 <= entry.num_classes <= 256 and 0 <= entry.ignore_label <= 255
        assert len(entry.class_names) == entry.num_classes == len(set(entry.class_names))
        assert all(isinstance(n, str) and n.strip() for n in entry.class_names)
        assert all(isinstance(k, str) and type(v) is int and v >= 0 for k, v in entry.splits.items())
        if entry.class_weights is not None:
            assert len(entry.class_weights) == entry.num_classes
            assert all(math.isfinite(w) and w >= 0 for w in entry.class_weights) and any(entry.class_weights)
        if not isinstance(entry.colormap, str):
            assert len(entry.colormap) >= entry.num_classes
            assert all(len(c) == 3 and all(type(v) is int and 0 <= v <= 255 for v in c) for c in entry.colormap)


def load_text(path: Path, text: str | bytes) -> None:
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    try:
        registry = load_registry(path)
    except RegistryError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
        return
    check_loaded(registry)


TOKENS = [
    "datasets:", "\n", "  ", "    ", "- ", "d:", "camvid:", "1:", "null:", "~:", "num_classes:", "ignore_label:",
    "colormap:", "class_names:", "splits:", "class_weights:", "data_dir:", " ", "1", "0", "-1", "255", "256", "3.5",
    ".inf", ".nan", "-.inf", "true", "null", "yes", "pascal", "[", "]", "{", "}", ", ", ":", "&a ", "*a", "<<: ",
    "!!str ", "!!int ", "!!float ", "!!binary ", "!!set ", "!!omap ", "?", "'", '"', "#", "|", ">", "---", "...",
    "2020-13-45", "0x_", "0o9", "1_000", "1e400", "1:60", "\t", "%YAML 1.1\n", "[a, b]", "[0, 0, 0]", "[[0,0,0],[1,1,1]]",
    "{train: 3}", "a", "b", "é", "\x00", "\ufeff",
]


@pytest.mark.fault("traceback", "register")
@FUZZ
@given(st.text(max_size=300))
def test_fuzz_load_registry_on_arbitrary_text(tmp_path, text):
    load_text(tmp_path / "r.yaml", text)


@pytest.mark.fault("traceback", "register")
@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_load_registry_on_arbitrary_bytes(tmp_path, data):
    load_text(tmp_path / "r.yaml", data)


@pytest.mark.fault("traceback", "register")
@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=60).map("".join))
def test_fuzz_load_registry_on_yaml_token_soup(tmp_path, text):
    load_text(tmp_path / "r.yaml", text)


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 300), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8), st.sampled_from(["pascal", "camvid", "train", "val", "a", "b", "c", ""]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5) | st.integers(0, 3), inner, max_size=3), max_leaves=12)
counts = st.integers(1, 4)


@st.composite
def plausible_entry(draw):  # type: ignore[no-untyped-def]
    """An entry that is often valid, with one or more keys replaced by something random."""
    n = draw(counts)
    entry: dict = {
        "num_classes": n,
        "ignore_label": draw(st.sampled_from([0, 255, n])),
        "colormap": draw(st.sampled_from(["pascal", [[i, i, i] for i in range(n)]])),
        "class_names": draw(st.lists(st.sampled_from(["a", "b", "c", "d", "yes", "1"]), min_size=n, max_size=n, unique=True)),
        "splits": draw(st.dictionaries(st.sampled_from(["train", "val", "a/b", ""]), st.integers(-1, 5), max_size=2)),
        "class_weights": draw(st.none() | st.lists(st.floats(-1, 5) | st.just(float("inf")), min_size=n, max_size=n)),
    }
    if draw(st.booleans()):
        entry["data_dir"] = draw(st.text(max_size=10) | values)
    for key in draw(st.lists(st.sampled_from([*entry, "extra", 3]), max_size=3, unique=True)):
        entry[key] = draw(values)
    for key in draw(st.lists(st.sampled_from(list(entry)), max_size=1)):
        del entry[key]
    return entry


names = st.text(max_size=6) | st.integers(0, 3) | st.none() | st.booleans()


@pytest.mark.fault("traceback", "register")
@FUZZ
@given(st.dictionaries(names, plausible_entry() | values, max_size=3), st.sampled_from(["datasets", "dataset", 1]))
def test_fuzz_load_registry_on_structured_documents(tmp_path, datasets, top):
    load_text(tmp_path / "r.yaml", yaml.safe_dump({top: datasets}, allow_unicode=True))


@pytest.mark.fault("traceback", "register")
@FUZZ
@given(plausible_entry(), st.sampled_from(["d", "yes", "null", "1"]))
def test_fuzz_register_round_trips_or_refuses(tmp_path, raw, name):
    """Whatever register_dataset accepts, load_registry reads back equal; what it refuses leaves the file alone."""
    path = tmp_path / "r.yaml"
    path.write_text("# my datasets\ndatasets: {}\n")
    before = path.read_bytes()
    try:
        entry = DatasetEntry(name=name, **{k: v for k, v in raw.items()})
    except TypeError:
        return  # keys the dataclass does not have: the validator's case, covered above
    try:
        register_dataset(path, entry)
    except RegistryError:
        assert path.read_bytes() == before
        return
    loaded = load_registry(path).get(name)
    check_loaded(load_registry(path))
    assert (loaded.num_classes, loaded.ignore_label, loaded.class_names) == (entry.num_classes, entry.ignore_label, entry.class_names)
    assert loaded.class_weights == (None if entry.class_weights is None else [float(w) for w in entry.class_weights])
    assert path.read_text().startswith("# my datasets")


@pytest.mark.fault("traceback", "register")
@FUZZ
@given(st.one_of(st.text(max_size=40), st.lists(st.sampled_from(["1", "0", "-1", "inf", "nan", "1e999", "0.5", " ", "x", ""]), max_size=5).map(",".join)))
def test_fuzz_class_weights_option(text):
    try:
        weights = parse_class_weights(text, "r.yaml: dataset 'x'")
    except click.UsageError as exc:
        assert "--class-weights" in str(exc)
        return
    if weights is not None:
        assert weights and all(math.isfinite(w) and w >= 0 for w in weights) and any(weights)


@pytest.mark.fault("traceback", "register")
@FUZZ
@given(st.one_of(st.text(max_size=60), st.lists(st.sampled_from(["0", "255", "256", "1", "-1", "²", "٣", ",", " ", "\n", "#", "a"]), max_size=20).map("".join)))
def test_fuzz_colormap_file(text):
    try:
        colors = parse_colormap_text(text, "colors.txt")
    except ColormapFileError as exc:
        assert str(exc).startswith("colors.txt")
        return
    assert colors and all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in colors)
