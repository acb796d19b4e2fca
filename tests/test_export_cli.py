"""segtrain export --format tflite and eval/predict --model: an export is scored and run exactly as a checkpoint is."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import convert_tiny_records, segtrain_runner
from PIL import Image

pytest.importorskip("ai_edge_litert")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    registry = root / "registry.yaml"
    convert_tiny_records(root, registry)
    run = segtrain_runner(registry, ("fit", "eval", "score", "export"))
    result = run("fit", "--dataset", "tiny", "--logdir", root / "run", "--steps", 3, "--batch-size", 2, "--crop-size", "33,33",
                 "--width", "0.35", "--head-filters", "16", "--bn-recompute-batches", "1", "--seed", "0")
    assert result.exit_code == 0, result.output
    outputs = {"saved_model": root / "saved", "none": root / "float.tflite", "fp16": root / "fp16.tflite", "int8": root / "int8.tflite"}
    assert run("export", "--checkpoint", root / "run", "--out", outputs["saved_model"]).exit_code == 0
    for quantize in ("none", "fp16", "int8"):
        result = run("export", "--checkpoint", root / "run", "--format", "tflite", "--quantize", quantize, "--representative-count", 3, "--out", outputs[quantize])
        assert result.exit_code == 0, result.output
        assert f"({quantize}, input 33x33" in result.output  # the training crop, recorded in segtrain.json
    return root, run, outputs


def test_eval_of_every_export_gives_the_checkpoints_document(exported):
    root, run, outputs = exported
    documents = {}
    for name, target in [("checkpoint", None), *outputs.items()]:
        source = ["--checkpoint", root / "run"] if target is None else ["--model", target]
        result = run("eval", "--dataset", "tiny", *source, "--split", "val", "--json", root / f"{name}.json")
        assert result.exit_code == 0, result.output
        documents[name] = json.loads((root / f"{name}.json").read_text())
    keys = set(documents["checkpoint"])
    for name, document in documents.items():
        assert set(document) == keys and document["ms_per_image"] > 0 and document["num_images"] == 2, name
    # The SavedModel runs the checkpoint's function at any size: the same scores.
    assert documents["saved_model"]["miou"] == pytest.approx(documents["checkpoint"]["miou"], abs=1e-6)
    assert documents["saved_model"]["pixel_accuracy"] == pytest.approx(documents["checkpoint"]["pixel_accuracy"], abs=1e-6)


def test_predict_with_an_export_writes_the_same_pictures(exported, tmp_path):
    root, run, outputs = exported
    images = sorted((root / "data" / "images").glob("*.png"))[:2]
    assert run("predict", "--checkpoint", root / "run", *images, "--out", tmp_path / "ckpt").exit_code == 0
    assert run("predict", "--model", outputs["saved_model"], *images, "--out", tmp_path / "saved").exit_code == 0
    result = run("predict", "--model", outputs["none"], *images, "--out", tmp_path / "tflite")
    assert result.exit_code == 0, result.output
    for path in images:
        by_checkpoint = np.asarray(Image.open(tmp_path / "ckpt" / f"{path.stem}.png"))
        assert np.array_equal(np.asarray(Image.open(tmp_path / "saved" / f"{path.stem}.png")), by_checkpoint)
        tflite = np.asarray(Image.open(tmp_path / "tflite" / f"{path.stem}.png"))
        assert tflite.shape == by_checkpoint.shape  # resized to the model's 33x33 and back
        assert np.asarray(Image.open(tmp_path / "tflite" / f"{path.stem}_color.png")).shape == (*by_checkpoint.shape, 3)


def test_export_refusals(exported, tmp_path):
    root, run, outputs = exported
    result = run("export", "--checkpoint", root / "run", "--quantize", "int8", "--out", tmp_path / "x")
    assert result.exit_code == 2 and "--quantize: only for --format tflite" in result.output
    foreign = tmp_path / "mine.tflite"
    foreign.write_bytes(b"a user's file")
    result = run("export", "--checkpoint", root / "run", "--format", "tflite", "--out", foreign)
    assert result.exit_code == 1 and "was not written by segtrain export" in result.output
    assert foreign.read_bytes() == b"a user's file"
    result = run("export", "--checkpoint", root / "run", "--format", "tflite", "--out", outputs["none"])  # its own: replaced
    assert result.exit_code == 0, result.output
    result = run("eval", "--dataset", "tiny", "--model", outputs["none"], "--split", "val", "--scales", "0.5,1")
    assert result.exit_code == 1 and "scales must be [1]" in result.output and len(result.output.strip().splitlines()) == 1
    result = run("eval", "--dataset", "tiny", "--model", outputs["none"], "--checkpoint", root / "run", "--split", "val")
    assert result.exit_code == 2 and "one of them" in result.output
