"""Fault injection for the TFRecord writer behind `convert` and `tfrecord`.

Each case builds a small folder dataset, injects one fault (an output location that overlaps the
inputs, another writer, a foreign shard, a killed run's leftovers, a failing disk) and checks what
a user would: the exit code, one `error:` line naming the file, the inputs byte-identical, no
output that looks finished, and the registry unchanged.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_folder_dataset, png_bytes
from faultkit import assert_refused, assert_unchanged, finished_looking, snapshot


def convert(run_cli, root: Path, out: Path, *extra: str):  # type: ignore[no-untyped-def]
    return run_cli("convert", "folder", "--root", root, "--out", out, "--name", "toy", "--split", "train=0.7",
                   "--split", "val=0.3", "--num-shards", "2", "--workers", "1", "--quiet", *extra)


def break_label(root: Path, stem: str = "s004") -> Path:
    path = root / "labels" / f"{stem}.png"
    path.write_bytes(png_bytes(np.full((16, 24), 77, np.uint8), "L"))
    return path


@pytest.mark.fault("inputs", "convert")
@pytest.mark.parametrize("where", ["same", "inside", "containing", "images"])
def test_convert_refuses_an_out_that_overlaps_the_root(run_cli, folder_dataset, registry, where):
    out = {"same": folder_dataset, "inside": folder_dataset / "tf", "containing": folder_dataset.parent,
           "images": folder_dataset / "images"}[where]
    before = snapshot(folder_dataset.parent)
    result = convert(run_cli, folder_dataset, out)
    assert_refused(result, out)
    assert_unchanged(before, folder_dataset.parent)


@pytest.mark.fault("inputs", "tfrecord")
def test_tfrecord_refuses_an_out_that_holds_input_files(run_cli, folder_dataset, registry, tmp_path):
    lst = tmp_path / "lists" / "train.txt"
    lst.parent.mkdir()
    lst.write_text("s000\ns001\n")
    before = snapshot(folder_dataset, lst.parent, registry)
    for out in (lst.parent, folder_dataset / "labels", tmp_path):
        result = run_cli("tfrecord", lst, "--dataset", "camvid", "--out", out, "--image-dir", folder_dataset / "images",
                         "--label-dir", folder_dataset / "labels", "--quiet")
        assert_refused(result, out)
    assert_unchanged(before, folder_dataset, lst.parent, registry)


@pytest.mark.fault("inputs", "convert")
def test_shards_segprep_did_not_write_are_never_replaced(run_cli, folder_dataset, registry, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    theirs = out / "train-00000-of-00002.tfrecord"  # e.g. written by DeepLab's own converter
    theirs.write_bytes(b"their records")
    before = snapshot(out, registry)
    result = convert(run_cli, folder_dataset, out)
    assert_refused(result, out, theirs.name)
    assert_unchanged(before, out, registry)


@pytest.mark.fault("writer", "convert")
def test_a_second_writer_is_refused_while_the_first_holds_the_lock(run_cli, folder_dataset, registry, tmp_path):
    from segprep.outlock import exclusive_output

    out = tmp_path / "out"
    with exclusive_output(out):
        before = snapshot(out, registry)
        result = convert(run_cli, folder_dataset, out)
        assert_refused(result, out, f"pid {os.getpid()}")
        assert_unchanged(before, out, registry)
    assert not out.exists()  # the first "run" wrote nothing: its folder is gone with its lock
    assert convert(run_cli, folder_dataset, out).exit_code == 0


@pytest.mark.fault("writer", "convert")
def test_a_lock_left_by_a_killed_process_does_not_block(run_cli, folder_dataset, registry, tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from segprep.outlock import exclusive_output\n"
        "with exclusive_output(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)\n"), str(out)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert_refused(convert(run_cli, folder_dataset, out), "another segprep run")
    finally:
        holder.kill()
        holder.wait()
    assert (out / ".segprep.lock").exists()  # kill -9 left the file, but the kernel dropped the lock
    result = convert(run_cli, folder_dataset, out)
    assert result.exit_code == 0, result.output
    assert not (out / ".segprep.lock").exists()


@pytest.mark.fault("writer", "convert")
def test_temporaries_of_killed_runs_are_cleaned(run_cli, folder_dataset, registry, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    leftovers = [".tmp-train-chunk-999-00000-0000000", ".tmp-train-00001-of-00002.tfrecord",
                 ".tmp-test-00000-of-00001.tfrecord", ".train.manifest.json.999.tmp"]
    for name in leftovers:
        (out / name).write_bytes(b"half")
    result = convert(run_cli, folder_dataset, out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []
    assert run_cli("verify", out).exit_code == 0


@pytest.mark.fault("writer", "convert")
@pytest.mark.fault("registry", "convert")
def test_a_failed_rerun_keeps_the_earlier_output_and_the_registry(run_cli, folder_dataset, registry, tmp_path):
    out = tmp_path / "out"
    assert convert(run_cli, folder_dataset, out).exit_code == 0
    before = snapshot(out, registry)
    bad = break_label(folder_dataset)
    result = convert(run_cli, folder_dataset, out)
    assert_refused(result, bad)
    assert_unchanged(before, out, registry)
    assert run_cli("verify", out).exit_code == 0


@pytest.mark.fault("registry", "convert")
def test_a_failed_convert_registers_nothing(run_cli, folder_dataset, registry, tmp_path):
    bad = break_label(folder_dataset)
    before = snapshot(registry)
    result = convert(run_cli, folder_dataset, tmp_path / "out")
    assert_refused(result, bad)
    assert_unchanged(before, registry)
    failed = result.stderr.split("nothing written for split(s) ")[1].split(" ")[0]
    assert not [name for name in finished_looking(tmp_path / "out") if name.startswith(failed)]


@pytest.mark.fault("registry", "convert")
def test_a_failed_convert_does_not_repoint_data_dir(run_cli, folder_dataset, registry, tmp_path):
    from segprep.registry import load_registry

    good = tmp_path / "good"
    assert convert(run_cli, folder_dataset, good).exit_code == 0
    before = snapshot(registry)
    break_label(folder_dataset, "s001")
    result = convert(run_cli, folder_dataset, tmp_path / "bad")
    assert result.exit_code == 1
    assert_unchanged(before, registry)
    assert load_registry(registry).get("toy").data_dir == str(good.resolve())


def _fail_with(monkeypatch, target: str, code: int) -> None:
    """Make `target` (module.attr) raise OSError(code) naming the file it was given."""
    module_name, attr = target.rsplit(".", 1)
    module = __import__(module_name, fromlist=[attr])
    original = getattr(module, attr)

    def failing(*args, **kwargs):  # type: ignore[no-untyped-def]
        path = next((a for a in args if isinstance(a, (str, Path))), None)
        name = getattr(args[0], "name", path) if args else path
        raise OSError(code, os.strerror(code), str(name))

    monkeypatch.setattr(module, attr, failing)
    return original


@pytest.mark.fault("os", "convert")
@pytest.mark.parametrize("code, reason", [(errno.ENOSPC, "no space left on device"), (errno.EACCES, "permission denied"),
                                          (errno.EROFS, "read-only file system")])
def test_os_faults_while_writing_leave_nothing(run_cli, folder_dataset, registry, tmp_path, monkeypatch, code, reason):
    out = tmp_path / "out"
    _fail_with(monkeypatch, "segprep.writer.append_file", code)
    before = snapshot(folder_dataset, registry)
    result = convert(run_cli, folder_dataset, out)
    assert_refused(result, reason, str(out))
    assert len(result.stderr.strip().splitlines()) == 1
    assert_unchanged(before, folder_dataset, registry)
    assert not out.exists() or sorted(p.name for p in out.iterdir()) == []


@pytest.mark.fault("os", "convert")
def test_an_out_below_a_file_is_one_line(run_cli, folder_dataset, registry, tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    result = convert(run_cli, folder_dataset, blocker / "out")
    assert_refused(result, blocker, "not a folder")


def _mount_tmpfs(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True).returncode == 0


@pytest.mark.fault("os", "convert")
@pytest.mark.parametrize("options, reason", [("size=96k", "no space left on device"), ("ro", "read-only file system")])
def test_real_full_and_read_only_disks(run_cli, registry, tmp_path, options, reason):
    root = make_folder_dataset(tmp_path / "data", count=12, size=(64, 48))
    mount = tmp_path / "disk"
    if not _mount_tmpfs(mount, options):
        pytest.skip("cannot mount a tmpfs here (needs root in a mount namespace that allows it)")
    try:
        out = mount / "out"
        before = snapshot(root, registry)
        result = run_cli("convert", "folder", "--root", root, "--out", out, "--name", "toy", "--split", "train=1", "--quiet")
        assert_refused(result, reason, str(mount))
        assert_unchanged(before, root, registry)
        assert finished_looking(out) == []
        assert not out.exists() or [p.name for p in out.iterdir()] == []
    finally:
        subprocess.run(["umount", str(mount)], check=False)


@pytest.mark.fault("traceback", "convert")
def test_a_bug_is_one_line_and_debug_shows_the_traceback(run_cli, folder_dataset, registry, tmp_path, monkeypatch):
    import segprep.convert

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyError("boom")

    monkeypatch.setattr(segprep.convert, "write_layout", broken)
    result = convert(run_cli, folder_dataset, tmp_path / "out")
    assert_refused(result, "internal error: KeyError", "this is a bug in segprep", "--debug", code=3)
    with pytest.raises(KeyError):
        run_cli("--debug", "convert", "folder", "--root", folder_dataset, "--out", tmp_path / "out", "--name", "toy")
    monkeypatch.setenv("SEGPREP_DEBUG", "1")
    with pytest.raises(KeyError):
        convert(run_cli, folder_dataset, tmp_path / "out")
