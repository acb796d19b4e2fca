"""Issue 8, item 7 (and 1, 8 where they touch segtrain): segtrain refuses early and clearly.

One tiny dataset and one 2-step run are made once for the module; every case then damages a
copy (never the shared run) and checks: the exit code, the file named in the one `error:` line,
no traceback, inputs byte-identical, and no half-made output. Most refusals happen before a
model is built, so the whole module stays well under a minute.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import registry_with, segtrain_runner, REPO, make_folder_dataset
from faultkit import assert_refused, assert_unchanged, error_lines, snapshot
from PIL import Image

REGISTRY_COMMANDS = ("fit", "eval", "score")
FIT = ("fit", "--dataset", "tiny", "--steps", "2", "--batch-size", "2", "--crop-size", "32,32", "--checkpoint-every", "1", "--summary-every", "1")


class Setup:
    """The shared tiny dataset (`tiny`: 40x28 images; `wee`: images of 1x1 to 5x3) and a 2-step run."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.registry = root / "registry.yaml"
        self.data = root / "tf"
        self.wee = root / "wee_tf"
        self.run_dir = root / "run"

    def cli(self, *args: object, registry: Path | None = None):  # type: ignore[no-untyped-def]
        return segtrain_runner(registry or self.registry, REGISTRY_COMMANDS)(*args)

    def copy_run(self, tmp_path: Path, name: str = "run") -> Path:
        target = tmp_path / name
        shutil.copytree(self.run_dir, target, ignore=shutil.ignore_patterns("train", "ckpt-1.*"))
        return target


def _tiny_images_dataset(root: Path) -> Path:
    """A folder dataset of images smaller than any output stride."""
    rng = np.random.default_rng(1)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i, (height, width) in enumerate([(1, 1), (3, 5), (5, 3), (2, 7)]):
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(root / "images" / f"w{i}.png")
        Image.fromarray(rng.integers(0, 3, (height, width), dtype=np.uint8), "L").save(root / "labels" / f"w{i}.png")
    (root / "class_names.txt").write_text("class0\nclass1\nclass2\n")
    return root


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Setup:
    from segprep.cli.main import main as segprep_main

    s = Setup(tmp_path_factory.mktemp("segtrain_faults"))
    shutil.copy(REPO / "dataset_registry.yaml", s.registry)
    make_folder_dataset(s.root / "data", count=6, num_classes=3, size=(40, 28))
    _tiny_images_dataset(s.root / "wee")
    for name, source, out, splits in (("tiny", "data", s.data, ["train=0.5", "val=0.5"]), ("wee", "wee", s.wee, ["val=1.0"])):
        split_args = [w for spec in splits for w in ("--split", spec)]
        result = CliRunner().invoke(segprep_main, ["convert", "folder", "--root", str(s.root / source), "--out", str(out), "--name", name, "--quiet", *split_args, "--registry", str(s.registry)])
        assert result.exit_code == 0, result.output
    result = s.cli(*FIT, "--logdir", s.run_dir)
    assert result.exit_code == 0, result.output
    return s


def _registry_with(setup: Setup, tmp_path: Path, name: str, **entry: object) -> Path:
    """A copy of the module's registry with one more dataset."""
    return registry_with(setup.registry, tmp_path / "registry.yaml", name, ["a", "b", "c"], **entry)


def _png(path: Path, array: np.ndarray) -> Path:
    """Save an array (uint8 [H, W] -> L, [H, W, 3] -> RGB, uint16 -> I;16) as the suffix says."""
    Image.fromarray(array).save(path)
    return path


# ---------------------------------------------------------------- 1. empty splits


@pytest.mark.fault("segtrain", "fit", "eval")
@pytest.mark.parametrize("command", ["fit", "eval"])
def test_split_with_zero_records_in_the_registry_is_refused_at_start(setup, tmp_path, command):
    data = tmp_path / "hollow"
    data.mkdir()
    registry = _registry_with(setup, tmp_path, "hollow", splits={"train": 0, "val": 0}, data_dir=str(data))
    if command == "fit":
        result = setup.cli("fit", "--dataset", "hollow", "--logdir", tmp_path / "log", "--steps", "1", registry=registry)
    else:
        result = setup.cli("eval", "--dataset", "hollow", "--checkpoint", setup.run_dir, "--split", "val", registry=registry)
    assert_refused(result, data, "is empty", registry)
    assert not (tmp_path / "log").exists()


@pytest.mark.fault("segtrain", "fit", "eval")
@pytest.mark.parametrize("command", ["fit", "eval"])
def test_shards_without_records_are_refused_not_repeated_forever(setup, tmp_path, command):
    data = tmp_path / "hollow"
    data.mkdir()
    for split in ("train", "val"):
        for i in range(2):
            (data / f"{split}-{i:05d}-of-00002.tfrecord").write_bytes(b"")
    registry = _registry_with(setup, tmp_path, "hollow", splits={"train": 4, "val": 2})
    before = snapshot(data)
    if command == "fit":
        result = setup.cli("fit", "--dataset", "hollow", "--data", data, "--logdir", tmp_path / "log", "--steps", "1", registry=registry)
    else:
        result = setup.cli("eval", "--dataset", "hollow", "--data", data, "--checkpoint", setup.run_dir, registry=registry)
    split = "train" if command == "fit" else "val"
    assert_refused(result, data, f"split '{split}' is empty")
    assert_unchanged(before, data)
    assert not (tmp_path / "log").exists()


@pytest.mark.fault("segtrain", "fit")
def test_a_shard_that_is_not_a_tfrecord_is_named(setup, tmp_path):
    data = tmp_path / "tf"
    shutil.copytree(setup.data, data)
    shard = sorted(data.glob("train-*.tfrecord"))[0]
    shard.write_bytes(b"garbage, not a TFRecord at all")
    result = setup.cli(*FIT, "--data", data, "--logdir", tmp_path / "log")
    assert_refused(result, shard, "damaged shard")


# ---------------------------------------------------------------- 2. checkpoints and segtrain.json


def _truncate_data(run: Path) -> Path:
    path = run / "ckpt-2.data-00000-of-00001"
    path.write_bytes(path.read_bytes()[:1000])
    return path


def _garble_data(run: Path) -> Path:
    path = run / "ckpt-2.data-00000-of-00001"
    data = bytearray(path.read_bytes())
    data[4096::4096] = b"\x5a" * len(data[4096::4096])  # same size, one byte in every 4 KiB changed
    path.write_bytes(bytes(data))
    return path


def _truncate_index(run: Path) -> Path:
    path = run / "ckpt-2.index"
    path.write_bytes(path.read_bytes()[:100])
    return path


def _garble_index(run: Path) -> Path:
    path = run / "ckpt-2.index"
    data = bytearray(path.read_bytes())
    data[200:260] = b"x" * 60
    path.write_bytes(bytes(data))
    return path


def _remove_data(run: Path) -> Path:
    (run / "ckpt-2.data-00000-of-00001").unlink()
    return run / "ckpt-2.data-00000-of-00001"


def _garble_state(run: Path) -> Path:
    (run / "checkpoint").write_text("garbage {{{ not a checkpoint state")
    return run / "checkpoint"


def _run_json(change):  # type: ignore[no-untyped-def]
    def damage(run: Path) -> Path:
        path = run / "segtrain.json"
        if isinstance(change, bytes):
            path.write_bytes(change)
        elif isinstance(change, str):
            path.write_text(change)
        else:
            document = json.loads(path.read_text())
            change(document)
            path.write_text(json.dumps(document))
        return path

    return damage


def _earlier_segtrain(document: dict) -> None:
    """segtrain.json as segtrain wrote it before the DeepLab model (no model_format, keras.applications settings)."""
    document.pop("model_format")
    document["model"] = {"num_classes": 3, "backbone": "mobilenetv2", "output_stride": 16, "aspp": True, "decoder": True, "backbone_weights": None, "filters": 256, "bn_momentum": 0.99}


def _delete_run_json(run: Path) -> Path:
    (run / "segtrain.json").unlink()
    return run / "segtrain.json"


CHECKPOINT_FAULTS = {
    "truncated data": (_truncate_data, "truncated or corrupted"),
    "garbled data": (_garble_data, "truncated or corrupted"),
    "truncated index": (_truncate_index, "unreadable checkpoint index"),
    "garbled index": (_garble_index, "unreadable checkpoint index"),
    "missing data": (_remove_data, "missing"),
    "garbled state file": (_garble_state, "garbled checkpoint state file"),
    "run json not json": (_run_json("{bad json"), "not valid JSON"),
    "run json not utf-8": (_run_json(b'{"model": "\xff\xfe"}'), "not UTF-8"),
    "run json a list": (_run_json("[1, 2]"), "expected a JSON object"),
    "run json without model": (_run_json(lambda d: d.pop("model")), "lacks model"),
    "run json string stride": (_run_json(lambda d: d["model"].update(output_stride="16")), '"model.output_stride" must be 8 or 16'),
    "run json of the earlier keras.applications model": (_run_json(_earlier_segtrain), "written by an earlier segtrain whose model is not DeepLab's"),
    "run json of a newer model format": (_run_json(lambda d: d.update(model_format=3)), '"model_format" is 3'),
    "run json depth multiplier for xception": (_run_json(lambda d: d["model"].update(backbone="xception65", depth_multiplier=0.5)), "xception65 has no depth multiplier"),
    "run json unknown backbone": (_run_json(lambda d: d["model"].update(backbone="vgg")), '"model.backbone" must be one of'),
    "run json unknown key": (_run_json(lambda d: d["model"].update(depth=3)), "unknown keys depth"),
    "run json bad colormap": (_run_json(lambda d: d.update(colormap=[[0, 0]])), '"colormap" must be'),
    "run json missing": (_delete_run_json, "missing"),
}


@pytest.mark.fault("segtrain", "eval", "predict", "export")
@pytest.mark.parametrize("fault", sorted(CHECKPOINT_FAULTS))
def test_damaged_checkpoint_or_run_file_is_named(setup, tmp_path, fault):
    damage, reason = CHECKPOINT_FAULTS[fault]
    run = setup.copy_run(tmp_path)
    named = damage(run)
    image = _png(tmp_path / "photo.png", np.zeros((20, 30, 3), np.uint8))
    before = snapshot(run, image)
    commands = {
        "eval": ("eval", "--dataset", "tiny", "--checkpoint", run),
        "predict": ("predict", "--checkpoint", run, image, "--out", tmp_path / "pred"),
        "export": ("export", "--checkpoint", run, "--out", tmp_path / "saved"),
    }
    for args in commands.values():
        result = setup.cli(*args)
        assert_refused(result, named, reason)
        assert len(error_lines(result)) == 1
    assert_unchanged(before, run, image)
    assert not (tmp_path / "pred").exists() and not (tmp_path / "saved").exists()


@pytest.mark.fault("segtrain", "eval", "predict", "export")
@pytest.mark.parametrize("change, said", [
    (lambda d: d["model"].update(num_classes=5), "5 classes"),
    (lambda d: d["model"].update(decoder=False), "does not fit"),
])
def test_checkpoint_of_another_architecture_is_refused(setup, tmp_path, change, said):
    run = setup.copy_run(tmp_path)
    _run_json(change)(run)
    result = setup.cli("export", "--checkpoint", run, "--out", tmp_path / "saved")
    assert_refused(result, run / "ckpt-2", run / "segtrain.json", said)
    assert not (tmp_path / "saved").exists()


@pytest.mark.fault("segtrain", "fit")
def test_fit_init_checkpoint_damaged_is_named(setup, tmp_path):
    run = setup.copy_run(tmp_path, "init")
    named = _truncate_data(run)
    result = setup.cli(*FIT, "--logdir", tmp_path / "log", "--init-checkpoint", run)
    assert_refused(result, named, "truncated or corrupted")
    assert not (tmp_path / "log").exists()


@pytest.mark.fault("segtrain", "fit")
@pytest.mark.parametrize("damage, named, reason, options", [
    (_garble_state, "checkpoint", "refusing to train over the checkpoints", ()),
    (_truncate_data, "ckpt-2.data-00000-of-00001", "truncated or corrupted", ("--steps", "3")),
    (_run_json("{bad"), "segtrain.json", "not valid JSON", ("--steps", "3")),
    (None, "segtrain.json", 'backbone "mobilenetv2" (asked: "xception65")', ("--backbone", "xception65", "--steps", "3")),
    (None, "segtrain.json", "depth_multiplier 1.0 (asked: 0.5)", ("--depth-multiplier", "0.5", "--steps", "3")),
    (None, "segtrain.json", "output_stride 16 (asked: 8)", ("--output-stride", "8", "--steps", "3")),
])
def test_fit_resume_refuses_what_it_cannot_resume(setup, tmp_path, damage, named, reason, options):
    run = setup.copy_run(tmp_path)
    if damage is not None:
        damage(run)
    before = snapshot(run)
    result = setup.cli(*FIT, "--logdir", run, *options)
    assert_refused(result, run / named, reason)
    assert_unchanged(before, run)  # no checkpoint written over, no segtrain.json rewritten


# ---------------------------------------------------------------- 3. images smaller than the output stride


@pytest.mark.fault("segtrain", "predict")
def test_predict_pads_tiny_images_and_crops_back(setup, tmp_path):
    rng = np.random.default_rng(0)
    sizes = {"one": (1, 1), "three_by_five": (3, 5), "fourteen": (14, 14), "tall": (40, 2)}
    images = [_png(tmp_path / f"{name}.png", rng.integers(0, 256, (*size, 3), dtype=np.uint8)) for name, size in sizes.items()]
    result = setup.cli("predict", "--checkpoint", setup.run_dir, *images, "--out", tmp_path / "pred")
    assert result.exit_code == 0, result.output
    for name, (height, width) in sizes.items():
        for suffix in ("", "_color", "_overlay"):
            with Image.open(tmp_path / "pred" / f"{name}{suffix}.png") as out:
                assert out.size == (width, height), (name, suffix, out.size)
        assert np.asarray(Image.open(tmp_path / "pred" / f"{name}.png")).max() < 3


@pytest.mark.fault("segtrain", "eval")
def test_eval_scores_records_smaller_than_the_output_stride(setup, tmp_path):
    result = setup.cli("eval", "--dataset", "wee", "--data", setup.wee, "--checkpoint", setup.run_dir, "--split", "val", "--scales", "0.5,1", "--flip", "--json", tmp_path / "wee.json")
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "wee.json").read_text())
    assert document["num_images"] == 4
    assert 0.0 <= document["miou"] <= 1.0


def test_padded_predictions_equal_unpadded_ones_for_big_enough_images(setup):
    """Padding only ever touches images below the output stride: larger ones are bit-identical."""
    import tensorflow as tf

    from segtrain.predict import make_predictor
    from segtrain.checkpoints import load_model

    model, _ = load_model(setup.run_dir)
    image = np.random.default_rng(3).integers(0, 256, (21, 34, 3), dtype=np.uint8)
    # in a tf.function as the predictor runs it: eager and graph kernels differ by ~1e-5 once batch norm has real statistics
    direct = tf.nn.softmax(tf.function(model)(image[None].astype(np.float32), training=False), axis=-1).numpy()[0]
    assert np.allclose(make_predictor(model)(image), direct, atol=1e-6)


# ---------------------------------------------------------------- 4. 16-bit, float and other modes


def test_sixteen_bit_png_keeps_the_high_byte_as_tensorflow_decodes_it(tmp_path):
    import tensorflow as tf

    from segtrain.images import read_rgb

    values = np.arange(0, 65536, 64, dtype=np.uint16).reshape(32, 32)
    path = _png(tmp_path / "deep.png", values)
    with Image.open(path) as opened:
        assert opened.mode.startswith("I;16")  # what PIL's convert("RGB") clips to 255
    rgb = read_rgb(path)
    assert rgb.dtype == np.uint8 and rgb.shape == (32, 32, 3)
    assert np.array_equal(rgb[..., 0], (values >> 8).astype(np.uint8))
    assert rgb[0, 1, 0] == 0 and rgb[-1, -1, 0] == 255 and rgb[16, 0, 0] == (16 * 32 * 64) >> 8 == 128
    assert np.array_equal(rgb, tf.io.decode_image(path.read_bytes(), channels=3).numpy())


def _mode_images(folder: Path) -> dict[str, np.ndarray | None]:
    """An image per PIL mode; value: the RGB it must become, or None when it must be refused."""
    folder.mkdir()
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (6, 8), dtype=np.uint8)
    expected: dict[str, np.ndarray | None] = {}
    Image.fromarray(np.dstack([rgb, np.full((6, 8), 7, np.uint8)])).save(folder / "rgba.png")
    expected["rgba"] = rgb
    Image.fromarray(np.dstack([grey, grey])).save(folder / "la.png")
    expected["la"] = np.repeat(grey[..., None], 3, -1)
    palette = Image.frombytes("P", (8, 6), (grey % 4).tobytes())
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
    palette.save(folder / "pal.png", transparency=0)
    expected["pal"] = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)[grey % 4]
    Image.fromarray(grey > 127).save(folder / "bits.png")
    expected["bits"] = np.repeat(np.where(grey > 127, 255, 0).astype(np.uint8)[..., None], 3, -1)
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg", quality=100)
    expected["cmyk"] = np.asarray(Image.open(folder / "cmyk.jpg").convert("RGB"))
    deep = (grey.astype(np.uint16) << 8) | 0xFF
    Image.fromarray(deep).save(folder / "deep.tif")
    expected["deep"] = np.repeat(grey[..., None], 3, -1)
    Image.fromarray(grey.astype(np.int32) * 1000).save(folder / "int32.tif")
    expected["int32"] = None
    Image.fromarray(grey.astype(np.float32) / 255).save(folder / "float.tif")
    expected["float"] = None
    return expected


@pytest.mark.fault("segtrain", "predict")
def test_image_modes_become_the_right_rgb_or_are_refused(tmp_path):
    from segtrain.errors import ImageReadError
    from segtrain.images import read_rgb

    expected = _mode_images(tmp_path / "modes")
    for path in sorted((tmp_path / "modes").iterdir()):
        want = expected[path.stem]
        if want is None:
            with pytest.raises(ImageReadError, match=rf"^{path}: 32-bit .* no defined 0\.\.255 range"):
                read_rgb(path)
        else:
            assert np.array_equal(read_rgb(path), want), path.name


@pytest.mark.fault("segtrain", "predict")
def test_predict_goes_on_past_bad_files_and_reports_each(setup, tmp_path):
    folder = tmp_path / "photos"
    expected = _mode_images(folder)
    good = {name for name, want in expected.items() if want is not None}
    (folder / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    whole = (folder / "rgba.png").read_bytes()
    (folder / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (folder / ".hidden.png").write_bytes(b"macOS resource fork")  # hidden: not an input
    bad = [folder / "float.tif", folder / "garbage.png", folder / "int32.tif", folder / "truncated.png"]
    before = snapshot(folder)
    result = setup.cli("predict", "--checkpoint", setup.run_dir, folder, "--out", tmp_path / "pred")
    assert_refused(result, *bad, f"{len(bad)} of {len(good) + len(bad)} image(s) could not be predicted")
    assert len(error_lines(result)) == len(bad) + 1
    assert_unchanged(before, folder)
    written = {p.name for p in (tmp_path / "pred").iterdir()}
    assert written == {f"{n}{s}.png" for n in good for s in ("", "_color", "_overlay")} | {".segtrain-predict.json"}
    for name in good:
        assert Image.open(tmp_path / "pred" / f"{name}.png").size == (8, 6)


# ---------------------------------------------------------------- 5. duplicate stems


@pytest.mark.fault("segtrain", "predict")
@pytest.mark.parametrize("layout", ["png and jpg", "two folders", "name of another's colour output", "case"])
def test_predict_refuses_inputs_whose_outputs_clash(setup, tmp_path, layout):
    image = np.zeros((20, 20, 3), np.uint8)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    first, second = {
        "png and jpg": (a / "x.png", a / "x.jpg"),
        "two folders": (a / "x.png", b / "x.png"),
        "name of another's colour output": (a / "x.png", a / "x_color.png"),
        "case": (a / "x.png", b / "X.png"),
    }[layout]
    _png(first, image)
    Image.fromarray(image).save(second)
    folders = sorted({first.parent, second.parent})
    result = setup.cli("predict", "--checkpoint", setup.run_dir, *folders, "--out", tmp_path / "pred")
    assert_refused(result, first, second, "nothing was predicted")
    assert not (tmp_path / "pred").exists()


def test_the_same_file_named_twice_is_predicted_once(setup, tmp_path):
    image = _png(tmp_path / "x.png", np.zeros((20, 20, 3), np.uint8))
    (tmp_path / "sub").mkdir()
    result = setup.cli("predict", "--checkpoint", setup.run_dir, image, f"{tmp_path}/sub/../x.png", "--out", tmp_path / "pred")
    assert result.exit_code == 0 and "1 image(s) predicted" in result.output


# ---------------------------------------------------------------- 7. inputs never destroyed


@pytest.mark.fault("inputs", "predict")
@pytest.mark.parametrize("where", ["the input folder", "inside the input folder", "the parent of an input file", "inside the logdir", "the logdir"])
def test_predict_out_never_at_an_input(setup, tmp_path, where):
    run = setup.copy_run(tmp_path)
    folder = tmp_path / "D"
    folder.mkdir()
    photo = _png(folder / "photo.png", np.full((20, 20, 3), 200, np.uint8))
    out, inputs = {
        "the input folder": (folder, [folder]),
        "inside the input folder": (folder / "pred", [folder]),
        "the parent of an input file": (folder, [photo]),
        "inside the logdir": (run / "pred", [folder]),
        "the logdir": (run, [photo]),
    }[where]
    before = snapshot(folder, run)
    result = setup.cli("predict", "--checkpoint", run, *inputs, "--out", out)
    assert_refused(result, out, "--out")
    assert_unchanged(before, folder, run)


@pytest.mark.fault("inputs", "predict")
def test_predict_replaces_only_its_own_unchanged_files(setup, tmp_path):
    photo = _png(tmp_path / "photo.png", np.full((20, 20, 3), 90, np.uint8))
    other = _png(tmp_path / "other.png", np.full((20, 20, 3), 10, np.uint8))
    out = tmp_path / "pred"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert setup.cli("predict", "--checkpoint", setup.run_dir, photo, "--out", out).exit_code == 0
    ledger = json.loads((out / ".segtrain-predict.json").read_text())
    assert set(ledger["files"]) == {"photo.png", "photo_color.png", "photo_overlay.png"}
    # a second run may replace its own files
    assert setup.cli("predict", "--checkpoint", setup.run_dir, photo, "--out", out).exit_code == 0
    # a mask corrected by hand is the user's now, and so is a file predict never wrote
    (out / "photo.png").write_bytes((out / "photo.png").read_bytes() + b"edited")
    _png(out / "other_color.png", np.zeros((2, 2, 3), np.uint8))
    before = snapshot(out, photo, other)
    result = setup.cli("predict", "--checkpoint", setup.run_dir, photo, other, "--out", out)
    assert_refused(result, out / "photo.png", out / "other_color.png", "changed since segtrain predict wrote it", "was not written by segtrain predict")
    assert_unchanged(before, out, photo, other)


@pytest.mark.fault("inputs", "export")
@pytest.mark.parametrize("where", ["the logdir", "inside the logdir", "the logdir's parent"])
def test_export_out_never_at_the_checkpoint(setup, tmp_path, where):
    run = setup.copy_run(tmp_path)
    out = {"the logdir": run, "inside the logdir": run / "saved", "the logdir's parent": tmp_path}[where]
    before = snapshot(run)
    result = setup.cli("export", "--checkpoint", run, "--out", out)
    assert_refused(result, out, "--out")
    assert_unchanged(before, run)


@pytest.mark.fault("inputs", "export")
def test_export_replaces_only_an_earlier_export(setup, tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("do not lose")
    before = snapshot(foreign)
    result = setup.cli("export", "--checkpoint", setup.run_dir, "--out", foreign)
    assert_refused(result, foreign, "not a SavedModel written by segtrain export")
    assert_unchanged(before, foreign)

    earlier = tmp_path / "exported"
    earlier.mkdir()
    (earlier / "saved_model.pb").write_bytes(b"an earlier export")
    (earlier / "segtrain-export.json").write_text("{}")
    result = setup.cli("export", "--checkpoint", setup.run_dir / "ckpt-2.index", "--out", earlier)
    assert result.exit_code == 0, result.output
    marker = json.loads((earlier / "segtrain-export.json").read_text())
    assert marker["tool"] == "segtrain export" and marker["checkpoint"].endswith("ckpt-2")
    assert (earlier / "saved_model.pb").read_bytes() != b"an earlier export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported", "mine"]  # no staging folder left
    import tensorflow as tf

    serve = tf.saved_model.load(str(earlier)).signatures["serving_default"]
    for height, width in ((1, 1), (3, 5)):  # smaller than the output stride: padded, cropped back
        out = serve(images=tf.fill((2, height, width, 3), tf.constant(77, tf.uint8)))
        assert out["classes"].shape == (2, height, width) and out["probabilities"].shape == (2, height, width, 3)
        assert np.isfinite(out["probabilities"].numpy()).all()


@pytest.mark.fault("inputs", "fit")
@pytest.mark.parametrize("where", ["inside --data", "containing --data", "the --init-checkpoint", "inside --init-checkpoint"])
def test_fit_logdir_never_at_an_input(setup, tmp_path, where):
    data = tmp_path / "tf"
    shutil.copytree(setup.data, data)
    init = setup.copy_run(tmp_path, "init")
    logdir = {"inside --data": data / "log", "containing --data": tmp_path, "the --init-checkpoint": init, "inside --init-checkpoint": init / "log"}[where]
    before = snapshot(data, init)
    result = setup.cli(*FIT, "--data", data, "--logdir", logdir, "--init-checkpoint", init)
    assert_refused(result, logdir, "--logdir")
    assert_unchanged(before, data, init)


@pytest.mark.fault("inputs", "eval", "score")
@pytest.mark.parametrize("victim", ["manifest", "shard", "registry", "run file"])
def test_eval_json_never_overwrites_an_input(setup, tmp_path, victim):
    data = tmp_path / "tf"
    shutil.copytree(setup.data, data)
    run = setup.copy_run(tmp_path)
    registry = tmp_path / "registry.yaml"
    shutil.copy(setup.registry, registry)
    target = {"manifest": data / "val.manifest.json", "shard": sorted(data.glob("val-*"))[0], "registry": registry, "run file": run / "segtrain.json"}[victim]
    before = snapshot(data, run, registry)
    result = setup.cli("eval", "--dataset", "tiny", "--data", data, "--checkpoint", run, "--json", target, registry=registry)
    assert_refused(result, target, "--json would overwrite the input")
    assert_unchanged(before, data, run, registry)


@pytest.mark.fault("inputs", "score")
def test_score_json_never_overwrites_an_input(setup, tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir()
    pred.mkdir()
    _png(gt / "a.png", np.zeros((4, 4), np.uint8))
    _png(pred / "a.png", np.zeros((4, 4), np.uint8))
    before = snapshot(gt, pred)
    result = setup.cli("score", pred, gt, "--dataset", "tiny", "--json", gt / "a.png")
    assert_refused(result, gt / "a.png", "--json")
    assert_unchanged(before, gt, pred)


# ---------------------------------------------------------------- 8. NaN


def _poisoned_step(nan_loss_at: int | None = None, nan_weights_at: int | None = None):  # type: ignore[no-untyped-def]
    """A make_train_step whose steps return a NaN loss, or leave an infinite weight, at a given call.

    Faking the step keeps the test fast (no gradient graph to trace); a real `--lr 1e30` run
    ends the same way (loss became NaN at step 2), as the report of this change shows.
    """
    import tensorflow as tf

    def make(model, optimizer, loss_config, strategy=None, xla=False, regularizer=None):  # type: ignore[no-untyped-def]
        calls = [0]

        def step(images, labels):  # type: ignore[no-untyped-def]
            calls[0] += 1
            if calls[0] == nan_weights_at:
                model.get_layer("logits.semantic").bias.assign(np.full((loss_config.num_classes,), np.inf, np.float32))
            loss = float("nan") if calls[0] == nan_loss_at else 1.0
            return tf.constant(loss), tf.zeros((loss_config.num_classes,) * 2, tf.int64)

        return step

    return make


@pytest.mark.fault("segtrain", "fit")
@pytest.mark.parametrize("poison, message, saved", [
    ({"nan_loss_at": 1}, "loss became NaN at step 1", []),
    ({"nan_loss_at": 3}, "loss became NaN at step 3", ["ckpt-1", "ckpt-2"]),
    ({"nan_weights_at": 2}, "weights became NaN or infinite at step 2", ["ckpt-1"]),
])
def test_fit_stops_on_nan_without_saving_it(setup, tmp_path, monkeypatch, poison, message, saved):
    import segtrain.train

    monkeypatch.setattr(segtrain.train, "make_train_step", _poisoned_step(**poison))
    logdir = tmp_path / "log"
    result = setup.cli(*FIT, "--logdir", logdir, "--steps", "4", "--checkpoint-every", "1")
    assert_refused(result, message, "class_weights", "nothing of this step was saved")
    assert sorted(p.name[: -len(".index")] for p in logdir.glob("ckpt-*.index")) == saved
    kept = f"the last checkpoint, {logdir / saved[-1]}, is kept" if saved else "no checkpoint was written"
    assert kept in result.stderr


def test_weights_check_sees_nan_and_inf(setup):
    from segtrain.checkpoints import load_model
    from segtrain.train import weights_finite

    model, _ = load_model(setup.run_dir)
    assert weights_finite(model)
    layer = model.get_layer("logits.semantic")
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel, np.full_like(bias, np.inf)])
    assert not weights_finite(model)


# ---------------------------------------------------------------- 9. no traceback


def _junk(folder: Path) -> dict[str, Path]:
    """The kind of thing passed by mistake, in a folder of its own (outputs go elsewhere)."""
    (folder / "empty").mkdir(parents=True)
    (folder / "text.txt").write_text("hello")
    (folder / "fake.png").write_bytes(b"\x00 not an image")
    (folder / "junk.weights.h5").write_bytes(b"not hdf5")
    (folder / "gt").mkdir()
    _png(folder / "gt" / "a.png", np.zeros((4, 4), np.uint8))
    (folder / "pred").mkdir()
    (folder / "pred" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return {k: folder / k for k in ("empty", "text.txt", "fake.png", "junk.weights.h5", "gt", "pred")}


@pytest.mark.fault("traceback", "fit", "eval", "score", "predict", "export")
def test_misuse_gives_one_clear_line(setup, tmp_path):
    j = _junk(tmp_path / "junk")
    cases = [
        (("eval", "--dataset", "tiny", "--checkpoint", j["fake.png"]), j["fake.png"]),
        (("eval", "--dataset", "tiny", "--checkpoint", tmp_path / "nowhere"), tmp_path / "nowhere"),
        (("eval", "--dataset", "tiny", "--checkpoint", j["empty"]), j["empty"]),
        (("eval", "--dataset", "nope", "--checkpoint", setup.run_dir), "nope"),
        (("predict", "--checkpoint", j["text.txt"], j["fake.png"], "--out", tmp_path / "o"), j["text.txt"]),
        (("predict", "--checkpoint", setup.run_dir, j["empty"], "--out", tmp_path / "o"), j["empty"]),
        (("export", "--checkpoint", tmp_path / "nowhere", "--out", tmp_path / "o"), tmp_path / "nowhere"),
        (("score", j["pred"], j["gt"], "--dataset", "tiny"), j["pred"] / "a.png"),
        (("fit", "--dataset", "tiny", "--data", setup.data, "--logdir", tmp_path / "log", "--crop-size", "32", "--backbone-weights", j["junk.weights.h5"]), j["junk.weights.h5"]),
        (("fit", "--dataset", "tiny", "--data", j["empty"], "--logdir", tmp_path / "log"), j["empty"]),
    ]
    for args, named in cases:
        result = setup.cli(*args)
        assert_refused(result, named)
        assert not any("internal error" in line for line in error_lines(result)), result.stderr
    usage = [
        ("eval", "--dataset", "tiny", "--checkpoint", setup.run_dir, "--scales", "a,b"),
        ("eval", "--dataset", "tiny", "--checkpoint", setup.run_dir, "--scales", "0"),
        ("fit", "--dataset", "tiny", "--logdir", tmp_path / "log", "--lr", "nan"),
        ("fit", "--dataset", "tiny", "--logdir", tmp_path / "log", "--weight-decay", "inf"),
        ("fit", "--dataset", "tiny", "--logdir", tmp_path / "log", "--crop-size", "8,8"),
        ("fit", "--dataset", "tiny", "--logdir", tmp_path / "log", "--crop-size", "0"),
    ]
    for args in usage:
        result = setup.cli(*args)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert not (tmp_path / "log").exists() and not (tmp_path / "o").exists()
