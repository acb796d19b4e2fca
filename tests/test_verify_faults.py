"""Issue 8 item 5: `segprep verify` trusts nothing.

One real output is made with `segprep convert folder` (splits train, val, trainval; train in four
shards, the last one empty), copied for each case, damaged one way, and verified: every damage
must end in exit 1 with an `error:` line naming the damaged file, never a traceback or a hang.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import REPO, make_folder_dataset
from faultkit import assert_refused, assert_unchanged, snapshot

TRAIN = "train.manifest.json"
SHARD0 = "train-00000-of-00004.tfrecord"
SHARD1 = "train-00001-of-00004.tfrecord"
EMPTY_SHARD = "train-00003-of-00004.tfrecord"


def _invoke(registry: Path, *args: object) -> Any:
    from segprep.cli.main import main

    return CliRunner().invoke(main, [str(a) for a in args], env={"SEGPREP_REGISTRY": str(registry)}, catch_exceptions=False)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a converted output folder, its registry), made once for the module and never changed."""
    base = tmp_path_factory.mktemp("verify")
    registry = base / "registry.yaml"
    shutil.copy(REPO / "dataset_registry.yaml", registry)
    data = make_folder_dataset(base / "data")
    out = base / "out"
    result = _invoke(registry, "convert", "folder", "--root", data, "--out", out, "--name", "toy", "--workers", "1", "-q")
    assert result.exit_code == 0, result.output
    assert (out / EMPTY_SHARD).stat().st_size == 0 and (out / SHARD0).stat().st_size > 0
    return out, registry


@pytest.fixture
def output(pristine: tuple[Path, Path], tmp_path: Path) -> Path:
    """A private copy of the pristine output for one test to damage."""
    out = tmp_path / "out"
    shutil.copytree(pristine[0], out)
    return out


@pytest.fixture
def verify(pristine: tuple[Path, Path]) -> Callable[[Path], Any]:
    return lambda out: _invoke(pristine[1], "verify", out, "--workers", "1", "-q")


def _edit_manifest(out: Path, change: Callable[[dict[str, Any]], None], name: str = TRAIN) -> None:
    document = json.loads((out / name).read_text())
    change(document)
    (out / name).write_text(json.dumps(document))


def _assert_single_lines(result: Any) -> None:
    """Every line of stderr is an `error:` line: no message spilled over several lines."""
    assert all(line.startswith("error: ") for line in result.stderr.splitlines()), result.stderr


@pytest.mark.fault("verify", "verify")
def test_undamaged_output_verifies_and_is_not_touched(output, verify):
    before = snapshot(output)
    result = verify(output)
    assert result.exit_code == 0, result.output
    assert "ok: 20 records in 3 split(s)" in result.stdout
    assert_unchanged(before, output)


# --- the manifest: missing, unreadable, not JSON, not a segprep manifest --------------------

def _delete(out: Path) -> None:
    (out / TRAIN).unlink()


def _truncate(out: Path) -> None:
    data = (out / TRAIN).read_bytes()
    (out / TRAIN).write_bytes(data[: len(data) // 2])


def _empty(out: Path) -> None:
    (out / TRAIN).write_bytes(b"")


def _binary(out: Path) -> None:
    (out / TRAIN).write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")


def _json_list(out: Path) -> None:
    (out / TRAIN).write_text("[1, 2, 3]")


def _other_format(out: Path) -> None:
    _edit_manifest(out, lambda d: d.update(format="segprep-manifest/99"))


def _folder_instead(out: Path) -> None:
    (out / TRAIN).unlink()
    (out / TRAIN).mkdir()


def _nan(out: Path) -> None:
    text = (out / TRAIN).read_text().replace('"num_records": 9', '"num_records": NaN')
    assert "NaN" in text
    (out / TRAIN).write_text(text)


def _huge_integer(out: Path) -> None:
    text = (out / TRAIN).read_text().replace('"num_records": 9', '"num_records": ' + "9" * 5000)
    (out / TRAIN).write_text(text)


def _renamed(out: Path) -> None:
    (out / TRAIN).rename(out / "other.manifest.json")


@pytest.mark.fault("verify", "verify")
@pytest.mark.parametrize(
    ("damage", "named", "reason"),
    [
        (_delete, SHARD0, "has no train.manifest.json"),
        (_truncate, TRAIN, "not valid JSON"),
        (_empty, TRAIN, "not valid JSON"),
        (_binary, TRAIN, "not UTF-8"),
        (_json_list, TRAIN, "not a segprep manifest"),
        (_other_format, TRAIN, "not a segprep manifest"),
        (_folder_instead, TRAIN, "is a folder, not a file"),
        (_nan, TRAIN, "not a segprep manifest"),
        (_huge_integer, TRAIN, "not a segprep manifest"),
        (_renamed, "other.manifest.json", "should be named train.manifest.json"),
    ],
    ids=lambda v: getattr(v, "__name__", None),
)
def test_unusable_manifest_is_an_error(output, verify, damage, named, reason):
    damage(output)
    result = verify(output)
    assert_refused(result, output / named, reason)
    _assert_single_lines(result)


@pytest.mark.fault("verify", "verify")
def test_missing_manifest_names_every_orphan_shard(output, verify):
    (output / TRAIN).unlink()
    result = verify(output)
    assert_refused(result, *(output / f"train-{i:05d}-of-00004.tfrecord" for i in range(4)))
    assert "val-00000-of-00001.tfrecord" not in result.stderr  # the other splits still verify


# --- the manifest is JSON of the right format, but structurally wrong -----------------------

def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A change that sets document[a][b]... (path 'a.b.0.c') to value."""

    def change(document: dict[str, Any]) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        target: Any = document
        for key in parents:
            target = target[key]
        target[last] = value

    return change


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = document
        for key in parents:
            target = target[int(key) if key.isdigit() else key]
        del target[last]

    return change


def _duplicate_shard(document: dict[str, Any]) -> None:
    document["shards"][1]["file"] = document["shards"][0]["file"]


def _extra_sample(document: dict[str, Any]) -> None:
    document["samples"].append(dict(document["samples"][-1]))


@pytest.mark.fault("verify", "verify")
@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (_drop("samples"), "'samples' is missing"),
        (_drop("shards"), "'shards' is missing"),
        (_drop("samples.0.image"), "'samples[0].image' is missing"),
        (_drop("parameters.registry_entry"), "'parameters.registry_entry' is missing"),
        (_set("num_records", "9"), "'num_records' must be an integer"),
        (_set("num_records", True), "'num_records' must be an integer"),
        (_set("num_records", -1), "outside"),
        (_set("samples", {}), "'samples' must be a list"),
        (_set("samples.0", "s000"), "'samples[0]' must be an object"),
        (_set("samples.0.shard", 4), "'samples[0].shard' is 4, outside [0, 3]"),
        (_set("samples.0.shard", -1), "'samples[0].shard' is -1"),
        (_set("samples.0.height", 0), "'samples[0].height' is 0"),
        (_set("samples.0.image.sha256", "abc"), "not a sha256 hex digest"),
        (_set("samples.0.histogram", {"x": 1}), "not a label value"),
        (_set("samples.0.histogram", {"0": 1}), "counts 1 pixels"),
        (_set("num_records", 10), "'num_records' is 10"),
        (_extra_sample, "'samples' lists 10"),
        (_set("num_shards", 5), "'num_shards' is 5 but 'shards' lists 4"),
        (_duplicate_shard, "listed twice"),
        (_set("shards.0.file", "../../etc/passwd"), "expected train-00000-of-00004.tfrecord"),
        (_set("shards.0.records", 2), "'num_records' is 9 but 'samples' lists 9 and the shards hold 8"),
        (_set("samples.2.shard", 1), "but 2 sample(s) name shard 0"),
        (_set("skipped", [{"name": 1}]), "skipped[0]"),
        (_set("samples.0.name", "\ud800"), "is not valid Unicode"),
        (_set("split", "a\nb"), "'split' 'a\\nb' is not a split name"),
        (_set("split", "val"), "expected val-00000-of-00004.tfrecord"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_structurally_wrong_manifest_is_an_error(output, verify, change, reason):
    _edit_manifest(output, change)
    result = verify(output)
    assert_refused(result, output / TRAIN, reason)
    _assert_single_lines(result)


# --- the manifest is sound but disagrees with the shards ------------------------------------

def _fewer_records(document: dict[str, Any]) -> None:
    """A consistent manifest that lists one record fewer in shard 0 than the shard holds."""
    del document["samples"][0]
    document["shards"][0]["records"] -= 1
    document["num_records"] -= 1


def _taller(document: dict[str, Any]) -> None:
    """A consistent manifest that says sample 0 (24x16) has one row more."""
    sample = document["samples"][0]
    sample["height"] += 1
    sample["histogram"]["0"] += sample["width"]


def _more_records(document: dict[str, Any]) -> None:
    """A consistent manifest that lists one record more in shard 0 than the shard holds."""
    extra = dict(document["samples"][0])
    document["samples"].insert(0, extra)
    document["shards"][0]["records"] += 1
    document["num_records"] += 1


@pytest.mark.fault("verify", "verify")
@pytest.mark.parametrize(
    ("change", "shard", "reason"),
    [
        (_set("shards.0.bytes", 1), SHARD0, "bytes, train.manifest.json says 1"),
        (_fewer_records, SHARD0, "3 records, manifest says 2"),
        (_more_records, SHARD0, "3 records, manifest says 4"),
        (_taller, SHARD0, "image/height is 16, manifest says 17"),
        (_set("samples.0.name", "renamed"), SHARD0, "image/filename is b's000', manifest says b'renamed'"),
        (_set("samples.0.image.format", "jpeg"), SHARD0, "image/format is b'png', manifest says b'jpeg'"),
        (_set("samples.0.label.sha256", "0" * 64), SHARD0, "image/segmentation/class/encoded sha256"),
        (_set("samples.0.image.sha256", "f" * 64), SHARD0, "image/encoded sha256"),
    ],
    ids=lambda v: v if isinstance(v, str) and "tfrecord" not in v else None,
)
def test_manifest_that_disagrees_with_its_shards(output, verify, change, shard, reason):
    _edit_manifest(output, change)
    result = verify(output)
    assert_refused(result, output / shard, reason)


@pytest.mark.fault("verify", "verify")
def test_damaged_shards(output, verify):
    data = (output / SHARD0).read_bytes()
    (output / SHARD0).write_bytes(data[:-10])
    flipped = bytearray((output / SHARD1).read_bytes())
    flipped[100] ^= 0x01
    (output / SHARD1).write_bytes(bytes(flipped))
    result = verify(output)
    assert_refused(result, f"{output / SHARD0}: truncated record", f"{output / SHARD1}: bad data CRC")


# --- files that no manifest explains ---------------------------------------------------------

def _fifo(path: Path) -> None:
    path.unlink(missing_ok=True)
    os.mkfifo(path)


@pytest.mark.fault("verify", "verify")
@pytest.mark.parametrize(
    ("make", "named", "reason"),
    [
        (lambda o: (o / "train-00000-of-00009.tfrecord").write_bytes(b""), "train-00000-of-00009.tfrecord", "shard not listed in train.manifest.json"),
        (lambda o: shutil.copy(o / SHARD0, o / "test-00000-of-00001.tfrecord"), "test-00000-of-00001.tfrecord", "has no test.manifest.json"),
        (lambda o: shutil.copy(o / SHARD0, o / f"{SHARD0}.bak"), f"{SHARD0}.bak", "readers of train-* would take it"),
        (lambda o: (o / "stray.tfrecord").write_bytes(b""), "stray.tfrecord", "listed in no manifest"),
        (lambda o: shutil.copy(o / SHARD0, o / f".tmp-{SHARD0}"), f".tmp-{SHARD0}", "temporary file"),
        (lambda o: (o / ".tmp-train-chunk-123-00000-0000000").write_bytes(b"x"), ".tmp-train-chunk-123-00000-0000000", "temporary file"),
        (lambda o: (o / f".{TRAIN}.4242.tmp").write_text("{"), f".{TRAIN}.4242.tmp", "temporary file"),
        (lambda o: (o / ".train.journal.jsonl").write_text("{}\n"), ".train.journal.jsonl", "journal of an unfinished run"),
        (lambda o: shutil.copy(o / SHARD0, o / f".staged-{SHARD0}"), f".staged-{SHARD0}", "staged shard of an unfinished run"),
        (lambda o: ((o / SHARD0).unlink(), (o / SHARD0).mkdir()), SHARD0, "is not a regular file"),
        (lambda o: _fifo(o / SHARD1), SHARD1, "is not a regular file"),
        (lambda o: (o / SHARD1).unlink(), SHARD1, "is missing"),
        (lambda o: ((o / SHARD1).unlink(), (o / SHARD1).symlink_to(o / "nowhere")), SHARD1, "is missing"),
    ],
    ids=lambda v: v if isinstance(v, str) and " " in v else None,
)
def test_files_no_manifest_explains(output, verify, make, named, reason):
    make(output)
    result = verify(output)
    assert_refused(result, output / named, reason)


@pytest.mark.fault("verify", "verify")
def test_orphan_fifo_does_not_hang(output, verify):
    (output / TRAIN).unlink()
    _fifo(output / SHARD1)
    result = verify(output)
    assert_refused(result, output / SHARD1)


@pytest.mark.fault("verify", "verify")
def test_folder_being_written_is_an_error(output, verify):
    lock = output / ".segprep.lock"
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        assert_refused(verify(output), lock, "writing into this folder now")
    assert verify(output).exit_code == 0  # a stale, unlocked lock file is harmless


@pytest.mark.fault("verify", "verify")
def test_empty_or_foreign_folder_is_an_error(tmp_path, verify):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_refused(verify(empty), empty, "no *.manifest.json")
    (empty / "notes.txt").write_text("hello")
    assert_refused(verify(empty), empty, "no *.manifest.json")


@pytest.mark.fault("verify", "inspect")
def test_inspect_survives_a_broken_manifest(output, pristine):
    _truncate(output)
    shutil.copy(output / SHARD0, output / f".staged-{SHARD0}")  # a writer's work in progress is no split
    result = _invoke(pristine[1], "inspect", output, "--json")
    assert_refused(result, output / TRAIN, "reading the split's records instead")
    report = json.loads(result.stdout)
    assert sorted(report["splits"]) == ["train", "trainval", "val"]
    assert report["splits"]["train"]["records"] == 9  # read from the shards instead
    assert report["warnings"] and str(output / TRAIN) in report["warnings"][0]


@pytest.mark.fault("verify", "inspect")
def test_inspect_survives_damaged_shards(output, pristine):
    for name in ("train.manifest.json", "val.manifest.json", "trainval.manifest.json"):
        (output / name).unlink()
    flipped = bytearray((output / SHARD1).read_bytes())
    flipped[100] ^= 0x01
    (output / SHARD1).write_bytes(bytes(flipped))
    _fifo(output / "val-00000-of-00001.tfrecord")
    result = _invoke(pristine[1], "inspect", output, "--dataset", "toy", "--json")
    assert_refused(result, f"{output / SHARD1}: bad data CRC", output / "val-00000-of-00001.tfrecord")
    assert json.loads(result.stdout)["splits"]["train"]["records"] == 6
