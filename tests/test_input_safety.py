"""Issue 8, items 1 and 6, for labelme, remove-colormap, trainids and lists.

Inputs are never destroyed: an output location equal to, inside or containing an input is refused
before any work (exit 1, OutputLocationError through the GuardedGroup, one `error:` line naming
both paths), `--overwrite` and re-runs replace only files the command wrote itself, and OS faults
(full disk, permission denied, read-only file system, a path component that is a file) end in one
line naming the path and the reason, exit 1, with no temporary or staging folder left behind.

We run as root, where chmod does not deny writes, so EACCES/ENOSPC/EROFS are injected in-process
(`--workers 1` keeps the work in this process) by patching the lowest-level writes; ENOTDIR is real.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import png_bytes
from faultkit import assert_refused, assert_unchanged, snapshot
from PIL import Image

from segprep.colormaps import builtin_colormap, palette_for_png

LABELS = "__ignore__\n_background_\ncat\n"


def dead_pid() -> int:
    """A process id that no process has now (for the temporaries of a 'killed' run)."""
    for pid in range(32767, 300, -1):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            continue
    raise RuntimeError("no free pid")


def hidden(folder: Path) -> list[str]:
    """Names of hidden entries (temporaries, staging folders) in a folder."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) if folder.is_dir() else []


def fail_with(code: int):  # type: ignore[no-untyped-def]
    return OSError(code, os.strerror(code))


# --------------------------------------------------------------------------- labelme


def make_labelme(src: Path, count: int = 3, image_dir: str = "") -> None:
    """count labelme JSONs in src, each with a polygon 'cat' on an 8x10 PNG at imagePath."""
    src.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        image_path = f"{image_dir}img{i}.png"
        (src / image_path).parent.mkdir(parents=True, exist_ok=True)
        (src / image_path).write_bytes(png_bytes(rng.integers(0, 256, (8, 10, 3), dtype=np.uint8)))
        shape = {"label": "cat", "points": [[1, 1], [8, 1], [5, 6]], "shape_type": "polygon", "group_id": None, "flags": {}}
        document = {"version": "5.0.1", "flags": {}, "shapes": [shape], "imagePath": image_path, "imageData": None, "imageHeight": 8, "imageWidth": 10}
        (src / f"img{i}.json").write_text(json.dumps(document))


@pytest.fixture
def labelme_tree(tmp_path: Path) -> tuple[Path, Path]:
    """par/ann (JSONs + images) and par/labels.txt, as in the issue's report."""
    par = tmp_path / "par"
    make_labelme(par / "ann")
    labels = par / "labels.txt"
    labels.write_text(LABELS)
    return par, labels


@pytest.mark.fault("inputs", "labelme")
def test_labelme_out_containing_src_is_refused_even_with_overwrite(run_cli, labelme_tree):
    par, labels = labelme_tree
    before = snapshot(par)
    result = run_cli("labelme", par / "ann", par, "--labels", labels, "--overwrite", "--workers", 1)
    assert_refused(result, par, par / "ann")
    assert "contains the input" in result.stderr and len(result.stderr.splitlines()) == 1
    assert_unchanged(before, par)


@pytest.mark.fault("inputs", "labelme")
@pytest.mark.parametrize(
    ("out", "relation"),
    [("ann", "is the input"), ("ann/voc", "is inside the input"), ("voc", "contains the input")],
)
def test_labelme_out_overlapping_src_or_labels_is_refused(run_cli, labelme_tree, out, relation):
    par, labels = labelme_tree
    if out == "voc":  # the labels file lives inside OUT
        (par / "voc").mkdir()
        labels = par / "voc" / "labels.txt"
        labels.write_text(LABELS)
    before = snapshot(par)
    result = run_cli("labelme", par / "ann", par / out, "--labels", labels, "--overwrite", "--workers", 1)
    named = labels if out == "voc" else par / "ann"
    assert_refused(result, par / out, named)
    assert relation in result.stderr
    assert_unchanged(before, par)


@pytest.mark.fault("inputs", "labelme")
def test_labelme_overwrite_refuses_an_export_holding_an_image_it_reads(run_cli, labelme_tree):
    """JSONs whose imagePath points into an earlier export: replacing it would delete their images."""
    par, labels = labelme_tree
    voc = par / "voc"
    assert run_cli("labelme", par / "ann", voc, "--labels", labels, "--workers", 1).exit_code == 0
    relabel = par / "relabel"
    relabel.mkdir()
    document = json.loads((par / "ann" / "img0.json").read_text())
    document["imagePath"] = "../voc/JPEGImages/img0.png"
    (relabel / "img0.json").write_text(json.dumps(document))
    before = snapshot(par)
    result = run_cli("labelme", relabel, voc, "--labels", labels, "--overwrite", "--workers", 1)
    assert_refused(result, voc, "JPEGImages/img0.png")
    assert_unchanged(before, par)


@pytest.mark.fault("inputs", "labelme")
@pytest.mark.parametrize(
    ("contents", "reason"),
    [
        ({"notes.txt": "mine"}, "has no segprep_labelme.json"),
        ({"segprep_labelme.json": "{}"}, "was not written by segprep labelme"),
        ({"segprep_labelme.json": "not json"}, "is unreadable"),
    ],
)
def test_labelme_overwrite_refuses_a_folder_it_did_not_write(run_cli, labelme_tree, contents, reason):
    par, labels = labelme_tree
    out = par / "mine"
    out.mkdir()
    for name, text in contents.items():
        (out / name).write_text(text)
    before = snapshot(par)
    result = run_cli("labelme", par / "ann", out, "--labels", labels, "--overwrite", "--workers", 1)
    assert_refused(result, out, "OUT is not a folder segprep labelme wrote", reason, "refusing to delete it")
    assert_unchanged(before, par)
    assert hidden(par) == []


@pytest.mark.fault("inputs", "labelme")
def test_labelme_overwrite_refuses_its_export_once_a_user_added_files(run_cli, labelme_tree):
    par, labels = labelme_tree
    voc = par / "voc"
    assert run_cli("labelme", par / "ann", voc, "--labels", labels, "--workers", 1).exit_code == 0
    (voc / "tfrecords").mkdir()
    (voc / "tfrecords" / "train-00000-of-00001.tfrecord").write_bytes(b"precious")
    before = snapshot(par)
    result = run_cli("labelme", par / "ann", voc, "--labels", labels, "--overwrite", "--workers", 1)
    assert_refused(result, voc, "tfrecords/train-00000-of-00001.tfrecord was not written by segprep labelme")
    assert_unchanged(before, par)
    # Its own export, untouched by the user, is replaced; the result is the same export again.
    (voc / "tfrecords" / "train-00000-of-00001.tfrecord").unlink()
    (voc / "tfrecords").rmdir()
    first = snapshot(voc)
    assert run_cli("labelme", par / "ann", voc, "--labels", labels, "--overwrite", "--workers", 1).exit_code == 0
    assert_unchanged(first, voc)
    assert hidden(par) == []


@pytest.mark.fault("inputs", "labelme")
def test_labelme_cleans_the_staging_of_a_killed_run_and_restores_a_moved_export(run_cli, labelme_tree):
    par, labels = labelme_tree
    voc = par / "voc"
    assert run_cli("labelme", par / "ann", voc, "--labels", labels, "--workers", 1).exit_code == 0
    export = snapshot(voc)
    pid = dead_pid()
    # A run killed while converting left its staging folder; one killed while publishing had
    # already moved the previous export aside.
    staging = par / f".voc.segprep-{pid}.tmp"
    (staging / "SegmentationClass").mkdir(parents=True)
    (staging / ".segprep-staging").write_bytes(b"")
    (staging / "SegmentationClass" / "half.png").write_bytes(b"\x89PNG")
    voc.rename(par / f".voc.segprep-old-{pid}.tmp")
    # A folder of someone else's with a similar name, and a live process's staging, stay.
    (par / ".voc.segprep-1.tmp").mkdir()
    (par / ".voc.segprep-1.tmp" / "x").write_text("x")
    result = run_cli("labelme", par / "ann", par / "other", "--labels", labels, "--workers", 1)
    assert result.exit_code == 0, result.output
    run_cli("labelme", par / "ann", voc, "--labels", labels, "--workers", 1)  # exit 2: OUT put back, not empty
    assert_unchanged(export, voc)
    assert hidden(par) == [".voc.segprep-1.tmp"]


@pytest.mark.fault("os", "labelme")
def test_labelme_out_under_a_file_is_one_line(run_cli, labelme_tree):
    par, labels = labelme_tree
    (par / "afile").write_text("x")
    before = snapshot(par)
    result = run_cli("labelme", par / "ann", par / "afile" / "voc", "--labels", labels, "--workers", 1)
    assert_refused(result, par / "afile", "a component of the path is a file")
    assert_unchanged(before, par)


@pytest.mark.fault("os", "labelme")
def test_labelme_disk_full_while_converting_leaves_no_staging(run_cli, labelme_tree, monkeypatch):
    par, labels = labelme_tree
    before = snapshot(par)
    real = Path.write_bytes

    def full(self: Path, data: bytes) -> int:
        if self.parent.name == "SegmentationClass":
            raise fail_with(errno.ENOSPC)
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    result = run_cli("labelme", par / "ann", par / "voc", "--labels", labels, "--workers", 1)
    assert_refused(result, "SegmentationClass/img0.png: no space left on device")
    assert len(result.stderr.splitlines()) == 1
    assert_unchanged(before, par)  # no OUT, no staging


@pytest.mark.fault("os", "labelme")
@pytest.mark.parametrize(("code", "reason"), [(errno.EACCES, "permission denied"), (errno.EROFS, "read-only file system")])
def test_labelme_failed_publish_keeps_the_previous_export(run_cli, labelme_tree, monkeypatch, code, reason):
    par, labels = labelme_tree
    voc = par / "voc"
    assert run_cli("labelme", par / "ann", voc, "--labels", labels, "--workers", 1).exit_code == 0
    before = snapshot(par)
    real = Path.rename

    def refuse(self: Path, target):  # type: ignore[no-untyped-def]
        if ".segprep-" in self.name and "-old-" not in self.name and Path(target) == voc:  # staging -> OUT
            raise OSError(code, os.strerror(code), str(self), None, str(target))
        return real(self, target)

    monkeypatch.setattr(Path, "rename", refuse)
    result = run_cli("labelme", par / "ann", voc, "--labels", labels, "--overwrite", "--seed", 5, "--workers", 1)
    assert_refused(result, str(voc), reason)
    assert_unchanged(before, par)  # the old export is back in place, staging removed


# --------------------------------------------------------------------------- remove-colormap


def make_palette_labels(folder: Path, count: int = 3) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(count):
        label = rng.integers(0, 21, (6, 9), dtype=np.uint8)
        (folder / f"x{i}.png").write_bytes(png_bytes(label, "P", palette_for_png(builtin_colormap("pascal"))))


@pytest.mark.fault("inputs", "remove-colormap")
@pytest.mark.parametrize(("out", "relation"), [("src", "is the input"), ("src/raw", "is inside the input"), (".", "contains the input")])
def test_remove_colormap_out_overlapping_src_is_refused(run_cli, tmp_path, out, relation):
    src = tmp_path / "src"
    make_palette_labels(src)
    before = snapshot(tmp_path)
    result = run_cli("remove-colormap", src, tmp_path / out)
    assert_refused(result, tmp_path / out, src)
    assert relation in result.stderr
    assert_unchanged(before, tmp_path)


@pytest.mark.fault("inputs", "remove-colormap")
def test_remove_colormap_single_file_onto_itself_is_refused(run_cli, tmp_path):
    make_palette_labels(tmp_path, 1)
    before = snapshot(tmp_path)
    result = run_cli("remove-colormap", tmp_path / "x0.png", tmp_path / "x0.png")
    assert_refused(result, tmp_path / "x0.png", "is the input")
    assert_unchanged(before, tmp_path)


@pytest.mark.fault("inputs", "remove-colormap")
def test_remove_colormap_never_replaces_a_file_it_did_not_write(run_cli, tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    make_palette_labels(src)
    out.mkdir()
    (out / "x1.png").write_bytes(b"my own x1")
    before = snapshot(tmp_path)
    result = run_cli("remove-colormap", src, out, "--workers", 1)
    assert_refused(result, out / "x1.png", "was not written by segprep remove-colormap")
    assert_unchanged(before, tmp_path)  # x0 and x2 not written either
    # Its own files are replaced on a re-run, and a file already holding the result is fine.
    (out / "x1.png").unlink()
    assert run_cli("remove-colormap", src, out, "--workers", 1).exit_code == 0
    (out / "x0.png").write_bytes((out / "x0.png").read_bytes())
    (out / ".segprep-remove-colormap.json").unlink()
    assert run_cli("remove-colormap", src, out, "--workers", 1).exit_code == 0
    assert Image.open(out / "x2.png").mode == "L" and hidden(out) == [".segprep-remove-colormap.json"]


@pytest.mark.fault("os", "remove-colormap")
def test_remove_colormap_out_under_a_file(run_cli, tmp_path):
    src = tmp_path / "src"
    make_palette_labels(src)
    (tmp_path / "afile").write_text("x")
    before = snapshot(tmp_path)
    result = run_cli("remove-colormap", src, tmp_path / "afile" / "out", "--workers", 1)
    assert_refused(result, tmp_path / "afile" / "out", "a component of the path is a file")
    assert_unchanged(before, tmp_path)


@pytest.mark.fault("os", "remove-colormap")
def test_remove_colormap_disk_full_writes_nothing_and_leaves_no_temporary(run_cli, tmp_path, monkeypatch):
    import segprep.safewrite as safewrite

    src, out = tmp_path / "src", tmp_path / "out"
    make_palette_labels(src)
    assert run_cli("remove-colormap", src, out, "--workers", 1).exit_code == 0
    (out / "keep.txt").write_text("unrelated")
    before = snapshot(tmp_path)
    real_open = open

    def full(path, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        if "x2.png" in str(path) and "w" in mode:
            raise fail_with(errno.ENOSPC)
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(safewrite, "open", full, raising=False)
    result = run_cli("remove-colormap", src, out, "--unknown", "ignore", "--ignore-label", 7, "--workers", 1)
    assert_refused(result, out / "x2.png", "no space left on device")
    assert_unchanged(before, tmp_path)  # neither x0 nor x1 replaced, no temporaries


@pytest.mark.fault("os", "remove-colormap")
def test_remove_colormap_read_only_rename_and_stale_temporaries(run_cli, tmp_path, monkeypatch):
    src, out = tmp_path / "src", tmp_path / "out"
    make_palette_labels(src)
    out.mkdir()
    stale = out / f".x0.png.segprep-{dead_pid()}.tmp"
    stale.write_bytes(b"\x89PNG half")
    before = snapshot(src)
    real = os.replace

    def read_only(a, b):  # type: ignore[no-untyped-def]
        if str(b).endswith(".png"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(a), None, str(b))
        return real(a, b)

    monkeypatch.setattr(os, "replace", read_only)
    result = run_cli("remove-colormap", src, out, "--workers", 1)
    assert_refused(result, out / "x0.png", "read-only file system")
    assert not stale.exists()  # the killed run's temporary is gone
    assert [p.name for p in out.iterdir() if p.suffix == ".png" or p.name.endswith(".tmp")] == []
    assert_unchanged(before, src)


# --------------------------------------------------------------------------- trainids


def make_cityscapes(root: Path) -> list[Path]:
    """Two gtFine polygon files with the official sibling files beside them."""
    jsons = []
    for i in range(2):
        folder = root / "gtFine" / "train" / "aachen"
        folder.mkdir(parents=True, exist_ok=True)
        base = f"aachen_{i:06d}_000019_gtFine"
        document = {"imgHeight": 8, "imgWidth": 10, "objects": [{"label": "road", "polygon": [[0, 0], [9, 0], [9, 7]]}]}
        (folder / f"{base}_polygons.json").write_text(json.dumps(document))
        for suffix in ("_labelIds.png", "_color.png", "_instanceIds.png"):
            (folder / f"{base}{suffix}").write_bytes(f"official {suffix}".encode())
        jsons.append(folder / f"{base}_polygons.json")
    return jsons


@pytest.mark.fault("inputs", "trainids")
def test_trainids_refuses_an_output_name_of_an_official_file(run_cli, tmp_path, monkeypatch):
    import segprep.trainids as trainids

    root = tmp_path / "cityscapes"
    make_cityscapes(root)
    before = snapshot(root)
    monkeypatch.setattr(trainids, "_OUTPUT_SUFFIX", "_labelIds")  # a naming mistake that would destroy inputs
    result = run_cli("trainids", root, "--workers", 1)
    official = root / "gtFine" / "train" / "aachen" / "aachen_000000_000019_gtFine_labelIds.png"
    assert_refused(result, official, "would replace an input or an official Cityscapes file")
    assert_unchanged(before, root)


@pytest.mark.fault("inputs", "trainids")
def test_trainids_output_check_refuses_inputs_and_collisions(tmp_path):
    from segprep.errors import OutputLocationError
    from segprep.trainids import _Task, check_outputs

    a = tmp_path / "a_gtFine_polygons.json"
    b = tmp_path / "b_gtFine_polygons.json"
    with pytest.raises(OutputLocationError, match="would replace an input"):
        check_outputs([_Task(a, b, "polygons", None), _Task(b, tmp_path / "b_gtFine_labelTrainIds.png", "polygons", None)])
    out = tmp_path / "a_gtFine_labelTrainIds.png"
    with pytest.raises(OutputLocationError, match="of both"):
        check_outputs([_Task(a, out, "polygons", None), _Task(b, out, "polygons", None)])
    check_outputs([_Task(a, out, "polygons", None), _Task(b, tmp_path / "b_gtFine_labelTrainIds_car.png", "polygons", None)])


@pytest.mark.fault("os", "trainids")
def test_trainids_killed_run_temporaries_are_cleaned_and_outputs_stay_whole(run_cli, tmp_path):
    root = tmp_path / "cityscapes"
    jsons = make_cityscapes(root)
    folder = jsons[0].parent
    pid = dead_pid()
    half = [folder / f".aachen_000000_000019_gtFine_labelTrainIds.png.segprep-{pid}.tmp",
            folder / f".aachen_000001_000019_gtFine_labelTrainIds_car.png.{pid}.tmp"]  # the older naming too
    for path in half:
        path.write_bytes(b"\x89PNG trunc")
    alive = folder / f".aachen_000000_000019_gtFine_labelTrainIds.png.segprep-{os.getppid()}.tmp"
    alive.write_bytes(b"a live run's")
    before = snapshot(*jsons, *folder.glob("*_labelIds.png"), *folder.glob("*_color.png"))
    result = run_cli("trainids", root, "--workers", 1, "--quiet")
    assert result.exit_code == 0, result.output
    assert not any(p.exists() for p in half) and alive.exists()
    assert_unchanged(before, *jsons, *folder.glob("*_labelIds.png"), *folder.glob("*_color.png"))
    assert Image.open(folder / "aachen_000000_000019_gtFine_labelTrainIds.png").mode == "L"


@pytest.mark.fault("os", "trainids")
@pytest.mark.parametrize(
    ("where", "code", "reason"),
    [("write", errno.ENOSPC, "no space left on device"), ("write", errno.EACCES, "permission denied"), ("rename", errno.EROFS, "read-only file system")],
)
def test_trainids_write_fault_stops_with_one_line_and_no_temporary(run_cli, tmp_path, monkeypatch, where, code, reason):
    import segprep.fileio as fileio

    root = tmp_path / "cityscapes"
    jsons = make_cityscapes(root)
    before = snapshot(root)
    target = jsons[1].with_name("aachen_000001_000019_gtFine_labelTrainIds.png")
    if where == "write":
        real_create = fileio._create_temporary

        def fault(tmp):  # type: ignore[no-untyped-def]
            if "aachen_000001" in str(tmp):
                raise fail_with(code)
            return real_create(tmp)

        monkeypatch.setattr(fileio, "_create_temporary", fault)
    else:
        real = os.replace

        def fault(a, b):  # type: ignore[no-untyped-def]
            if Path(b) == target:
                raise OSError(code, os.strerror(code), str(a), None, str(b))
            return real(a, b)

        monkeypatch.setattr(os, "replace", fault)
    result = run_cli("trainids", root, "--workers", 1, "--quiet")
    assert_refused(result, target, reason)
    assert len(result.stderr.splitlines()) == 1
    assert not target.exists() and hidden(jsons[1].parent) == []
    after = {k: v for k, v in snapshot(root).items() if "labelTrainIds" not in k}
    assert after == {k: v for k, v in before.items()}  # every input byte-identical


# --------------------------------------------------------------------------- lists


@pytest.mark.fault("inputs", "lists")
@pytest.mark.parametrize("out", ["images", "labels/sub"])
def test_lists_out_inside_an_input_folder_is_refused(run_cli, folder_dataset, out):
    before = snapshot(folder_dataset)
    result = run_cli("lists", folder_dataset, "--out", folder_dataset / out)
    assert_refused(result, folder_dataset / out / "train.txt", folder_dataset / out.split("/")[0])
    assert_unchanged(before, folder_dataset)


@pytest.mark.fault("inputs", "lists")
def test_lists_split_names_cannot_escape_the_out_folder(run_cli, folder_dataset):
    before = snapshot(folder_dataset)
    result = run_cli("lists", folder_dataset, "--split", "../images/s000=0.5")
    assert result.exit_code == 2 and "bad split name '../images/s000'" in result.stderr
    assert_unchanged(before, folder_dataset)


@pytest.mark.fault("inputs", "lists")
@pytest.mark.parametrize("split", ["train", "class_names"])
def test_lists_never_replace_a_hand_written_list(run_cli, folder_dataset, split):
    if split == "train":
        (folder_dataset / "train.txt").write_text("my_curated_sample\n")
    before = snapshot(folder_dataset)
    result = run_cli("lists", folder_dataset, "--split", f"{split}=0.5", "--split", "val=0.5")
    assert_refused(result, folder_dataset / f"{split}.txt", "was not written by segprep lists")
    assert_unchanged(before, folder_dataset)  # val.txt not written either


@pytest.mark.fault("inputs", "lists")
def test_lists_replace_their_own_lists_and_accept_identical_ones(run_cli, folder_dataset):
    assert run_cli("lists", folder_dataset, "--seed", 1).exit_code == 0
    first = (folder_dataset / "train.txt").read_text()
    assert run_cli("lists", folder_dataset, "--seed", 2).exit_code == 0
    assert (folder_dataset / "train.txt").read_text() != first
    (folder_dataset / ".segprep-lists.json").unlink()  # identical content needs no record
    assert run_cli("lists", folder_dataset, "--seed", 2).exit_code == 0
    assert hidden(folder_dataset) == [".segprep-lists.json"]


@pytest.mark.fault("os", "lists")
def test_lists_out_under_a_file(run_cli, folder_dataset, tmp_path):
    (tmp_path / "afile").write_text("x")
    before = snapshot(folder_dataset)
    result = run_cli("lists", folder_dataset, "--out", tmp_path / "afile" / "lists")
    assert_refused(result, tmp_path / "afile" / "lists", "a component of the path is a file")
    assert_unchanged(before, folder_dataset)


@pytest.mark.fault("os", "lists")
@pytest.mark.parametrize(("code", "reason"), [(errno.ENOSPC, "no space left on device"), (errno.EACCES, "permission denied")])
def test_lists_write_fault_keeps_the_old_lists_and_no_temporary(run_cli, folder_dataset, monkeypatch, code, reason):
    import segprep.safewrite as safewrite

    assert run_cli("lists", folder_dataset, "--seed", 1).exit_code == 0
    before = snapshot(folder_dataset)
    real_open = open

    def fault(path, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(path).startswith(str(folder_dataset / ".val.txt")) and "w" in mode:
            raise fail_with(code)
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(safewrite, "open", fault, raising=False)
    result = run_cli("lists", folder_dataset, "--seed", 2)
    assert_refused(result, folder_dataset / "val.txt", reason)
    assert_unchanged(before, folder_dataset)  # train.txt not replaced either, sidecar as it was
