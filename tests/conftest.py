"""Shared fixtures: a private registry copy, small synthetic datasets in each layout, a CLI runner."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from segprep import schema

REPO = Path(__file__).resolve().parent.parent
SHARED_CAMVID = REPO.parent / "shared" / "datasets" / "camvid"


@pytest.fixture(autouse=True)
def private_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own user registry (not created yet): none may touch the user's ~/.config."""
    path = tmp_path / "registry.yaml"
    monkeypatch.setenv("SEGPREP_REGISTRY", str(path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return path


@pytest.fixture
def registry(private_registry: Path) -> Path:
    """The test's user registry file, layered over the built-ins; starts with no dataset of its own."""
    private_registry.write_text("# The test's own registry: its datasets layer over segprep's built-in ones.\ndatasets:\n")
    return private_registry


@pytest.fixture
def run_cli(registry: Path):
    """Invoke segprep in-process; returns click's Result (exit_code, stdout, stderr)."""
    from segprep.cli.main import main

    def run(*args: str):
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)

    return run


def random_image(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def random_label(rng: np.random.Generator, width: int, height: int, num_classes: int, ignore: int = 255) -> np.ndarray:
    label = rng.integers(0, num_classes, (height, width), dtype=np.uint8)
    label[0, :] = ignore
    return label


def png_bytes(array: np.ndarray, mode: str | None = None, palette: list[int] | None = None) -> bytes:
    """Encode with PIL; mode "P" makes a palette PNG of the array's values, otherwise the dtype decides."""
    if mode == "P":
        image = Image.frombytes("P", (array.shape[1], array.shape[0]), np.ascontiguousarray(array).tobytes())
        image.putpalette(palette or [v for i in range(256) for v in (i, i, i)])
    else:
        image = Image.fromarray(array)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def jpeg_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def make_folder_dataset(root: Path, count: int = 10, num_classes: int = 4, seed: int = 0, size: tuple[int, int] = (24, 16)) -> Path:
    """ROOT/images/*.jpg|png, ROOT/labels/*.png (index PNGs, half of them palette PNGs), class_names.txt."""
    from segprep.colormaps import builtin_colormap, palette_for_png

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    palette = palette_for_png(builtin_colormap("pascal"))
    for i in range(count):
        width, height = size[0] + i % 3, size[1] + i % 2
        image = random_image(rng, width, height)
        suffix = ".jpg" if i % 2 else ".png"
        data = jpeg_bytes(image) if suffix == ".jpg" else png_bytes(image)
        (root / "images" / f"s{i:03d}{suffix}").write_bytes(data)
        label = random_label(rng, width, height, num_classes)
        if i % 2:
            (root / "labels" / f"s{i:03d}.png").write_bytes(png_bytes(label, "P", palette))
        else:
            (root / "labels" / f"s{i:03d}.png").write_bytes(png_bytes(label, "L"))
    (root / "class_names.txt").write_text("".join(f"class{c}\n" for c in range(num_classes)))
    return root


def convert_tiny_records(root: Path, registry: Path) -> Path:
    """8 samples (3 classes, about 40x28) converted as dataset `tiny` (train 6, val 2) into root/tf, registered in `registry`."""
    from segprep.cli.main import main as segprep_main

    make_folder_dataset(root / "data", count=8, num_classes=3, size=(40, 28))
    result = CliRunner().invoke(segprep_main, ["convert", "folder", "--root", str(root / "data"), "--out", str(root / "tf"), "--name", "tiny",
                                               "--quiet", "--split", "train=0.75", "--split", "val=0.25", "--registry", str(registry)])
    assert result.exit_code == 0, result.output
    return root / "tf"


def segtrain_runner(registry: Path, registry_commands: tuple[str, ...] = ("fit", "eval", "score")):  # type: ignore[no-untyped-def]
    """run(*args): segtrain in-process, with --registry added to the commands that read the registry."""
    from segtrain.cli import main

    def run(*args: object):  # type: ignore[no-untyped-def]
        extra = ["--registry", str(registry)] if args[0] in registry_commands else []
        return CliRunner().invoke(main, [*map(str, args), *extra], catch_exceptions=False)

    return run


def registry_with(registry: Path, out: Path, name: str, names: list[str], **entry: object) -> Path:
    """out: a copy of the registry file with one more 3-class dataset (YAML flow style is JSON); entry overrides its keys."""
    import json

    fields = {"num_classes": 3, "ignore_label": 255, "colormap": "pascal", "class_names": names, "class_weights": None, **entry}
    text = registry.read_text().rstrip("\n") + f"\n  {name}:\n" + "".join(f"    {k}: {json.dumps(v)}\n" for k, v in fields.items())
    out.write_text(text)
    return out


@pytest.fixture
def folder_dataset(tmp_path: Path) -> Path:
    return make_folder_dataset(tmp_path / "data")


def make_camvid_layout(root: Path, counts: dict[str, int], seed: int = 0) -> Path:
    """The SegNet CamVid layout with list files of absolute paths from 'another machine'."""
    rng = np.random.default_rng(seed)
    for split, count in counts.items():
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir()
        lines = []
        for i in range(count):
            name = f"0001TP_{split}_{i:04d}.png"
            (root / split / name).write_bytes(png_bytes(random_image(rng, 20, 12)))
            (root / f"{split}annot" / name).write_bytes(png_bytes(rng.integers(0, 12, (12, 20), dtype=np.uint8), "L"))
            lines.append(f"/SegNet/CamVid/{split}/{name} /SegNet/CamVid/{split}annot/{name}\n")
        (root / f"{split}.txt").write_text("".join(lines))
    return root


def read_records(out_dir: Path, split: str) -> list[dict]:
    """Records of a split parsed with TensorFlow's own reader and parser, in shard order."""
    import tensorflow as tf

    files = [str(p) for p in schema.shard_files(out_dir, split)]
    spec = {
        schema.IMAGE: tf.io.FixedLenFeature((), tf.string),
        schema.FILENAME: tf.io.FixedLenFeature((), tf.string),
        schema.IMAGE_FORMAT: tf.io.FixedLenFeature((), tf.string),
        schema.HEIGHT: tf.io.FixedLenFeature((), tf.int64),
        schema.WIDTH: tf.io.FixedLenFeature((), tf.int64),
        schema.CHANNELS: tf.io.FixedLenFeature((), tf.int64),
        schema.LABEL: tf.io.FixedLenFeature((), tf.string),
        schema.LABEL_FORMAT: tf.io.FixedLenFeature((), tf.string),
    }
    out = []
    for record in tf.data.TFRecordDataset(files):
        parsed = tf.io.parse_single_example(record, spec)
        out.append({k: v.numpy() for k, v in parsed.items()})
    return out


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fault-table", action="store_true", help="Print the fault class | commands | cases | result table.")


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # type: ignore[no-untyped-def]
    """With --fault-table: one row per fault class from the tests marked @pytest.mark.fault."""
    if not config.getoption("--fault-table"):
        return
    from faultkit import FAULT_CLASSES

    rows: dict[str, dict] = {key: {"commands": set(), "cases": 0, "passed": 0} for key in FAULT_CLASSES}
    for outcome in ("passed", "failed", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", "call") != "call" and outcome == "passed":
                continue
            marks = getattr(report, "fault_marks", None) or []
            for cls, commands in marks:
                row = rows.setdefault(cls, {"commands": set(), "cases": 0, "passed": 0})
                row["commands"].update(commands)
                row["cases"] += 1
                row["passed"] += outcome == "passed"
    terminalreporter.write_line("")
    terminalreporter.write_line("fault class | commands checked | cases in the tests | result")
    for key, row in rows.items():
        label = FAULT_CLASSES.get(key, key)
        result = "all pass" if row["cases"] and row["passed"] == row["cases"] else f"{row['passed']}/{row['cases']} pass"
        terminalreporter.write_line(f"{label} | {', '.join(sorted(row['commands'])) or '-'} | {row['cases']} | {result}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    report.fault_marks = [(m.args[0], tuple(m.args[1:])) for m in item.iter_markers("fault")]
