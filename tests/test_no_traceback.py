"""A sweep of misuses over every segprep command: each ends in a clear message, never a traceback.

The inputs are the kinds of thing a new user passes by mistake: an empty folder, a folder of
garbage files, a binary file where text is expected, a registry that is not YAML, a dataset
folder in the wrong layout. Every run must exit 1 (data) or 2 (usage) with an `error:` or
click usage line, and no "internal error" (which would mean a bug reached the user).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from segprep.cli.main import main

QUIET_COMMANDS = ("convert", "labelme", "trainids", "tfrecord", "remove-colormap", "verify")


@pytest.fixture
def junk(tmp_path: Path) -> dict[str, Path]:
    empty = tmp_path / "empty"
    empty.mkdir()
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    for name in ("a.png", "b.jpg", "c.json", "train.txt", "x.tfrecord", "train-00000-of-00001.tfrecord",
                 "train.manifest.json", "labels.txt", "class_names.txt"):
        (garbage / name).write_bytes(b"\x00\xff\xfe garbage \x89PNG\r\n")
    for sub in ("images", "labels", "annotations", "JPEGImages", "SegmentationClass", "leftImg8bit", "gtFine",
                "training", "trainannot", "train", "ImageSets"):
        (garbage / sub).mkdir()
        (garbage / sub / "z.png").write_bytes(b"not a png")
    text = tmp_path / "binary.txt"
    text.write_bytes(b"\xff\xfe\x00\x01 not utf-8 \x80")
    registry = tmp_path / "registry.yaml"
    registry.write_bytes(b"datasets: [\x00 not: yaml: at: all")
    return {"empty": empty, "garbage": garbage, "binary": text, "registry": registry, "out": tmp_path / "out"}


def _cases(j: dict[str, Path]) -> list[list[str]]:
    g, e, b, o = (str(j[k]) for k in ("garbage", "empty", "binary", "out"))
    cases: list[list[str]] = []
    for layout in ("pascal_voc_seg", "cityscapes", "camvid", "kitti_road", "ade20k", "labelme"):
        cases += [["convert", layout, "--root", root, "--out", o, "--name", "x"] for root in (g, e)]
    cases += [
        ["convert", "folder", "--root", g, "--out", o, "--name", "x", "--class-names", b],
        ["convert", "folder", "--root", g, "--out", o, "--name", "x", "--class-names", f"{g}/class_names.txt"],
        ["convert", "folder", "--root", e, "--out", o, "--name", "camvid"],
        ["labelme", g, o, "--labels", b],
        ["labelme", g, o, "--labels", f"{g}/labels.txt"],
        ["labelme", e, o, "--labels", f"{g}/labels.txt"],
        ["trainids", g],
        ["trainids", e],
        ["trainids", g, "--source", "labelids"],
        ["tfrecord", b, "--dataset", "camvid", "--out", o],
        ["tfrecord", f"{g}/train.txt", "--dataset", "camvid", "--out", o],
        ["tfrecord", f"{g}/train.txt", "--dataset", "camvid", "--out", o, "--image-dir", f"{g}/images", "--label-dir", f"{g}/labels"],
        ["remove-colormap", g, o],
        ["remove-colormap", e, o],
        ["remove-colormap", f"{g}/images", o, "--colormap", "camvid"],
        ["lists", g, "--split", "train=1"],
        ["lists", e],
        ["inspect", g],
        ["inspect", e],
        ["inspect", g, "--json"],
        ["inspect", "camvid"],
        ["inspect", "no_such_dataset"],
        ["verify", g],
        ["verify", e],
        ["register", "x", "--class-names-file", b],
        ["register", "x", "--class-names", "a,b", "--colormap", b],
        ["register", "x", "--class-names", "a,b", "--colormap", f"{g}/a.png"],
    ]
    return cases


@pytest.mark.fault("traceback", "convert", "labelme", "trainids", "tfrecord", "remove-colormap", "lists", "inspect", "verify", "register")
def test_no_command_ends_in_a_traceback(junk, tmp_path, monkeypatch):
    good_registry = Path(__file__).resolve().parent.parent / "dataset_registry.yaml"
    copy = tmp_path / "good_registry.yaml"
    copy.write_bytes(good_registry.read_bytes())
    failures = []
    for registry in (copy, junk["registry"]):
        monkeypatch.setenv("SEGPREP_REGISTRY", str(registry))
        for args in _cases(junk):
            quiet = ["--quiet"] if args[0] in QUIET_COMMANDS else []
            result = CliRunner().invoke(main, [*args, *quiet])
            output = result.stdout + result.stderr
            problem = None
            if result.exception is not None and not isinstance(result.exception, SystemExit):
                problem = f"raised {type(result.exception).__name__}: {result.exception}"
            elif result.exit_code not in (1, 2):
                problem = f"exit {result.exit_code}"
            elif "Traceback" in output or "internal error" in output:
                problem = output.strip().splitlines()[-1]
            elif not result.stderr.strip():
                problem = "no message on stderr"
            elif "codec can't decode" in output:
                problem = "a decoding error that does not name the file"
            elif "No such option" in output:
                problem = "the sweep passed an option the command does not have"
            if problem:
                failures.append(f"{' '.join(args)} [{registry.name}]: {problem}")
    assert not failures, "\n".join(failures)
