"""What every segtrain command shares: the registry, option types, reports, progress and TensorFlow's start.

Light on purpose: nothing here imports TensorFlow at module level, so `segtrain --help` stays instant.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import click

from segprep.cli.common import fail


def fail_one(message: str) -> None:
    """One error line; exit 1."""
    fail([], message)


def fail_lines(lines: list[str], summary: str, limit: int = 20) -> None:
    """One error line per file (at most `limit`, then a count) and a summary; exit 1."""
    shown = lines if len(lines) <= limit else [*lines[:limit], f"... and {len(lines) - limit} more"]
    fail(shown, summary)


def registry_entry(dataset: str, registry: Path | None):  # type: ignore[no-untyped-def]
    """The dataset's registry entry; a broken registry or an unknown dataset is one error line."""
    from segprep.registry import RegistryError, load_registry, resolve_registry_path

    try:
        return load_registry(resolve_registry_path(registry)).get(dataset)
    except RegistryError as exc:
        fail_one(str(exc))


def registry_path(registry: Path | None) -> Path:
    """The user's registry file the command reads (--registry, $SEGPREP_REGISTRY or the default)."""
    from segprep.registry import resolve_registry_path

    return Path(resolve_registry_path(registry))


def data_dir(entry, data: Path | None, split: str, registry: Path | None = None) -> Path:  # type: ignore[no-untyped-def]
    """The records folder (--data, else the registry's data_dir); the split must be one the registry knows
    and, by its count, not empty (an empty split would make fit wait forever for a first batch)."""
    if split not in entry.splits:
        known = ", ".join(entry.splits) or "none (convert it with segprep first)"
        fail_one(f"dataset {entry.name!r} has no split {split!r} in the registry (known: {known})")
    folder = data or (Path(entry.data_dir) if entry.data_dir else None)
    if folder is None:
        raise click.UsageError(f"no --data and no data_dir for {entry.name!r} in the registry")
    if entry.splits[split] == 0:
        from segtrain.errors import EmptySplitError

        raise EmptySplitError(f"{folder}: split {split!r} of {entry.name!r} is empty (0 records in the registry {registry_path(registry)})")
    return folder


def check_labels(entry, folder: Path, split: str, registry: Path | None, training: bool = True) -> None:  # type: ignore[no-untyped-def]
    """Refuse a split whose manifest disagrees with the registry entry or holds labels outside its classes;
    warn (one line) about a split or samples with no trainable pixel (segtrain.labels_check)."""
    from segtrain.labels_check import check_split_labels

    for line in check_split_labels(entry, folder, split, registry_path(registry), training):
        click.echo(line, err=True)


def checkpoint_root(checkpoint: Path) -> Path:
    """The logdir a --checkpoint stands for (itself, or the folder of a checkpoint prefix or file)."""
    if checkpoint.is_dir():
        return checkpoint
    if not checkpoint.exists() and not Path(f"{checkpoint}.index").exists():
        from segtrain.errors import CheckpointError

        raise CheckpointError(f"{checkpoint}: no such checkpoint, file or folder")
    return checkpoint.parent


def pair(text: str, hint: str = "--crop-size") -> tuple[int, int]:
    """H,W (or N for N,N) of an option such as --crop-size or --input-size."""
    parts = text.replace("x", ",").split(",")
    try:
        height, width = (int(p) for p in parts) if len(parts) == 2 else (int(parts[0]),) * 2
    except ValueError:
        raise click.BadParameter(f"expected H,W or N, got {text!r}", param_hint=hint) from None
    if height < 1 or width < 1:
        raise click.BadParameter(f"sizes must be positive, got {text!r}", param_hint=hint)
    return height, width


class FiniteFloat(click.FloatRange):
    """A FloatRange that also refuses nan and inf (click lets nan through every range check)."""

    name = "float"

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def scales_option(ctx: click.Context, param: click.Parameter, text: str) -> list[float]:
    try:
        values = [float(s) for s in text.split(",")]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {text!r}") from None
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise click.BadParameter(f"scales must be positive finite numbers, got {text!r}")
    return values


def refuse_overwriting_inputs(json_path: Path | None, inputs: list[Path], ledger_now: bool = True) -> None:
    """--json must not replace one of the command's input files (a shard, segtrain.json, the registry),
    nor any file that eval/score did not write (segtrain.outputs.JsonLedger).

    ledger_now: check the ledger before the work too (eval: its timings make the bytes differ on every
    run, so a file it does not own is refused before the model runs). score checks it only when it has
    the bytes, so that a file already holding exactly them (a copy, a lost ledger) is let be.
    """
    if json_path is None or str(json_path) == "-":
        return
    from segprep.paths import check_not_overwriting

    check_not_overwriting([json_path], inputs, "--json")
    if ledger_now:
        from segtrain.outputs import check_json_target

        check_json_target(json_path)


@contextmanager
def fit_progress(total: int, batch_size: int, every: int, show: bool = True) -> Iterator[Callable[[int, float, float], None]]:
    """A rich bar with loss, step time and images/s on a terminal; otherwise a line every `every` steps; nothing unless show."""
    if not show:
        yield lambda step, loss, seconds: None
        return
    if not sys.stderr.isatty():
        def line(step: int, loss: float, seconds: float) -> None:
            if step % every == 0 or step == total:
                click.echo(f"step {step}/{total}  loss {loss:.4f}  {seconds:.3f} s/step  {batch_size / seconds:.1f} images/s", err=True)

        yield line
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("fit"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]:.4f}  {task.fields[seconds]:.3f} s/step  {task.fields[rate]:.1f} images/s"), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task("fit", total=total, loss=float("nan"), seconds=0.0, rate=0.0)

        def update(step: int, loss: float, seconds: float) -> None:
            progress.update(task, completed=step, loss=loss, seconds=seconds, rate=batch_size / seconds)

        yield update


def remember_verbose(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_root().meta["segtrain.verbose"] = True


def start_tensorflow() -> None:
    """Import TensorFlow before a command needs it, without its start-up notices unless --verbose."""
    from segtrain.quiet import quiet_tensorflow

    context = click.get_current_context(silent=True)
    quiet_tensorflow(verbose=bool(context and context.find_root().meta.get("segtrain.verbose")))


def print_report(document: dict) -> None:
    click.echo(f"{document['dataset']} {document['split']}: {document['num_images']} images, mIoU {100 * document['miou']:.2f}%, pixel accuracy {100 * document['pixel_accuracy']:.2f}%, {document['ms_per_image']:.1f} ms/image")
    for name, iou in document["per_class_iou"].items():
        click.echo(f"  {name:<20} {'—' if iou is None else f'{100 * iou:.2f}%'}")
    if "binary" in document:
        b = document["binary"]
        click.echo(f"  MaxF1 {100 * b['max_f1']:.4f}  AP {100 * b['average_precision']:.4f}  BestThresh {100 * b['best_threshold']:.4f}  PRE {100 * b['precision']:.4f}  REC {100 * b['recall']:.4f}  IoU {100 * b['iou']:.4f}")


def emit_report(document: dict, json_path: Path | None) -> None:
    if json_path is None:
        print_report(document)
        return
    text = json.dumps(document, indent=1)
    if str(json_path) == "-":
        click.echo(text)
    else:
        from segtrain.outputs import write_json_output

        write_json_output(json_path, (text + "\n").encode("utf-8"))  # only over segtrain's own JSON (its ledger) or the same bytes
        print_report(document)




def model_source_options(fn: Callable[..., object]) -> Callable[..., object]:
    """--checkpoint (a fit or import-deeplab logdir or checkpoint) or --model (an export): the model a command runs."""
    fn = click.option("--model", "model_path", type=click.Path(path_type=Path), default=None,
                      help="Instead of --checkpoint: an export (a SavedModel folder or a .tflite file from segtrain export).")(fn)
    return click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
                        help="A fit logdir (latest checkpoint), a checkpoint prefix or one of its files.")(fn)


def model_root(checkpoint: Path | None, model_path: Path | None) -> Path:
    """The files the model comes from (outputs may not overlap them); a usage error unless exactly one is given."""
    if (checkpoint is None) == (model_path is None):
        raise click.UsageError("give --checkpoint (a logdir or checkpoint) or --model (an export), one of them")
    return checkpoint_root(checkpoint) if checkpoint is not None else model_path  # type: ignore[return-value]


def model_input_files(checkpoint: Path | None, model_path: Path | None) -> list[Path]:
    """The files a command's model is read from (an output may replace none of them)."""
    if checkpoint is not None:
        from segtrain.checkpoints import resolve_checkpoint
        from segtrain.run_file import RUN_FILE

        logdir, prefix = resolve_checkpoint(checkpoint)
        return [logdir / RUN_FILE, logdir / "checkpoint", *Path(prefix).parent.glob(f"{Path(prefix).name}.*")]
    path = Path(model_path)  # type: ignore[arg-type]
    return [*path.rglob("*")] if path.is_dir() else [path]


def load_predictor(checkpoint: Path | None, model_path: Path | None, scales: Sequence[float] = (1.0,), flip: bool = False):  # type: ignore[no-untyped-def]
    """(uint8 RGB [H, W, 3] -> probabilities [H, W, K], the model's Labels) for a checkpoint (make_predictor)
    or an export (segtrain.exported: run as it would be deployed)."""
    from segtrain.labels import Labels

    if checkpoint is not None:
        from segtrain.checkpoints import load_model
        from segtrain.predict import make_predictor

        model, run = load_model(checkpoint)
        return make_predictor(model, scales, flip), Labels.from_run(run)
    from segtrain.exported import load_exported, make_exported_predictor

    exported = load_exported(model_path)  # type: ignore[arg-type]
    document = exported.metadata or {}
    labels = Labels.from_run(document) if "model" in document and "colormap" in document else Labels.default(exported.num_classes)
    return make_exported_predictor(exported, scales, flip), labels
