"""Faults, round two, on segtrain's side: FIFOs never block, outputs only over segtrain's own files,
labels checked against the registry before training, a cheap "nothing to train", EXIF as stored.

One tiny dataset and one 2-step run of a tiny model are made once for the module; every case works
on copies. Anything that could hang (a FIFO opened for reading) runs in a subprocess with a timeout.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import registry_with, segtrain_runner, REPO, make_folder_dataset
from faultkit import assert_refused, assert_unchanged, error_lines, snapshot
from PIL import Image

REGISTRY_COMMANDS = ("fit", "eval", "score")
SMALL = ("--width", "0.35", "--head-filters", "8", "--batch-size", "2", "--crop-size", "32,32", "--bn-recompute-batches", "1")
FIT = ("fit", "--dataset", "tiny", *SMALL)
FIT_ANY = ("fit", *SMALL)  # --dataset given by the test
TIMEOUT = 180  # seconds: a FIFO that is opened blocks forever; TensorFlow's import takes a few seconds


class Setup:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.registry = root / "registry.yaml"
        self.data = root / "tf"
        self.run_dir = root / "run"

    def cli(self, *args: object, registry: Path | None = None):  # type: ignore[no-untyped-def]
        return segtrain_runner(registry or self.registry, REGISTRY_COMMANDS)(*args)

    def subprocess(self, *args: object, registry: Path | None = None) -> SimpleNamespace:
        """segtrain in its own process, killed after TIMEOUT (a hang fails the test, never the suite)."""
        words = [str(a) for a in args]
        if words[0] in REGISTRY_COMMANDS:
            words += ["--registry", str(registry or self.registry)]
        env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # set by in-process runs: a user's terminal has none
        done = subprocess.run([sys.executable, "-m", "segtrain.cli", *words], capture_output=True, text=True, timeout=TIMEOUT, cwd=REPO, env=env)
        return SimpleNamespace(exit_code=done.returncode, stdout=done.stdout, stderr=done.stderr)

    def copy_run(self, tmp_path: Path) -> Path:
        target = tmp_path / "run"
        shutil.copytree(self.run_dir, target, ignore=shutil.ignore_patterns("train"))
        return target

    def copy_data(self, tmp_path: Path) -> Path:
        target = tmp_path / "tf"
        shutil.copytree(self.data, target)
        return target


def _convert(source: Path, out: Path, name: str, registry: Path, *splits: str) -> None:
    from segprep.cli.main import main as segprep_main

    split_args = [w for spec in splits for w in ("--split", spec)]
    result = CliRunner().invoke(segprep_main, ["convert", "folder", "--root", str(source), "--out", str(out), "--name", name, "--quiet", *split_args, "--registry", str(registry)])
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Setup:
    s = Setup(tmp_path_factory.mktemp("segtrain_faults2"))
    shutil.copy(REPO / "dataset_registry.yaml", s.registry)
    make_folder_dataset(s.root / "data", count=6, num_classes=3, size=(40, 28))
    _convert(s.root / "data", s.data, "tiny", s.registry, "train=0.5", "val=0.5")
    result = s.cli(*FIT, "--steps", "2", "--checkpoint-every", "2", "--summary-every", "1", "--logdir", s.run_dir)
    assert result.exit_code == 0, result.output
    return s


def _registry_with(setup: Setup, tmp_path: Path, name: str, **entry: object) -> Path:
    """A copy of the module's registry with one more dataset."""
    return registry_with(setup.registry, tmp_path / "registry.yaml", name, ["class0", "class1", "class2"], **entry)


def _image(path: Path, height: int = 12, width: int = 20, seed: int = 0) -> Path:
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def _no_traceback(result) -> None:  # type: ignore[no-untyped-def]
    assert "Traceback" not in result.stdout + result.stderr, (result.stdout + result.stderr)[-2000:]


# ---------------------------------------------------------------- 1. FIFOs and folders named like files


@pytest.mark.fault("os", "predict")
def test_predict_refuses_a_fifo_named_as_its_input(setup, tmp_path):
    fifo = tmp_path / "camera.png"
    os.mkfifo(fifo)
    result = setup.subprocess("predict", "--checkpoint", setup.run_dir, fifo, "--out", tmp_path / "pred")
    assert_refused(result, fifo, "not a regular file (a FIFO)", "nothing was predicted")
    assert len(error_lines(result)) == 2  # the FIFO, then the summary
    assert not (tmp_path / "pred").exists()


@pytest.mark.fault("os", "predict")
def test_predict_reports_each_fifo_and_folder_named_like_an_image_in_a_folder(setup, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    _image(folder / "good.png")
    os.mkfifo(folder / "pipe.png")
    (folder / "album.jpg").mkdir()
    os.mkfifo(folder / ".hidden.png")  # hidden: not an input, never opened, not reported
    result = setup.subprocess("predict", "--checkpoint", setup.run_dir, folder, "--out", tmp_path / "pred")
    assert_refused(result, f"{folder / 'pipe.png'}: not a regular file (a FIFO)", f"{folder / 'album.jpg'}: is a folder, not a file",
                   "2 of 3 image(s) could not be predicted; the other 1 are in")
    assert len(error_lines(result)) == 3
    assert ".hidden.png" not in result.stderr
    assert Image.open(tmp_path / "pred" / "good.png").size == (20, 12)  # the good image is still predicted
    assert sorted(p.name for p in (tmp_path / "pred").iterdir()) == [".segtrain-predict.json", "good.png", "good_color.png", "good_overlay.png"]


def _fifo_in_place(path: Path) -> Path:
    path.unlink()
    os.mkfifo(path)
    return path


@pytest.mark.fault("os", "predict", "eval")
@pytest.mark.parametrize("victim", ["segtrain.json", "checkpoint", "ckpt-2.index", "shard"])
def test_a_fifo_in_place_of_a_run_file_or_shard_is_named_not_waited_on(setup, tmp_path, victim):
    run = setup.copy_run(tmp_path)
    if victim == "shard":
        data = setup.copy_data(tmp_path)
        fifo = _fifo_in_place(sorted(data.glob("val-*.tfrecord"))[0])
        result = setup.subprocess("eval", "--dataset", "tiny", "--data", data, "--checkpoint", run, "--split", "val")
    else:
        fifo = _fifo_in_place(run / victim)
        result = setup.subprocess("predict", "--checkpoint", run, _image(tmp_path / "a.png"), "--out", tmp_path / "pred")
    assert_refused(result, f"{fifo}: not a regular file (a FIFO)")
    assert len(error_lines(result)) == 1


@pytest.mark.fault("os", "score")
def test_score_names_fifos_among_predictions_and_ground_truth(setup, tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir()
    pred.mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(gt / "a.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(gt / "c.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(pred / "c.png")
    os.mkfifo(gt / "b.png")
    os.mkfifo(pred / "a.png")
    result = setup.subprocess("score", pred, gt, "--dataset", "tiny")
    assert_refused(result, f"{gt / 'b.png'}: not a regular file (a FIFO); not scored", f"{pred / 'a.png'}: not a regular file (a FIFO)",
                   "2 prediction(s) missing or unusable")
    assert len(error_lines(result)) == 3


def test_read_regular_refuses_without_blocking(tmp_path):
    from segtrain.files import NotRegularFileError, read_regular, regular_problem

    os.mkfifo(tmp_path / "p")
    with pytest.raises(NotRegularFileError, match=rf"^{tmp_path / 'p'}: not a regular file \(a FIFO\)$"):
        read_regular(tmp_path / "p")
    assert regular_problem(tmp_path) == f"{tmp_path}: is a folder, not a file"
    (tmp_path / "link.png").symlink_to(tmp_path / "gone.png")
    problem = regular_problem(tmp_path / "link.png")
    assert problem is not None and problem.startswith(f"{tmp_path / 'link.png'}: ") and "\n" not in problem
    (tmp_path / "f").write_bytes(b"abc")
    assert read_regular(tmp_path / "f") == b"abc" and regular_problem(tmp_path / "f") is None


# ---------------------------------------------------------------- 2. outputs only over segtrain's own files


@pytest.mark.fault("inputs", "eval")
def test_eval_json_refuses_an_unrelated_file_and_replaces_its_own(setup, tmp_path):
    mine = tmp_path / "notes.json"
    mine.write_text('{"my": "notes"}\n')
    result = setup.cli("eval", "--dataset", "tiny", "--checkpoint", setup.run_dir, "--split", "val", "--json", mine)
    assert_refused(result, f"{mine}: exists and was not written by segtrain eval/score --json")
    assert mine.read_text() == '{"my": "notes"}\n'
    assert not (tmp_path / ".segtrain-json.json").exists()

    target = tmp_path / "val.json"
    for _ in range(2):  # written, then replaced: the ledger lists it
        result = setup.cli("eval", "--dataset", "tiny", "--checkpoint", setup.run_dir, "--split", "val", "--json", target)
        assert result.exit_code == 0, result.output
        assert json.loads(target.read_text())["num_images"] == 3
    ledger = json.loads((tmp_path / ".segtrain-json.json").read_text())
    assert list(ledger["files"]) == ["val.json"] and ledger["tool"] == "segtrain eval/score --json"

    target.write_text(target.read_text().replace('"val"', '"edited"'))  # the user's now
    edited = target.read_bytes()
    result = setup.cli("eval", "--dataset", "tiny", "--checkpoint", setup.run_dir, "--split", "val", "--json", target)
    assert_refused(result, f"{target}: changed since segtrain eval/score --json wrote it")
    assert target.read_bytes() == edited


@pytest.mark.fault("inputs", "score")
def test_score_json_refuses_an_unrelated_file_but_not_the_same_bytes(setup, tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir()
    pred.mkdir()
    for folder in (gt, pred):
        Image.fromarray(np.arange(16, dtype=np.uint8).reshape(4, 4) % 3).save(folder / "a.png")
    mine = tmp_path / "score.json"
    mine.write_text("my results\n")
    result = setup.cli("score", pred, gt, "--dataset", "tiny", "--json", mine)
    assert_refused(result, f"{mine}: exists and was not written by segtrain eval/score --json")
    assert mine.read_text() == "my results\n"

    printed = setup.cli("score", pred, gt, "--dataset", "tiny", "--json", "-")
    assert printed.exit_code == 0, printed.output
    mine.write_text(printed.stdout)  # exactly what score would write: no loss to replace it
    result = setup.cli("score", pred, gt, "--dataset", "tiny", "--json", mine)
    assert result.exit_code == 0, result.output
    assert mine.read_text() == printed.stdout
    assert "score.json" in json.loads((tmp_path / ".segtrain-json.json").read_text())["files"]


@pytest.mark.fault("inputs", "export")
def test_export_never_deletes_a_file_it_did_not_write(setup, tmp_path):
    out = tmp_path / "exported"
    out.mkdir()
    (out / "saved_model.pb").write_bytes(b"an earlier export")
    (out / "segtrain-export.json").write_text("{}\n")
    (out / "notes.txt").write_text("mine\n")
    before = snapshot(out)
    result = setup.cli("export", "--checkpoint", setup.run_dir, "--out", out)
    assert_refused(result, f"{out / 'notes.txt'}: not written by segtrain export")
    assert_unchanged(before, out)


@pytest.mark.fault("inputs", "fit")
def test_fit_never_replaces_a_segtrain_json_it_did_not_write(setup, tmp_path):
    logdir = tmp_path / "log"
    logdir.mkdir()
    (logdir / "segtrain.json").write_text("my own notes, not JSON\n")
    before = snapshot(logdir)
    result = setup.cli(*FIT, "--steps", "1", "--logdir", logdir)
    assert_refused(result, f"{logdir / 'segtrain.json'}: not valid JSON", "fit would replace it")
    assert_unchanged(before, logdir)


# ---------------------------------------------------------------- 3. labels against the registry, before any model


@pytest.mark.fault("segtrain", "fit", "eval")
@pytest.mark.parametrize("command, entry, said", [
    ("fit", {"num_classes": 2, "class_names": ["a", "b"]}, "its labels hold 2 ("),
    ("fit", {"ignore_label": 0}, "has 3 classes and ignore label 0"),
    ("fit", {"num_classes": 4, "class_names": ["a", "b", "c", "d"]}, "has 4 classes and ignore label 255"),
    ("eval", {"num_classes": 2, "class_names": ["a", "b"]}, "neither one of the 2 classes (0..1) nor the ignore label 255"),
])
def test_registry_entry_that_disagrees_with_the_manifests_is_refused_before_training(setup, tmp_path, command, entry, said):
    registry = _registry_with(setup, tmp_path, "tiny2", data_dir=str(setup.data), splits={"train": 3, "val": 3, "trainval": 6}, **entry)
    split = "train" if command == "fit" else "val"
    if command == "fit":
        result = setup.cli(*FIT_ANY, "--dataset", "tiny2", "--steps", "1", "--logdir", tmp_path / "log", registry=registry)
    else:
        result = setup.cli("eval", "--dataset", "tiny2", "--checkpoint", setup.run_dir, "--split", "val", registry=registry)
    assert_refused(result, f"{setup.data / f'{split}.manifest.json'}: split {split!r} was converted with 3 classes and ignore label 255", said)
    assert len(error_lines(result)) == 1
    assert "Graph execution error" not in result.stderr
    assert not (tmp_path / "log").exists()


def _edit_manifest(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


@pytest.mark.fault("segtrain", "fit")
def test_label_values_outside_the_classes_are_refused_from_the_histograms(setup, tmp_path):
    """The manifest agrees with a 2-class registry entry, but the labels hold 2: today's graph dump, now one line."""
    data = setup.copy_data(tmp_path)

    def two_classes(document: dict) -> None:
        document["parameters"]["registry_entry"].update(num_classes=2, class_names=["a", "b"])

    _edit_manifest(data / "train.manifest.json", two_classes)
    registry = _registry_with(setup, tmp_path, "tiny2", num_classes=2, class_names=["a", "b"], splits={"train": 3, "val": 3, "trainval": 6})
    result = setup.cli(*FIT_ANY, "--dataset", "tiny2", "--steps", "1", "--data", data, "--logdir", tmp_path / "log", registry=registry)
    train = json.loads((data / "train.manifest.json").read_text())["samples"]
    pixels = sum(s["histogram"].get("2", 0) for s in train)
    assert_refused(result, f"{data / 'train.manifest.json'}: its labels hold 2 ({pixels} pixels in 3 of 3 samples), neither one of the 2 classes (0..1) nor the ignore label 255")
    assert len(error_lines(result)) == 1
    assert not (tmp_path / "log").exists()


def test_an_ignore_label_inside_the_classes_is_fine_when_the_labels_fit(setup, tmp_path):
    """ADE20K's way (DeepLab's): 151 classes, 0 'other' is the ignore label. Here: 3 classes, ignore 0."""
    from segtrain.labels_check import check_split_labels

    data = setup.copy_data(tmp_path)

    def ignore_zero(document: dict) -> None:
        document["parameters"]["registry_entry"]["ignore_label"] = 0
        for sample in document["samples"]:
            histogram = sample["histogram"]
            histogram["0"] = histogram.get("0", 0) + histogram.pop("255", 0)  # the border becomes 'other'
        first = document["samples"][0]["histogram"]
        document["samples"][0]["histogram"] = {"0": sum(first.values())}  # one sample of 'other' only

    _edit_manifest(data / "train.manifest.json", ignore_zero)
    entry = SimpleNamespace(name="ade_like", num_classes=3, ignore_label=0)
    assert check_split_labels(entry, data, "train", "registry.yaml") == [
        f"warning: {data / 'train.manifest.json'}: 1 of 3 train sample(s) have no trainable pixel (every label pixel is the ignore label 0); they add nothing to the loss"
    ]
    assert check_split_labels(entry, tmp_path / "elsewhere", "train", "registry.yaml") == []  # records without a manifest: nothing to check


# ---------------------------------------------------------------- 5. splits and samples with no trainable pixel


def _ignore_dataset(root: Path, labels: list[bool]) -> Path:
    """Images with labels that are all ignore (True) or hold classes 0..2 (False)."""
    rng = np.random.default_rng(3)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i, void in enumerate(labels):
        _image(root / "images" / f"v{i}.png", 28, 40, seed=i)
        label = np.full((28, 40), 255, np.uint8) if void else rng.integers(0, 3, (28, 40), dtype=np.uint8)
        Image.fromarray(label, "L").save(root / "labels" / f"v{i}.png")
    (root / "class_names.txt").write_text("class0\nclass1\nclass2\n")
    return root


@pytest.mark.fault("segtrain", "fit")
@pytest.mark.parametrize("labels, warning", [
    ([True, True], "no trainable pixel in split 'train': every label pixel of its 2 sample(s) is the ignore label 255, so the loss is 0 at every step and nothing is learned"),
    ([True, False, True], "2 of 3 train sample(s) have no trainable pixel (every label pixel is the ignore label 255); they add nothing to the loss"),
])
def test_fit_warns_before_training_about_labels_with_no_trainable_pixel(setup, tmp_path, monkeypatch, labels, warning):
    import segtrain.train
    from segtrain.errors import SegtrainError

    registry = tmp_path / "registry.yaml"
    shutil.copy(setup.registry, registry)
    _convert(_ignore_dataset(tmp_path / "void", labels), tmp_path / "void_tf", "void", registry, "train=1.0")
    started = []

    def no_training(*args, **kwargs):  # type: ignore[no-untyped-def]
        started.append(True)
        raise SegtrainError("stopped by the test before training")

    monkeypatch.setattr(segtrain.train, "fit", no_training)
    result = setup.cli("fit", "--dataset", "void", *SMALL, "--steps", "1", "--logdir", tmp_path / "log", registry=registry)
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: {tmp_path / 'void_tf' / 'train.manifest.json'}: {warning}"]
    assert started and result.stderr.index(warning) < result.stderr.index("stopped by the test")


# ---------------------------------------------------------------- 4. nothing to train


@pytest.mark.fault("segtrain", "fit")
def test_resume_below_the_steps_done_says_so_without_restoring(setup, tmp_path):
    run = setup.copy_run(tmp_path)
    before = snapshot(run)
    result = setup.subprocess(*FIT, "--steps", "1", "--logdir", run)
    assert result.exit_code == 0, result.stderr[-2000:]
    assert f"{run} is already at step 2 of 1: nothing to train (raise --steps to continue)" in result.stdout
    assert "WARNING" not in result.stderr and "Value in checkpoint" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.strip() == "", result.stderr[-2000:]
    assert_unchanged(before, run)  # segtrain.json not even rewritten


# ---------------------------------------------------------------- 6. EXIF orientation as stored, as TensorFlow reads it


def _exif_jpeg(path: Path, orientation: int = 6) -> np.ndarray:
    pixels = np.random.default_rng(7).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, exif=exif)
    return pixels


@pytest.mark.fault("segtrain", "predict")
def test_predict_reads_exif_oriented_jpegs_as_stored_like_fit_and_eval(setup, tmp_path):
    import tensorflow as tf

    from segtrain.images import read_rgb

    photo = tmp_path / "photo.jpg"
    _exif_jpeg(photo)
    with Image.open(photo) as opened:
        assert opened.getexif()[0x0112] == 6  # viewers show it 12 wide, 20 high
    rgb = read_rgb(photo)
    assert rgb.shape == (12, 20, 3)
    assert np.array_equal(rgb, tf.io.decode_image(photo.read_bytes(), channels=3).numpy())  # the very pixels fit and eval decode
    result = setup.cli("predict", "--checkpoint", setup.run_dir, photo, "--out", tmp_path / "pred")
    assert result.exit_code == 0, result.output
    for name in ("photo.png", "photo_color.png", "photo_overlay.png"):
        assert Image.open(tmp_path / "pred" / name).size == (20, 12)  # the stored size, as the record's label has


# ---------------------------------------------------------------- a palette label without PLTE in a record


def _strip_plte(png: bytes) -> bytes:
    out, pos = png[:8], 8
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        if png[pos + 4 : pos + 8] != b"PLTE":
            out += png[pos : pos + 12 + length]
        pos += 12 + length
    return out


@pytest.mark.fault("segtrain", "fit")
def test_fit_on_a_record_whose_palette_label_has_no_plte_fails_in_one_line(setup, tmp_path):
    import tensorflow as tf

    from segprep import schema

    data = setup.copy_data(tmp_path)
    for shard in sorted(data.glob("train-*.tfrecord")):
        records = []
        for raw in tf.data.TFRecordDataset(str(shard)):
            example = tf.train.Example.FromString(raw.numpy())
            label = example.features.feature[schema.LABEL].bytes_list.value
            values = np.asarray(Image.open(io.BytesIO(label[0])))
            palette = Image.frombytes("P", (values.shape[1], values.shape[0]), values.tobytes())
            palette.putpalette([0] * 768)
            buffer = io.BytesIO()
            palette.save(buffer, "PNG")
            label[0] = _strip_plte(buffer.getvalue())
            records.append(example.SerializeToString())
        with tf.io.TFRecordWriter(str(shard)) as writer:
            for record in records:
                writer.write(record)
    result = setup.cli(*FIT, "--steps", "1", "--data", data, "--logdir", tmp_path / "log")
    assert_refused(result, f"{data}: a train record cannot be read or decoded")
    lines = error_lines(result)
    assert len(lines) == 1 and "[[{{node" not in lines[0] and "Graph execution" not in lines[0], lines
