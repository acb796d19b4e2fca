"""Evaluation during `segtrain fit` (--eval-every N --eval-split val), and the best checkpoint by its mIoU.

Every N steps and at the last step, fit scores the split at full resolution with the code `segtrain eval`
runs (segtrain.evaluate.evaluate_records, one predictor traced once per run), writes eval/miou,
eval/pixel_accuracy and eval/iou/<class> to TensorBoard (LOGDIR/eval), prints one line, and keeps the
model of the best mIoU so far in LOGDIR/best: a segtrain logdir of its own (segtrain.json + a model-only
checkpoint), so `segtrain eval/predict/export --checkpoint LOGDIR/best` and `fit --init-checkpoint` take it.

LOGDIR/eval_history.json records the split, every evaluation (step, mIoU, pixel accuracy, per-class IoU)
and the best one, so a resumed fit keeps comparing against the best so far. A resume restarts at the
last checkpoint, which may be before the last evaluation: an evaluation at a step already recorded
replaces the records from that step on (they belonged to the abandoned continuation), while the best
model stays the best, wherever it came from, until a better one replaces it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import keras
import tensorflow as tf

from segtrain.errors import SegtrainError

EVAL_HISTORY = "eval_history.json"
BEST_DIR = "best"
EVAL_EVENTS = "eval"  # TensorBoard run folder of the evaluation scalars


class EvalHistoryError(SegtrainError):
    """LOGDIR/eval_history.json is damaged, or was recorded on another split than this fit evaluates."""


def eval_due(step: int, eval_every: int, last_step: int) -> bool:
    """Whether fit evaluates after `step`: every eval_every steps and at the last step (never when 0)."""
    return eval_every > 0 and (step % eval_every == 0 or step == last_step)


@dataclass
class EvalHistory:
    """What eval_history.json holds: the split, each evaluation, and the best one (step and mIoU)."""

    split: str
    evaluations: list[dict] = field(default_factory=list)
    best: dict | None = None

    @classmethod
    def load(cls, logdir: Path, split: str) -> EvalHistory:
        """The logdir's history (empty when there is none); EvalHistoryError naming the file when unusable."""
        path = logdir / EVAL_HISTORY
        if not path.exists():
            return cls(split)
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EvalHistoryError(f"{path}: not a valid eval history ({_reason(exc)}); delete it to start the history again") from None
        problem = _history_problem(document)
        if problem:
            raise EvalHistoryError(f"{path}: {problem}; delete it to start the history again")
        if document["split"] != split:
            raise EvalHistoryError(f"{path}: recorded on split {document['split']!r}, this fit evaluates {split!r}; use --eval-split {document['split']} or a new --logdir")
        best = document["best"] if tf.train.latest_checkpoint(str(logdir / BEST_DIR)) else None  # best/ removed: nothing to beat
        return cls(split, document["evaluations"], best)

    def record(self, step: int, report: dict) -> bool:
        """Add an evaluation (a docs/metrics.md report); True when it is the new best (strictly higher mIoU)."""
        entry = {"step": step, "miou": report["miou"], "pixel_accuracy": report["pixel_accuracy"], "per_class_iou": report["per_class_iou"]}
        self.evaluations = [e for e in self.evaluations if e["step"] < step] + [entry]
        improved = self.best is None or report["miou"] > self.best["miou"]
        if improved:
            self.best = {"step": step, "miou": report["miou"]}
        return improved

    def save(self, logdir: Path) -> None:
        from segprep.fileio import atomic_write_text

        document = {"split": self.split, "best": self.best, "evaluations": self.evaluations}
        atomic_write_text(logdir / EVAL_HISTORY, json.dumps(document, indent=1) + "\n")


def _reason(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    return "not UTF-8 text"


def _is_score(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _history_problem(document: object) -> str | None:
    """Why a parsed eval_history.json cannot be continued, or None."""
    if not isinstance(document, dict) or not isinstance(document.get("split"), str):
        return 'expected an object with a "split" name'
    evaluations = document.get("evaluations")
    if not isinstance(evaluations, list) or not all(isinstance(e, dict) and isinstance(e.get("step"), int) and _is_score(e.get("miou")) for e in evaluations):
        return '"evaluations" must be a list of objects with an integer "step" and a number "miou"'
    best = document.get("best")
    if best is not None and not (isinstance(best, dict) and isinstance(best.get("step"), int) and _is_score(best.get("miou"))):
        return '"best" must be null or an object with an integer "step" and a number "miou"'
    return None


@dataclass(frozen=True)
class EvalTarget:
    """What fit evaluates on: the split's shards and the labels that score them."""

    files: list[str]
    data_dir: Path
    split: str
    num_classes: int
    ignore_label: int
    class_names: list[str]


def prepare_evaluation(config, labels) -> tuple[EvalTarget, EvalHistory] | None:  # type: ignore[no-untyped-def]
    """For a FitConfig with eval_every and the dataset's Labels: the split's shards and the logdir's history, checked before any model is built.

    A split without shards or records, or a damaged or foreign eval_history.json, is refused here rather
    than after the first N steps of training.
    """
    if config.eval_every <= 0:
        return None
    from segtrain.data import record_files, require_records

    files = record_files(config.data_dir, config.eval_split)
    require_records(files, config.data_dir, config.eval_split)
    target = EvalTarget(files, Path(config.data_dir), config.eval_split, labels.num_classes, labels.ignore_label, list(labels.class_names))
    return target, EvalHistory.load(Path(config.logdir), config.eval_split)


class FitEvaluator:
    """Called by fit after an evaluation step: scores the split, logs it, keeps the best model."""

    def __init__(self, model: keras.Model, target: EvalTarget, history: EvalHistory, logdir: Path) -> None:
        from segtrain.predict import make_predictor

        self.model, self.target, self.logdir, self.history = model, target, logdir, history
        self._predict = make_predictor(model)
        self._best = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(logdir / BEST_DIR), max_to_keep=1, checkpoint_name="ckpt")
        self._writer = tf.summary.create_file_writer(str(logdir / EVAL_EVENTS))

    def __call__(self, step: int) -> str:
        """Evaluate the model as it is now; returns the terminal line."""
        from segtrain.evaluate import evaluate_records

        t = self.target
        report = evaluate_records(self._predict, t.files, t.data_dir, t.split, t.num_classes, t.ignore_label).report("", t.split, t.class_names)
        self._log(step, report)
        if self.history.record(step, report):
            self._save_best_run()
            self._best.save(checkpoint_number=step)
        self.history.save(self.logdir)
        best = self.history.best
        assert best is not None
        return f"step {step}: {t.split} mIoU {100 * report['miou']:.1f} % (best {100 * best['miou']:.1f} % at {best['step']})"

    def _save_best_run(self) -> None:
        """best/segtrain.json: the fit's own run file (written before training), so best/ rebuilds the same model."""
        from segprep.fileio import atomic_write_bytes
        from segtrain.run_file import RUN_FILE

        (self.logdir / BEST_DIR).mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.logdir / BEST_DIR / RUN_FILE, (self.logdir / RUN_FILE).read_bytes())

    def _log(self, step: int, report: dict) -> None:
        with self._writer.as_default(step=step):
            tf.summary.scalar("eval/miou", report["miou"])
            tf.summary.scalar("eval/pixel_accuracy", report["pixel_accuracy"])
            for name, iou in report["per_class_iou"].items():
                if iou is not None:  # a class absent from both labels and predictions has no IoU
                    tf.summary.scalar(f"eval/iou/{name}", iou)
        self._writer.flush()
