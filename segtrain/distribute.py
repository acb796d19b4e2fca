"""Which tf.distribute strategy fit trains under, and where each worker of a cluster writes.

One machine: MirroredStrategy over its GPUs when it has several, else the default strategy.
Several machines (or processes): TF_CONFIG names the cluster, as TensorFlow defines it
({"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}), and fit
trains under MultiWorkerMirroredStrategy, TensorFlow's engine for synchronous training across
workers (Keras 3's keras.distribution does not support the TensorFlow backend). Every worker runs
the same steps and the same collectives; only the chief (the "chief" task, else worker 0) writes
into the logdir. The others write their checkpoints and summaries, which TensorFlow needs them to
write, into a temporary folder of their own that they remove when training ends.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

from segtrain.errors import SegtrainError


class ClusterConfigError(SegtrainError):
    """TF_CONFIG is not a cluster description this process can join."""


@dataclass(frozen=True)
class Cluster:
    """This process's place in the training cluster (one worker, index 0, when TF_CONFIG is unset)."""

    workers: int = 1
    task_type: str | None = None
    task_index: int = 0
    has_chief: bool = False  # a "chief" task exists (else worker 0 is the chief)

    @property
    def is_chief(self) -> bool:
        return self.task_type in (None, "chief") or (self.task_type == "worker" and self.task_index == 0 and not self.has_chief)

    @property
    def multi_worker(self) -> bool:
        return self.workers > 1


def cluster_from_env(environ: dict[str, str] | None = None) -> Cluster:
    """The cluster TF_CONFIG describes; a single worker without it."""
    text = (environ if environ is not None else os.environ).get("TF_CONFIG", "").strip()
    if not text:
        return Cluster()
    try:
        config = json.loads(text)
        cluster, task = config.get("cluster") or {}, config.get("task") or {}
        chiefs, workers = len(cluster.get("chief", [])), len(cluster.get("worker", []))
        task_type, task_index = task.get("type"), int(task.get("index", 0))
    except (ValueError, TypeError, AttributeError) as exc:
        raise ClusterConfigError(f"TF_CONFIG is not a TensorFlow cluster description ({exc})") from None
    if chiefs + workers == 0:
        return Cluster()
    if task_type not in ("chief", "worker"):
        raise ClusterConfigError(f"TF_CONFIG: task type {task_type!r}; fit runs as a chief or worker task (no parameter servers)")
    members = chiefs if task_type == "chief" else workers
    if not 0 <= task_index < members:
        raise ClusterConfigError(f"TF_CONFIG: task {task_type} {task_index}, but the cluster has {members} {task_type} task(s)")
    return Cluster(chiefs + workers, task_type, task_index, chiefs > 0)


def choose_strategy(cluster: Cluster) -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy for a cluster, MirroredStrategy for several local GPUs, else the default.

    Must run before TensorFlow executes anything: collective ops are configured at start-up.
    """
    if cluster.multi_worker:
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


def shard_policy(files: list[str], cluster: Cluster) -> tf.data.experimental.AutoShardPolicy:
    """Each worker reads its own shard files when there are enough of them, else every worker skips to its own records."""
    if len(files) >= cluster.workers:
        return tf.data.experimental.AutoShardPolicy.FILE
    return tf.data.experimental.AutoShardPolicy.DATA


@contextmanager
def write_location(logdir: Path, cluster: Cluster) -> Iterator[Path]:
    """The logdir for the chief; for another worker a temporary folder, removed afterwards (even on failure)."""
    if cluster.is_chief:
        yield logdir
        return
    scratch = Path(tempfile.mkdtemp(prefix=f"segtrain-{cluster.task_type}{cluster.task_index}-"))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def localhost_addresses(count: int) -> list[str]:
    """`localhost:PORT` for a cluster of `count` workers on this machine (free ports, as the OS hands them out)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [f"localhost:{s.getsockname()[1]}" for s in sockets]
    finally:
        for s in sockets:
            s.close()
