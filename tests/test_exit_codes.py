"""One error contract for both CLIs, told by the exit status (segprep.cli.guarded).

1: the user's data or environment (SegprepError / SegtrainError, OSError, MemoryError, TensorFlow's
   data and resource errors): one `error:` line, or one per bad file and a summary.
2: a usage error (click's UsageError / BadParameter).
3: an internal error (anything else: a bug): one line, no traceback; --debug shows the traceback.
130: interrupted.

Which exceptions are expected is decided by class, never by the module a class was defined in.
"""

from __future__ import annotations

import sys
import traceback
import types
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_folder_dataset, png_bytes

from segprep.cli.guarded import EXIT_DATA_ERROR, EXIT_INTERNAL_ERROR, EXIT_INTERRUPTED, describe_exception

INTERNAL_HINT = "re-run with --debug for the traceback"


def error_lines(result) -> list[str]:  # type: ignore[no-untyped-def]
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def assert_one_internal_line(result, tool: str, kind: str, message: str) -> None:  # type: ignore[no-untyped-def]
    output = result.stdout + result.stderr
    assert result.exit_code == EXIT_INTERNAL_ERROR, output
    assert "Traceback" not in output, output
    assert result.stderr.strip().splitlines() == [
        f"error: internal error: {kind}: {message} (this is a bug in {tool}; {INTERNAL_HINT})"
    ], result.stderr


# --------------------------------------------------------------------------- segprep


@pytest.fixture
def segprep_cli(registry: Path):  # type: ignore[no-untyped-def]
    from segprep.cli.main import main

    def run(*args: object, catch: bool = False):  # type: ignore[no-untyped-def]
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=catch)

    return run


def convert_folder(run, root: Path, out: Path, *extra: object, catch: bool = False):  # type: ignore[no-untyped-def]
    return run("convert", "folder", "--root", root, "--out", out, "--name", "toy", "--quiet", *extra, catch=catch)


def test_segprep_data_error_is_one_line_and_exit_1(segprep_cli, tmp_path):
    (tmp_path / "empty").mkdir()
    result = segprep_cli("convert", "pascal_voc_seg", "--root", tmp_path / "empty", "--out", tmp_path / "out", "--quiet")
    assert result.exit_code == EXIT_DATA_ERROR, result.output
    assert error_lines(result) == [f"error: {tmp_path / 'empty'}: not a PASCAL VOC 2012 folder (no ImageSets/Segmentation/ found)"]
    assert "Traceback" not in result.output and "internal error" not in result.output


def test_segprep_bad_files_are_one_line_each_plus_a_summary(segprep_cli, tmp_path):
    root = make_folder_dataset(tmp_path / "data", count=4)
    (root / "labels" / "s000.png").unlink()
    (root / "labels" / "s001.png").unlink()
    result = segprep_cli("lists", root, "--split", "train=1")
    assert result.exit_code == EXIT_DATA_ERROR, result.output
    lines = error_lines(result)
    assert len(lines) == 3, lines
    assert "s000" in lines[0] and "s001" in lines[1] and lines[2] == "error: 2 problem(s); no list written"
    assert "internal error" not in result.output


@pytest.mark.parametrize("split", ["train=2", "train", "train=0.5,val", "../x=0.5"])
def test_segprep_bad_split_option_is_a_usage_error(segprep_cli, folder_dataset, tmp_path, split):
    """A bad --split of `convert folder` is a usage error (exit 2) naming the option, as it is for `lists`."""
    result = convert_folder(segprep_cli, folder_dataset, tmp_path / "out", "--split", split)
    assert result.exit_code == 2, result.output
    assert "--split" in result.stderr and "Traceback" not in result.output
    assert segprep_cli("lists", folder_dataset, "--split", split, "--out", tmp_path / "lists").exit_code == 2


def test_segprep_unknown_option_is_exit_2(segprep_cli):
    result = segprep_cli("convert", "folder", "--no-such-option")
    assert result.exit_code == 2 and "No such option" in result.stderr


@pytest.mark.parametrize(
    ("exception", "kind"),
    [(KeyError("boom"), "KeyError"), (RuntimeError("boom"), "RuntimeError"), (ValueError("boom"), "ValueError")],
)
def test_segprep_bug_is_exit_3_one_line(segprep_cli, folder_dataset, tmp_path, monkeypatch, exception, kind):
    """A plain ValueError from an adapter's plan() is a bug too: only the project's error classes are expected."""
    import segprep.datasets.folder

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise exception

    monkeypatch.setattr(segprep.datasets.folder, "load_folder", broken)
    result = convert_folder(segprep_cli, folder_dataset, tmp_path / "out")
    assert_one_internal_line(result, "segprep", kind, "'boom'" if kind == "KeyError" else "boom")
    assert not (tmp_path / "out").exists()


def test_segprep_debug_shows_the_traceback(segprep_cli, folder_dataset, tmp_path, monkeypatch):
    import segprep.convert

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyError("boom")

    monkeypatch.setattr(segprep.convert, "write_layout", broken)
    result = segprep_cli("--debug", "convert", "folder", "--root", folder_dataset, "--out", tmp_path / "out", "--name", "toy", "--quiet", catch=True)
    assert isinstance(result.exception, KeyError)
    shown = "".join(traceback.format_exception(*result.exc_info))
    assert "Traceback" in shown and "in broken" in shown and "KeyError: 'boom'" in shown
    assert "internal error" not in result.stderr
    monkeypatch.setenv("SEGPREP_DEBUG", "1")
    assert isinstance(convert_folder(segprep_cli, folder_dataset, tmp_path / "out", catch=True).exception, KeyError)


@pytest.mark.parametrize(
    "exception",
    [
        OSError(28, "No space left on device", "/x/out"),
        MemoryError(),
    ],
    ids=["oserror", "memoryerror"],
)
def test_segprep_environment_errors_are_exit_1(segprep_cli, folder_dataset, tmp_path, monkeypatch, exception):
    import segprep.convert

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise exception

    monkeypatch.setattr(segprep.convert, "write_layout", broken)
    result = convert_folder(segprep_cli, folder_dataset, tmp_path / "out")
    assert result.exit_code == EXIT_DATA_ERROR, result.output
    assert len(error_lines(result)) == 1 and "internal error" not in result.stderr and "Traceback" not in result.output


def test_segprep_interrupt_is_130(segprep_cli, folder_dataset, tmp_path, monkeypatch):
    import segprep.convert

    def interrupted(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(segprep.convert, "write_layout", interrupted)
    result = convert_folder(segprep_cli, folder_dataset, tmp_path / "out")
    assert result.exit_code == EXIT_INTERRUPTED and error_lines(result) == ["error: interrupted"]


# --------------------------------------------------------------------------- segtrain


@pytest.fixture
def segtrain_cli(registry: Path):  # type: ignore[no-untyped-def]
    from segtrain.cli import main

    def run(*args: object, catch: bool = False):  # type: ignore[no-untyped-def]
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=catch)

    return run


@pytest.fixture
def score_folders(tmp_path: Path) -> tuple[Path, Path]:
    """gt/a.png, gt/b.png (CamVid index PNGs) and pred/ with a good a.png and a damaged b.png."""
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir()
    pred.mkdir()
    label = (np.arange(12 * 16).reshape(12, 16) % 11).astype(np.uint8)
    for name in ("a", "b"):
        (gt / f"{name}.png").write_bytes(png_bytes(label, "L"))
    (pred / "a.png").write_bytes(png_bytes(label, "L"))
    (pred / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png at all")
    return pred, gt


def test_segtrain_data_error_is_one_line_and_exit_1(segtrain_cli, tmp_path):
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    result = segtrain_cli("score", tmp_path / "pred", tmp_path / "gt", "--dataset", "camvid")
    assert result.exit_code == EXIT_DATA_ERROR, result.output
    assert error_lines(result) == [f"error: {tmp_path / 'gt'}: no ground-truth PNGs"]
    assert "Traceback" not in result.output


def test_segtrain_bad_files_are_one_line_each_plus_a_summary(segtrain_cli, score_folders):
    pred, gt = score_folders
    result = segtrain_cli("score", pred, gt, "--dataset", "camvid")
    assert result.exit_code == EXIT_DATA_ERROR, result.output
    lines = error_lines(result)
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"error: {pred / 'b.png'}: ") and lines[1] == f"error: 1 prediction(s) missing or unusable in {pred}"
    assert "internal error" not in result.output and "Traceback" not in result.output


def test_segtrain_usage_errors_are_exit_2(segtrain_cli, score_folders):
    pred, gt = score_folders
    assert segtrain_cli("score", pred, gt).exit_code == 2  # --dataset missing
    result = segtrain_cli("score", pred, gt, "--dataset", "camvid", "--probabilities")
    assert result.exit_code == 2 and "--probabilities is for 2-class datasets" in result.stderr
    assert segtrain_cli("no-such-command").exit_code == 2


@pytest.mark.parametrize(
    ("exception", "kind", "message"),
    [(KeyError("boom"), "KeyError", "'boom'"), (RuntimeError("two\nlines"), "RuntimeError", "two | lines"), (TypeError(), "TypeError", None)],
)
def test_segtrain_bug_is_exit_3_one_line(segtrain_cli, score_folders, monkeypatch, exception, kind, message):
    import segtrain.evaluate

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise exception

    monkeypatch.setattr(segtrain.evaluate, "score_folders", broken)
    pred, gt = score_folders
    result = segtrain_cli("score", pred, gt, "--dataset", "camvid")
    if message is None:  # no message: the type alone
        assert result.exit_code == EXIT_INTERNAL_ERROR
        assert result.stderr.strip().splitlines() == [f"error: internal error: {kind} (this is a bug in segtrain; {INTERNAL_HINT})"]
    else:
        assert_one_internal_line(result, "segtrain", kind, message)


def test_segtrain_debug_shows_the_traceback(segtrain_cli, score_folders, monkeypatch):
    import segtrain.evaluate

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyError("boom")

    monkeypatch.setattr(segtrain.evaluate, "score_folders", broken)
    pred, gt = score_folders
    result = segtrain_cli("--debug", "score", pred, gt, "--dataset", "camvid", catch=True)
    assert isinstance(result.exception, KeyError)
    shown = "".join(traceback.format_exception(*result.exc_info))
    assert "in broken" in shown and "KeyError: 'boom'" in shown
    assert "internal error" not in result.stderr


def test_segtrain_errors_are_exit_1(segtrain_cli, score_folders, monkeypatch):
    """SegtrainError (and the checkpoint error) through the group: expected, one line, exit 1."""
    import segtrain.evaluate
    from segtrain.deeplab_checkpoint import DeepLabCheckpointError
    from segtrain.errors import CheckpointError, SegtrainError

    assert issubclass(DeepLabCheckpointError, SegtrainError)
    pred, gt = score_folders
    for exception in (CheckpointError("run/ckpt-3: damaged"), DeepLabCheckpointError("model.ckpt: not DeepLab's")):

        def broken(*args, exception=exception, **kwargs):  # type: ignore[no-untyped-def]
            raise exception

        monkeypatch.setattr(segtrain.evaluate, "score_folders", broken)
        result = segtrain_cli("score", pred, gt, "--dataset", "camvid")
        assert result.exit_code == EXIT_DATA_ERROR, result.output
        assert error_lines(result) == [f"error: {exception}"]


# --------------------------------------------------------------------------- the classification itself


def test_error_classes_are_segprep_errors_and_still_value_errors():
    from segprep.class_weights import ClassWeightsError
    from segprep.colormaps import ColormapError, ColormapFileError
    from segprep.datasets.adapter import OptionError, PrepareError
    from segprep.datasets.base import LayoutError
    from segprep.errors import SegprepError
    from segprep.formats.labelme_json import LabelmeFormatError
    from segprep.ops.cityscapes_labels import UnknownClassError
    from segprep.ops.cityscapes_raster import AnnotationError
    from segprep.preview import PreviewError
    from segprep.registry import RegistryError
    from segprep.splits import SplitSpecError
    from segtrain.errors import SegtrainError

    for cls in (LayoutError, OptionError, PrepareError, AnnotationError, UnknownClassError, LabelmeFormatError,
                RegistryError, ColormapError, ColormapFileError, SplitSpecError, ClassWeightsError, PreviewError, SegtrainError):
        assert issubclass(cls, SegprepError) and issubclass(cls, ValueError), cls


def test_plain_value_errors_of_user_input_are_now_classed():
    from segprep.colormaps import ColormapError, resolve_colormap
    from segprep.splits import SplitSpecError, parse_fractions

    with pytest.raises(ColormapError, match="unknown colormap 'nope'"):
        resolve_colormap("nope")
    with pytest.raises(ColormapError, match="colormap entry 0"):
        resolve_colormap([[0, 0, 256]])
    with pytest.raises(SplitSpecError, match="given twice"):
        parse_fractions(["train=0.5", "train=0.5"])


def test_no_module_name_sniffing():
    """A ValueError subclass merely defined in a module named segprep... is not expected; nor is a
    class named like a TensorFlow error that is not one."""
    lookalike = type("LayoutError", (ValueError,), {"__module__": "segprep.datasets.base"})
    message, expected = describe_exception(lookalike("no"), "segprep")
    assert not expected and message.startswith("internal error: LayoutError: no (this is a bug in segprep;")
    fake_tf_error = type("NotFoundError", (Exception,), {"__module__": "tensorflow.python.framework.errors_impl"})
    assert not describe_exception(fake_tf_error("x"))[1]


def test_tensorflow_errors_by_class_without_importing_it(monkeypatch):
    class OpError(Exception):
        def __init__(self, message: str) -> None:
            super().__init__(message)
            self.message = message

    class NotFoundError(OpError):
        pass

    class UnimplementedError(OpError):
        pass

    class InternalError(OpError):
        pass

    errors = types.SimpleNamespace(OpError=OpError, NotFoundError=NotFoundError, UnimplementedError=UnimplementedError, InternalError=InternalError)
    # Without TensorFlow loaded nothing is a TensorFlow error (and describe_exception does not load it).
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    assert not describe_exception(NotFoundError("gone"))[1]
    assert "tensorflow" not in sys.modules
    monkeypatch.setitem(sys.modules, "tensorflow", types.SimpleNamespace(errors=errors))
    assert describe_exception(NotFoundError("x.tfrecord\nmissing")) == ("TensorFlow: x.tfrecord | missing", True)
    assert not describe_exception(UnimplementedError("no kernel"))[1]  # not on the list: a bug
    assert not describe_exception(InternalError("oops"))[1]


def test_expected_kinds():
    from segprep.errors import SegprepError

    assert describe_exception(SegprepError("a\nb")) == ("a | b", True)
    assert describe_exception(FileNotFoundError(2, "No such file or directory", "/x/y")) == ("/x/y: no such file or folder", True)
    assert describe_exception(MemoryError()) == ("out of memory", True)
    assert describe_exception(ValueError("plain"))[1] is False
    assert describe_exception(KeyError("k"))[1] is False
