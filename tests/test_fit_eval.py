"""fit --eval-every: TensorBoard scalars, the terminal line, LOGDIR/best usable by eval, eval_history.json,
a resume that keeps the best so far, and the refusals that come before any training."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from conftest import convert_tiny_records, segtrain_runner
from faultkit import assert_refused, assert_unchanged, snapshot

FIT = ("--steps", 4, "--batch-size", 2, "--crop-size", "32,32", "--depth-multiplier", 0.35, "--no-aspp", "--checkpoint-every", 2,
       "--summary-every", 2, "--bn-recompute-batches", 2, "--eval-every", 2, "--seed", 0, "--bn-momentum", 0.999999)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Tiny train/val records in a private registry, and a 4-step fit evaluated at steps 2 and 4."""
    root = tmp_path_factory.mktemp("fit_eval")
    registry = root / "registry.yaml"
    convert_tiny_records(root, registry)
    run = segtrain_runner(registry, ("fit", "eval"))

    result = run("fit", "--dataset", "tiny", "--logdir", root / "run", *FIT)
    assert result.exit_code == 0, result.output
    return root, run, result


def scalars(folder):
    """{tag: {step: value}} of the TensorBoard event files in folder."""
    import tensorflow as tf

    found: dict = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                found.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
    return found


def test_eval_scalars_terminal_lines_and_history(workspace):
    root, _, result = workspace
    history = json.loads((root / "run" / "eval_history.json").read_text())
    assert history["split"] == "val" and [e["step"] for e in history["evaluations"]] == [2, 4]
    assert set(history["evaluations"][0]["per_class_iou"]) == {"class0", "class1", "class2"}
    best = max(history["evaluations"], key=lambda e: (e["miou"], -e["step"]))
    assert history["best"] == {"step": best["step"], "miou": best["miou"]}

    logged = scalars(root / "run" / "eval")
    assert logged["eval/miou"] == {e["step"]: pytest.approx(e["miou"], abs=1e-6) for e in history["evaluations"]}
    for name in ("class0", "class1", "class2"):
        iou = history["evaluations"][-1]["per_class_iou"][name]
        if iou is not None:
            assert logged[f"eval/iou/{name}"][4] == pytest.approx(iou, abs=1e-6)
    assert set(logged["eval/pixel_accuracy"]) == {2, 4}

    lines = re.findall(r"step (\d+): val mIoU ([\d.]+) % \(best ([\d.]+) % at (\d+)\)", result.output)
    assert [int(step) for step, *_ in lines] == [2, 4]
    assert float(lines[-1][2]) == pytest.approx(100 * best["miou"], abs=0.051) and int(lines[-1][3]) == best["step"]
    assert f"best val mIoU {100 * best['miou']:.1f} % at step {best['step']}" in result.output


def test_checkpoints_hold_recomputed_statistics(workspace):
    """At momentum 0.999999 four steps leave the moving averages at their start (mean 0, variance 1): only the
    recompute before saving can have moved them to the batches' statistics."""
    from segtrain.checkpoints import load_model

    root, _, _ = workspace
    for checkpoint in (root / "run", root / "run" / "best"):
        layer = load_model(checkpoint)[0].get_layer("MobilenetV2.Conv.BatchNorm")
        # Four steps at momentum 0.999999 move them by at most ~1e-5; the batches' statistics are far from (0, 1).
        assert abs(layer.moving_mean.numpy()).max() > 1e-4 and abs(layer.moving_variance.numpy() - 1).max() > 1e-3


def test_best_is_a_logdir_that_eval_reads(workspace, tmp_path):
    root, run, _ = workspace
    best = root / "run" / "best"
    history = json.loads((root / "run" / "eval_history.json").read_text())
    assert (best / "segtrain.json").is_file() and (best / f"ckpt-{history['best']['step']}.index").is_file()
    assert (best / "segtrain.json").read_bytes() == (root / "run" / "segtrain.json").read_bytes()
    result = run("eval", "--dataset", "tiny", "--checkpoint", best, "--split", "val", "--json", tmp_path / "best.json")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "best.json").read_text())["miou"] == pytest.approx(history["best"]["miou"], abs=1e-9)


def test_resume_keeps_the_best_so_far(workspace, tmp_path):
    """A recorded best that the resumed run cannot beat (mIoU 0.99) stays the best, and best/ stays as it was."""
    root, run, _ = workspace
    logdir = tmp_path / "run"
    shutil.copytree(root / "run", logdir)
    path = logdir / "eval_history.json"
    history = json.loads(path.read_text())
    history["best"]["miou"] = 0.99
    path.write_text(json.dumps(history))
    before = snapshot(logdir / "best")

    result = run("fit", "--dataset", "tiny", "--logdir", logdir, *FIT[2:], "--steps", 6)
    assert result.exit_code == 0, result.output
    resumed = json.loads(path.read_text())
    assert [e["step"] for e in resumed["evaluations"]] == [2, 4, 6]
    assert resumed["evaluations"][:2] == history["evaluations"]
    assert resumed["best"] == history["best"]
    assert f"(best 99.0 % at {history['best']['step']})" in result.output
    assert_unchanged(before, logdir / "best")
    assert set(scalars(logdir / "eval")["eval/miou"]) == {2, 4, 6}


@pytest.mark.fault("segtrain", "fit")
def test_refused_before_training(workspace, tmp_path):
    root, run, _ = workspace
    result = run("fit", "--dataset", "tiny", "--logdir", tmp_path / "a", *FIT, "--eval-split", "test")
    assert_refused(result, "no split 'test'")
    assert not (tmp_path / "a").exists()

    logdir = tmp_path / "b"
    shutil.copytree(root / "run", logdir)
    (logdir / "eval_history.json").write_text('{"split": "val", "evaluations": [')
    before = snapshot(logdir)
    result = run("fit", "--dataset", "tiny", "--logdir", logdir, *FIT[2:], "--steps", 6)
    assert_refused(result, logdir / "eval_history.json")
    assert_unchanged(before, logdir)

    history = json.loads((root / "run" / "eval_history.json").read_text())
    (logdir / "eval_history.json").write_text(json.dumps({**history, "split": "train"}))
    result = run("fit", "--dataset", "tiny", "--logdir", logdir, *FIT[2:], "--steps", 6)
    assert_refused(result, logdir / "eval_history.json", "--eval-split train")


def test_fit_checks_the_eval_shards_before_building(workspace, tmp_path):
    """The registry may know a split whose shards are not in --data: fit refuses it before any model or logdir."""
    from segtrain.data import AugmentConfig
    from segtrain.labels import Labels
    from segtrain.model import ModelConfig
    from segtrain.train import FitConfig, fit

    root, _, _ = workspace
    config = FitConfig(data_dir=root / "tf", logdir=tmp_path / "run", steps=2, batch_size=2, augment=AugmentConfig(crop_height=32, crop_width=32), eval_every=1, eval_split="test")
    with pytest.raises(FileNotFoundError, match=r"no test-\*\.tfrecord shards") as caught:
        fit(ModelConfig(num_classes=3, depth_multiplier=0.35, aspp=False), Labels(3, 255, (), ("a", "b", "c"), dataset="tiny"), config)
    assert str(root / "tf") in str(caught.value) and not (tmp_path / "run").exists()
