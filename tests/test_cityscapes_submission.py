"""Cityscapes benchmark submissions (segtrain.cityscapes_submission), checked by cityscapesScripts' own evaluation.

A synthetic Cityscapes tree (leftImg8bit/val/<city>/..., gtFine/val/<city>/*_gtFine_labelIds.png and
*_instanceIds.png) is made from random train ids mapped to ids through cityscapesScripts' label table.
Each image's red channel is its pixel's train id (255 on void pixels), so a deterministic "model" can
return the ground truth, or a fixed mix of right and wrong classes.

cityscapesScripts 2.3 calls np.in1d, which NumPy 2.4 removed: its evaluation runs in a subprocess,
exactly as the README tells users to run it (np.in1d = np.isin first when it is missing).
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segprep.errors import OutputLocationError
from segprep.ops.cityscapes_labels import ID_TO_TRAIN_ID, TRAIN_CLASS_NAMES
from segtrain.cityscapes_submission import (
    check_cityscapes_classes,
    check_submission_target,
    cityscapes_images,
    train_ids_to_label_ids,
    trainid_to_id_table,
    write_submission,
)
from segtrain.errors import SegtrainError
from segtrain.evaluate import Accumulator

labels_module = pytest.importorskip("cityscapesscripts.helpers.labels")

WIDTH, HEIGHT = 64, 32
FRAMES = {"aachen": [(0, 19), (1, 42)], "bad-honnef": [(3, 7), (12, 345)]}  # a hyphenated city, as Cityscapes has
GT_TRAIN_IDS = [t for t in range(19) if t not in (14, 15, 16)]  # truck, bus, train never in the ground truth
VOID_IDS = [label.id for label in labels_module.labels if label.ignoreInEval and label.id >= 0]

# How users run cityscapesScripts' evaluation under NumPy >= 2.4 (README): the same line, in a subprocess.
EVAL_SCRIPT = (
    "import numpy as np; np.in1d = getattr(np, 'in1d', np.isin); import runpy; "
    "runpy.run_module('cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling', run_name='__main__')"
)


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def make_tree(root: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Write the synthetic tree under root; {image name: ground-truth train ids (255 void)}."""
    rng = np.random.default_rng(seed)
    truth = {}
    for city, frames in FRAMES.items():
        for sequence, frame in frames:
            stem = f"{city}_{sequence:06d}_{frame:06d}"
            blocks = rng.choice(GT_TRAIN_IDS, (HEIGHT // 4, WIDTH // 4))
            train = np.kron(blocks, np.ones((4, 4), np.int64))
            ids = np.vectorize(lambda t: labels_module.trainId2label[int(t)].id)(train).astype(np.uint8)
            void = rng.random((HEIGHT, WIDTH)) < 0.15
            ids[void] = rng.choice(VOID_IDS, int(void.sum()))
            train_ids = np.where(void, 255, train).astype(np.uint8)
            # instances: each 4x4 block of an instance class is one instance (id * 1000 + k)
            instances = ids.astype(np.uint16)
            block_index = np.kron(np.arange(blocks.size).reshape(blocks.shape), np.ones((4, 4), np.int64))
            has_instances = np.vectorize(lambda i: labels_module.id2label[int(i)].hasInstances and not labels_module.id2label[int(i)].ignoreInEval)(ids)
            instances[has_instances] = (ids[has_instances].astype(np.int64) * 1000 + block_index[has_instances]).astype(np.uint16)
            rgb = np.stack([train_ids, rng.integers(0, 256, (HEIGHT, WIDTH)), rng.integers(0, 256, (HEIGHT, WIDTH))], -1).astype(np.uint8)
            image_dir = root / "leftImg8bit" / "val" / city
            gt_dir = root / "gtFine" / "val" / city
            image_dir.mkdir(parents=True, exist_ok=True)
            gt_dir.mkdir(parents=True, exist_ok=True)
            (image_dir / f"{stem}_leftImg8bit.png").write_bytes(_png(rgb))
            (gt_dir / f"{stem}_gtFine_labelIds.png").write_bytes(_png(ids))
            (gt_dir / f"{stem}_gtFine_instanceIds.png").write_bytes(_png(instances))
            truth[f"{stem}_leftImg8bit.png"] = train_ids
    return truth


def cityscapes_eval(dataset: Path, results: Path, export: Path) -> dict:
    """cityscapesScripts' evalPixelLevelSemanticLabeling over dataset/gtFine/val and results; its JSON."""
    export.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CITYSCAPES_DATASET": str(dataset), "CITYSCAPES_RESULTS": str(results), "CITYSCAPES_EXPORT_DIR": str(export)}
    done = subprocess.run([sys.executable, "-c", EVAL_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((export / "resultPixelLevelSemanticLabeling.json").read_text())


def ground_truth_model(rgb: np.ndarray) -> np.ndarray:
    """The true train ids; on void pixels (no true class) some class from the green channel."""
    return np.where(rgb[..., 0] == 255, rgb[..., 1] % 19, rgb[..., 0]).astype(np.uint8)


def rule_model(rgb: np.ndarray) -> np.ndarray:
    """Right where green < 150, else a class from green (never bus or train); train on every void pixel.

    So: truck is predicted but never true (IoU 0), bus is neither (no score), train is predicted
    only where the ground truth is void (no score either).
    """
    red, green = rgb[..., 0].astype(np.int64), rgb[..., 1].astype(np.int64)
    guess = green % 19
    guess[(guess == 15) | (guess == 16)] = 17
    prediction = np.where(green < 150, red, guess)
    return np.where(red == 255, 16, prediction).astype(np.uint8)


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    root = tmp_path / "cityscapes"
    return root, make_tree(root)


def segtrain_scores(truth: dict[str, np.ndarray], images: list[tuple[Path, str]], model) -> dict:  # type: ignore[no-untyped-def]
    """segtrain's own metrics (Accumulator over train ids, 255 ignored) of model's predictions."""
    from segtrain.images import read_rgb

    accumulator = Accumulator(19, 255)
    for path, name in images:
        accumulator.add(truth[name], model(read_rgb(path)))
    return accumulator.report("cityscapes", "val", list(TRAIN_CLASS_NAMES))


def assert_same_scores(official: dict, ours: dict) -> None:
    """cityscapesScripts' class IoUs and their average equal segtrain's per-class IoU and mIoU."""
    for name in TRAIN_CLASS_NAMES:
        theirs, mine = official["classScores"][name], ours["per_class_iou"][name]
        assert (mine is None) == math.isnan(theirs), name
        if mine is not None:
            assert theirs == pytest.approx(mine, abs=1e-12), name
    assert abs(100 * official["averageScoreClasses"] - 100 * ours["miou"]) < 0.01


# --- the acceptance tests ---------------------------------------------------------------------


def test_ground_truth_as_submission_scores_100_percent(tree, tmp_path: Path) -> None:
    root, truth = tree
    images, problems = cityscapes_images([root / "leftImg8bit" / "val"])
    assert problems == [] and sorted(name for _, name in images) == sorted(truth)
    out = tmp_path / "submission"
    result = write_submission(ground_truth_model, images, out, zip_path=tmp_path / "submission.zip")
    assert result.problems == [] and sorted(result.written) == sorted(truth)
    assert sorted(os.listdir(out)) == sorted(truth)  # nothing else in DIR (its ledger lies beside it)

    for name, train_ids in truth.items():
        written = Image.open(out / name)
        assert written.mode == "L" and written.size == (WIDTH, HEIGHT)
        ids = np.asarray(written)
        valid = train_ids != 255
        assert np.array_equal(np.frombuffer(ID_TO_TRAIN_ID, np.uint8)[ids][valid], train_ids[valid])

    official = cityscapes_eval(root, out, tmp_path / "export")
    present = {TRAIN_CLASS_NAMES[t] for t in GT_TRAIN_IDS}
    for label in labels_module.labels:
        score = official["classScores"].get(label.name)
        if label.name in present:
            assert score == 1.0, label.name
        elif score is not None:
            assert math.isnan(score), label.name
    assert official["averageScoreClasses"] == 1.0
    assert official["averageScoreInstClasses"] == 1.0  # the instance-weighted IoU (np.in1d's path) too

    # the zip: DIR's PNGs at its root, and what the evaluation reads from it scores the same
    with zipfile.ZipFile(tmp_path / "submission.zip") as archive:
        assert sorted(archive.namelist()) == sorted(truth)
        for name in truth:
            assert archive.read(name) == (out / name).read_bytes()
        archive.extractall(tmp_path / "unzipped")
    assert cityscapes_eval(root, tmp_path / "unzipped", tmp_path / "export2")["averageScoreClasses"] == 1.0


def test_rule_model_scores_as_segtrain_metrics(tree, tmp_path: Path) -> None:
    root, truth = tree
    images, _ = cityscapes_images([root / "leftImg8bit" / "val"])
    out = tmp_path / "submission"
    write_submission(rule_model, images, out)
    official = cityscapes_eval(root, out, tmp_path / "export")
    ours = segtrain_scores(truth, images, rule_model)
    assert_same_scores(official, ours)
    assert 0.2 < ours["miou"] < 0.9  # a real mix of right and wrong
    assert ours["per_class_iou"]["truck"] == 0.0 and official["classScores"]["truck"] == 0.0
    assert ours["per_class_iou"]["bus"] is None and ours["per_class_iou"]["train"] is None


def test_tiny_deeplab_scores_as_segtrain_eval(tree, tmp_path: Path) -> None:
    """A randomly initialised tiny DeepLab through make_predictor, as predict will call it: the
    submission's cityscapesScripts mIoU equals segtrain's evaluate_model mIoU on the same images."""
    pytest.importorskip("tensorflow")
    import keras

    from segtrain.evaluate import evaluate_model
    from segtrain.images import read_rgb
    from segtrain.model import ModelConfig, build_deeplab
    from segtrain.predict import make_predictor

    root, truth = tree
    keras.utils.set_random_seed(3)
    model = build_deeplab(ModelConfig(num_classes=19, depth_multiplier=0.25, filters=16, weight_init="keras"))
    predictor = make_predictor(model)
    images, _ = cityscapes_images([root / "leftImg8bit" / "val"])
    out = tmp_path / "submission"
    write_submission(lambda rgb: predictor(rgb).argmax(axis=-1).astype(np.uint8), images, out)

    official = cityscapes_eval(root, out, tmp_path / "export")
    accumulator = evaluate_model(predictor, ((read_rgb(path), truth[name]) for path, name in images), Accumulator(19, 255))
    ours = accumulator.report("cityscapes", "val", list(TRAIN_CLASS_NAMES))
    assert_same_scores(official, ours)
    assert sum(v is not None for v in ours["per_class_iou"].values()) >= 2


# --- refusals ---------------------------------------------------------------------------------


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_refuses_models_whose_classes_are_not_cityscapes(registry: Path) -> None:
    from segprep.registry import load_registry

    with pytest.raises(SegtrainError) as exc:
        check_cityscapes_classes(["background", "road", "lane"], 3)
    assert "3 classes" in _one_line(exc) and "19" in str(exc.value)
    with pytest.raises(SegtrainError, match="unnamed"):
        check_cityscapes_classes([f"class_{i}" for i in range(19)], 19)  # import-deeplab without --dataset
    with pytest.raises(SegtrainError, match="unnamed"):
        check_cityscapes_classes([], 19)
    swapped = list(TRAIN_CLASS_NAMES)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    with pytest.raises(SegtrainError) as exc:
        check_cityscapes_classes(swapped, 19)
    assert "class 0 is 'sidewalk'" in _one_line(exc)

    entries = load_registry(registry)
    cityscapes = entries.get("cityscapes")
    assert tuple(cityscapes.class_names) == TRAIN_CLASS_NAMES  # the registry and the label table agree
    check_cityscapes_classes(cityscapes.class_names, cityscapes.num_classes)
    check_cityscapes_classes([name.replace(" ", "_").upper() for name in TRAIN_CLASS_NAMES], 19)
    for other, count in (("camvid", 11), ("kitti_road", 2)):
        entry = entries.get(other)
        with pytest.raises(SegtrainError, match=f"{count} classes"):
            check_cityscapes_classes(entry.class_names, entry.num_classes)


def test_train_id_table_is_the_official_one() -> None:
    table = trainid_to_id_table()
    for train_id in range(256):
        expected = labels_module.trainId2label[train_id].id if train_id < 19 else 255
        assert table[train_id] == expected
    assert not table.flags.writeable
    # what cityscapesScripts leaves out of its scores (ignoreInEval) is exactly what segtrain ignores (trainId 255)
    ignored = {label.id for label in labels_module.labels if label.ignoreInEval and label.id >= 0}
    assert ignored == {i for i in range(34) if ID_TO_TRAIN_ID[i] == 255}
    with pytest.raises(SegtrainError, match="no images"):
        write_submission(ground_truth_model, [], Path("unused"))
    assert train_ids_to_label_ids(np.arange(19, dtype=np.uint8)).tolist() == [labels_module.trainId2label[t].id for t in range(19)]
    for bad in ([255], [19], [-1]):
        with pytest.raises(ValueError, match="not Cityscapes train ids"):
            train_ids_to_label_ids(np.array(bad))
    with pytest.raises(ValueError, match="ignore label"):
        train_ids_to_label_ids(np.array([[0, 255]], np.uint8))
    assert train_ids_to_label_ids(np.array([0, 255], np.uint8), void_id=0).tolist() == [7, 0]
    with pytest.raises(ValueError, match="not a void"):
        train_ids_to_label_ids(np.array([255], np.uint8), void_id=7)
    with pytest.raises(ValueError, match="integers"):
        train_ids_to_label_ids(np.zeros(2, np.float32))


def test_non_cityscapes_names_are_problems(tree, tmp_path: Path) -> None:
    root, truth = tree
    city = root / "leftImg8bit" / "val" / "aachen"
    rgb = np.zeros((4, 4, 3), np.uint8)
    loose = tmp_path / "loose"
    loose.mkdir()
    odd = [loose / "photo.png", loose / "aachen_1_2_leftImg8bit.png", loose / "aachen_000000_000019_gtFine_labelIds.png", loose / "aachen_000000_000019_leftImg8bit.jpg"]
    for path in odd:
        path.write_bytes(_png(rgb))
    images, problems = cityscapes_images(odd)
    assert images == [] and len(problems) == 4
    assert all("not a Cityscapes image name" in line and "\n" not in line for line in problems)

    # a folder: its images and those of its city folders; the odd ones are problems, not skipped
    (city / "notes.txt").write_text("not an image, skipped")
    (city / ".hidden.png").write_bytes(_png(rgb))
    (city / "aachen_000000_000019_leftImg8bit_copy.png").write_bytes(_png(rgb))
    images, problems = cityscapes_images([root / "leftImg8bit" / "val"])
    assert sorted(name for _, name in images) == sorted(truth)
    assert len(problems) == 1 and "aachen_000000_000019_leftImg8bit_copy.png" in problems[0]

    # one image named twice is fine; two images with one name are a problem
    again, problems = cityscapes_images([city, city / "aachen_000000_000019_leftImg8bit.png"])
    assert len(again) == 2 and len(problems) == 1  # the _copy
    other = tmp_path / "other" / "aachen"
    other.mkdir(parents=True)
    (other / "aachen_000000_000019_leftImg8bit.png").write_bytes(_png(rgb))
    _, problems = cityscapes_images([city, other])
    assert any("a submission holds each image once" in line for line in problems)

    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "fifo" / "ulm_000000_000001_leftImg8bit.png"
        fifo.parent.mkdir()
        os.mkfifo(fifo)
        images, problems = cityscapes_images([fifo])
        assert images == [] and len(problems) == 1 and "not predicted" in problems[0]

    with pytest.raises(SegtrainError, match="no images"):
        cityscapes_images([root / "leftImg8bit"])  # the split level is missing: train/val/test hold cities
    with pytest.raises(SegtrainError):
        write_submission(ground_truth_model, [(odd[0], odd[0].name)], tmp_path / "sub")
    assert not (tmp_path / "sub").exists()


def test_refuses_a_folder_holding_a_foreign_file(tree, tmp_path: Path) -> None:
    root, truth = tree
    images, _ = cityscapes_images([root / "leftImg8bit" / "val"])
    calls = []

    def model(rgb: np.ndarray) -> np.ndarray:
        calls.append(1)
        return ground_truth_model(rgb)

    out = tmp_path / "submission"
    out.mkdir()
    (out / "README.txt").write_text("mine")
    with pytest.raises(OutputLocationError) as exc:
        write_submission(model, images, out)
    assert "README.txt" in _one_line(exc) and "new or empty folder" in str(exc.value)
    assert calls == [] and os.listdir(out) == ["README.txt"] and (out / "README.txt").read_text() == "mine"
    with pytest.raises(OutputLocationError):
        check_submission_target(out)  # what the CLI calls before it loads a model

    # a subfolder, or a PNG named like a prediction that this tool did not write, are refused too
    (out / "README.txt").unlink()
    (out / "aachen_000000_000019_leftImg8bit.png").write_bytes(_png(np.zeros((HEIGHT, WIDTH), np.uint8)))
    with pytest.raises(OutputLocationError, match="not written by"):
        write_submission(model, images, out)
    (out / "aachen_000000_000019_leftImg8bit.png").unlink()
    (out / "city").mkdir()
    with pytest.raises(OutputLocationError):
        write_submission(model, images, out)
    assert calls == []

    # never an input: DIR is, is inside or contains an image folder
    for bad in (root / "leftImg8bit" / "val", root / "leftImg8bit" / "val" / "aachen" / "sub", root):
        with pytest.raises(OutputLocationError, match="input"):
            write_submission(model, images, bad)
    logdir = tmp_path / "run"
    with pytest.raises(OutputLocationError, match="input"):
        write_submission(model, images, logdir / "submission", inputs=[logdir])
    assert calls == []


def test_rewrites_an_earlier_submission_and_nothing_else(tree, tmp_path: Path) -> None:
    root, truth = tree
    images, _ = cityscapes_images([root / "leftImg8bit" / "val"])
    out = tmp_path / "submission"
    write_submission(rule_model, images, out)
    assert (tmp_path / ".submission.segtrain-cityscapes.json").is_file()

    # an earlier submission of other images: its files go, so DIR holds exactly this submission
    result = write_submission(ground_truth_model, images[:2], out)
    assert sorted(os.listdir(out)) == sorted(name for _, name in images[:2])
    assert sorted(result.removed) == sorted(name for _, name in images[2:])
    result = write_submission(ground_truth_model, images, out)
    assert sorted(os.listdir(out)) == sorted(truth) and result.removed == []

    # a prediction changed by hand since is the user's: refused, nothing touched
    victim = out / images[0][1]
    victim.write_bytes(_png(np.zeros((HEIGHT, WIDTH), np.uint8)))
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}
    with pytest.raises(OutputLocationError, match="changed since"):
        write_submission(ground_truth_model, images, out)
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before


def test_zip(tree, tmp_path: Path) -> None:
    root, truth = tree
    images, _ = cityscapes_images([root / "leftImg8bit" / "val"])
    out, archive = tmp_path / "submission", tmp_path / "upload" / "submission.zip"
    write_submission(rule_model, images, out, zip_path=archive)
    first = archive.read_bytes()
    write_submission(rule_model, images, out, zip_path=archive)  # its own zip is replaced, byte for byte the same
    assert archive.read_bytes() == first
    with zipfile.ZipFile(archive) as opened:
        assert opened.namelist() == sorted(truth)

    with pytest.raises(OutputLocationError, match="--zip"):
        write_submission(rule_model, images, out, zip_path=out / "submission.zip")  # DIR would hold more than PNGs
    foreign = tmp_path / "mine.zip"
    foreign.write_bytes(b"a user's archive")
    with pytest.raises(OutputLocationError, match="mine.zip"):
        write_submission(rule_model, images, out, zip_path=foreign)
    assert foreign.read_bytes() == b"a user's archive"
    with pytest.raises(OutputLocationError, match="--zip"):
        write_submission(rule_model, images, out, zip_path=root / "leftImg8bit" / "val" / "x.zip", inputs=[root / "leftImg8bit" / "val"])


def test_unreadable_image_is_a_problem_and_no_zip_is_written(tree, tmp_path: Path) -> None:
    root, truth = tree
    images, _ = cityscapes_images([root / "leftImg8bit" / "val"])
    broken = images[1][0]
    broken.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    result = write_submission(rule_model, images, tmp_path / "submission", zip_path=tmp_path / "submission.zip")
    assert len(result.problems) == 1 and result.problems[0].startswith(str(broken))
    assert len(result.written) == len(images) - 1 and result.zip_path is None
    assert not (tmp_path / "submission.zip").exists()


def test_a_prediction_with_the_ignore_label_is_refused(tree, tmp_path: Path) -> None:
    root, _ = tree
    images, _ = cityscapes_images([root / "leftImg8bit" / "val"])
    with pytest.raises(SegtrainError) as exc:
        write_submission(lambda rgb: rgb[..., 0], images, tmp_path / "submission")  # 255 on void pixels
    assert str(images[0][0]) in _one_line(exc) and "ignore label" in str(exc.value)
    with pytest.raises(SegtrainError, match="must return"):
        write_submission(lambda rgb: np.zeros(rgb.shape[:2][::-1], np.uint8), images, tmp_path / "other")


def test_a_trained_models_submission_scores_what_segtrain_eval_prints(tree, tmp_path: Path, registry: Path) -> None:
    """The whole chain through both CLIs: convert, fit a few steps, eval --json, predict --cityscapes-submission;
    cityscapesScripts' mIoU of the submission equals segtrain eval's to 0.01 points."""
    from click.testing import CliRunner

    from segprep.cli.main import main as segprep
    from segtrain.cli import main as segtrain

    root, _ = tree

    def run(cli, *args: object):  # type: ignore[no-untyped-def]
        result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result

    run(segprep, "trainids", root, "--source", "labelids", "--quiet", "--registry", registry)
    run(segprep, "convert", "cityscapes", "--root", root, "--out", tmp_path / "tf", "--splits", "val", "--quiet", "--registry", registry)
    run(segtrain, "fit", "--dataset", "cityscapes", "--split", "val", "--logdir", tmp_path / "run", "--steps", "3", "--batch-size", "2",
        "--width", "0.25", "--head-filters", "16", "--no-aspp", "--bn-recompute-batches", "1", "--seed", "0", "--lr", "0.01", "--registry", registry)
    run(segtrain, "eval", "--dataset", "cityscapes", "--checkpoint", tmp_path / "run", "--split", "val", "--json", tmp_path / "eval.json", "--registry", registry)
    printed = json.loads((tmp_path / "eval.json").read_text())
    run(segtrain, "predict", "--checkpoint", tmp_path / "run", root / "leftImg8bit" / "val", "--cityscapes-submission", tmp_path / "submission")
    assert sorted(p.name for p in (tmp_path / "submission").iterdir()) == sorted(f"{city}_{s:06d}_{f:06d}_leftImg8bit.png" for city, frames in FRAMES.items() for s, f in frames)
    official = cityscapes_eval(root, tmp_path / "submission", tmp_path / "scores")
    assert abs(100 * official["averageScoreClasses"] - 100 * printed["miou"]) < 0.01
    for name in TRAIN_CLASS_NAMES:
        mine = printed["per_class_iou"][name]
        assert (mine is None) == math.isnan(official["classScores"][name]), name
        if mine is not None:
            assert abs(official["classScores"][name] - mine) < 1e-4, name
