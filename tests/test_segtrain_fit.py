"""segtrain.train: a few steps lower the loss, resume continues the step count, init modes restore what they should."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from conftest import make_folder_dataset

from segtrain.model import ModelConfig
from segtrain.checkpoints import initialize_from, load_model
from segtrain.data import AugmentConfig
from segtrain.labels import Labels
from segtrain.train import FitConfig, fit

COLORMAP = [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """A tiny learnable dataset: the label is the dominant colour channel of 8x8 blocks."""
    from click.testing import CliRunner

    from segprep.cli.main import main

    root = tmp_path_factory.mktemp("data")
    make_folder_dataset(root / "d", count=8, num_classes=4, size=(48, 32))
    rng = np.random.default_rng(0)
    from PIL import Image

    for path in sorted((root / "d" / "labels").glob("*.png")):
        blocks = rng.integers(0, 4, (4, 6))
        label = np.kron(blocks, np.ones((8, 8), int)).astype(np.uint8)
        image = np.zeros((32, 48, 3), np.uint8) + 40
        for c in range(1, 4):
            image[..., c - 1][label == c] = 220
        Image.fromarray(label, "L").save(path)
        for old in (root / "d" / "images").glob(path.stem + ".*"):
            old.unlink()
        Image.fromarray(image).save(root / "d" / "images" / f"{path.stem}.png")
    registry = root / "registry.yaml"
    from conftest import REPO

    registry.write_text((REPO / "dataset_registry.yaml").read_text())
    result = CliRunner().invoke(main, ["convert", "folder", "--root", str(root / "d"), "--out", str(root / "tf"), "--name", "blocks", "--quiet", "--split", "train=1.0", "--registry", str(registry)])
    assert result.exit_code == 0, result.output
    return root / "tf"


def small_fit(records, logdir, steps, **changes):
    # DeepLab's initializers start slower than Glorot's on this toy task: lr 0.1 lowers the loss ~2x in 30 steps
    model = ModelConfig(num_classes=4, backbone="mobilenetv2", output_stride=16, filters=32)
    config = FitConfig(
        data_dir=records, logdir=logdir, steps=steps, batch_size=4, augment=AugmentConfig(crop_height=32, crop_width=32),
        learning_rate=0.1, checkpoint_every=5, summary_every=5, image_summary_every=10, seed=0,
    )
    config = dataclasses.replace(config, **changes)
    labels = Labels(4, 255, tuple(tuple(c) for c in COLORMAP), ("a", "b", "c", "d"), dataset="blocks")
    return fit(model, labels, config)


def test_fit_lowers_loss_and_resumes(records, tmp_path):
    logdir = tmp_path / "run"
    first = small_fit(records, logdir, 30)
    assert (first.start_step, first.end_step) == (0, 30)
    assert np.mean(first.losses[-5:]) < 0.8 * np.mean(first.losses[:5])
    assert tf.train.latest_checkpoint(str(logdir)).endswith("ckpt-30")
    assert list((logdir / "train").glob("events.out.tfevents.*"))
    resumed = small_fit(records, logdir, 35)
    assert (resumed.start_step, resumed.end_step) == (30, 35) and len(resumed.losses) == 5
    model, run = load_model(logdir)
    assert run["dataset"] == "blocks" and run["model"]["num_classes"] == 4


def test_init_modes(records, tmp_path):
    """DeepLab's FAQ modes from a segtrain logdir and from a DeepLab TF1 checkpoint of the same weights."""
    from segtrain.deeplab_model import variables
    from segtrain.model import build_deeplab

    source_dir = tmp_path / "source"
    small_fit(records, source_dir, 5)
    source, _ = load_model(source_dir)
    theirs = {name: var.numpy() for name, var in variables(source).items()}
    tf1 = tmp_path / "tf1" / "model.ckpt-5"
    tf1.parent.mkdir()
    tf.raw_ops.SaveV2(prefix=str(tf1), tensor_names=list(theirs), shape_and_slices=[""] * len(theirs), tensors=[tf.constant(v) for v in theirs.values()])

    def same(model, *names):
        table = variables(model)
        return all(np.array_equal(table[n].numpy(), theirs[n]) for n in names)

    for origin in (source_dir, tf1):
        model = build_deeplab(ModelConfig(num_classes=4, filters=32))
        restored = initialize_from(model, origin, "all")
        assert set(restored) == set(theirs)
        assert same(model, *theirs)

        other_classes = build_deeplab(ModelConfig(num_classes=6, filters=32))
        with pytest.raises(ValueError, match="logits/semantic/weights.*all-but-logits"):
            initialize_from(other_classes, origin, "all")
        before_logits = variables(other_classes)["logits/semantic/weights"].numpy().copy()
        restored = initialize_from(other_classes, origin, "all-but-logits")
        assert len(restored) == len(theirs) - 2 and not any(n.startswith("logits/") for n in restored)
        assert np.array_equal(variables(other_classes)["logits/semantic/weights"].numpy(), before_logits)
        assert same(other_classes, "concat_projection/weights", "decoder/decoder_conv1_pointwise/weights", "MobilenetV2/Conv/weights")

        head_differs = build_deeplab(ModelConfig(num_classes=6, filters=16, aspp=False))
        before_head = variables(head_differs)["concat_projection/weights"].numpy().copy()
        restored = initialize_from(head_differs, origin, "backbone")
        assert restored and all(n.startswith("MobilenetV2/") for n in restored)
        assert same(head_differs, *restored)
        assert np.array_equal(variables(head_differs)["concat_projection/weights"].numpy(), before_head)

        xception = build_deeplab(ModelConfig(num_classes=4, backbone="xception41", filters=8, aspp=False, decoder=False))
        with pytest.raises(ValueError, match="MobilenetV2|mobilenetv2") as caught:
            initialize_from(xception, origin, "backbone")
        assert "xception" in str(caught.value) and "\n" not in str(caught.value)
