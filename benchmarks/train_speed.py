"""segtrain speed on this machine: input pipeline vs training step, training images/s, eval ms/image.

On CamVid converted by segprep (../shared/datasets/camvid, 360x480 frames), DeepLab's MobileNetV2 at
output stride 16, with and without ASPP + decoder, and DeepLab's Xception-65 at output stride 16 with
ASPP + decoder (its own batch size, --xception-batch-size, default 2):
- input pipeline: images/s of train_dataset (decode, DeepLab augmentation, 360x480 crops, batching)
  pulled as fast as possible, against the training step's images/s on one fixed batch. Goal: the
  pipeline never starves the step, i.e. pipeline images/s >= 3x step images/s.
- training images/s: optimizer steps on 360x480 crops (batch --batch-size), first steps excluded.
- eval ms/image: full-resolution 360x480 inference, one image at a time, first call excluded.

Run: .venv/bin/python benchmarks/train_speed.py [--batch-size 4] [--xception-batch-size 2] [--steps 10] [--data DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import CAMVID, converted_camvid, format_table

GOAL = 3.0


def pipeline_images_per_second(files: list[str], batch_size: int, batches: int) -> float:
    from segtrain.data import AugmentConfig, train_dataset
    from segtrain.model import MEAN_PIXEL

    config = AugmentConfig(crop_height=360, crop_width=480, mean_pixel=MEAN_PIXEL)
    iterator = iter(train_dataset(files, config, batch_size, seed=0))
    for _ in range(3):  # fill the prefetch buffers and shuffle buffer
        next(iterator)
    began = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - began)


def step_and_eval(files: list[str], batch_size: int, steps: int, aspp: bool, decoder: bool, backbone: str = "mobilenetv2", frames: int = 10) -> tuple[float, float]:
    """(training images/s, eval ms/image over `frames` images) for a backbone at OS16."""
    import keras
    import numpy as np

    from segtrain.data import AugmentConfig, eval_dataset, train_dataset
    from segtrain.losses import LossConfig
    from segtrain.model import MEAN_PIXEL, ModelConfig, build_deeplab
    from segtrain.predict import make_predictor
    from segtrain.train import make_train_step

    model = build_deeplab(ModelConfig(num_classes=11, backbone=backbone, output_stride=16, aspp=aspp, decoder=decoder, bn_momentum=0.99))
    optimizer = keras.optimizers.SGD(0.001, momentum=0.9)
    step = make_train_step(model, optimizer, LossConfig(num_classes=11))
    config = AugmentConfig(crop_height=360, crop_width=480, mean_pixel=MEAN_PIXEL)
    images, labels = next(iter(train_dataset(files, config, batch_size, seed=0)))
    for _ in range(2):
        float(step(images, labels)[0])
    times = []
    for _ in range(steps):
        began = time.perf_counter()
        float(step(images, labels)[0])
        times.append(time.perf_counter() - began)
    train_rate = batch_size / statistics.median(times)
    predict = make_predictor(model)
    frames = [e["image"].numpy() for e, _ in zip(eval_dataset(files), range(frames + 1))]
    predict(frames[0])
    began = time.perf_counter()
    for frame in frames[1:]:
        predict(frame)
    eval_ms = 1000 * (time.perf_counter() - began) / (len(frames) - 1)
    assert frames[0].shape == (360, 480, 3) and np.isfinite(eval_ms)
    return train_rate, eval_ms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--xception-batch-size", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per model (median)")
    parser.add_argument("--xception-steps", type=int, default=4, help="timed training steps of Xception-65 (median)")
    parser.add_argument("--batches", type=int, default=30, help="timed input-pipeline batches")
    parser.add_argument("--data", type=Path, help="CamVid records already converted by segprep")
    args = parser.parse_args()
    if args.data is None and not CAMVID.is_dir():
        raise SystemExit(f"no CamVid at {CAMVID}; pass --data DIR")
    with tempfile.TemporaryDirectory() as work:
        data = args.data or converted_camvid(Path(work))
        from segtrain.data import record_files

        files = record_files(data, "train")
        pipeline = pipeline_images_per_second(files, args.batch_size, args.batches)
        rows = []
        full_rate = None
        models = (
            ("MobileNetV2", "mobilenetv2", "ASPP + decoder", True, True, args.batch_size, args.steps, 10),
            ("MobileNetV2", "mobilenetv2", "no ASPP, no decoder", False, False, args.batch_size, args.steps, 10),
            ("Xception-65", "xception65", "ASPP + decoder", True, True, args.xception_batch_size, args.xception_steps, 4),
        )
        for name, backbone, label, aspp, decoder, batch, steps, frames in models:
            rate, eval_ms = step_and_eval(files, batch, steps, aspp, decoder, backbone, frames)
            full_rate = full_rate or rate
            rows.append([f"train step, {name} OS16, {label}, batch {batch}", f"{rate:.2f} images/s", "input pipeline", f"{pipeline:.1f} images/s", f"pipeline ×{pipeline / rate:.1f} the step"])
            rows.append([f"eval 360x480, {name} OS16, {label}", f"{eval_ms:.0f} ms/image", "", "", ""])
    print(f"CamVid train split, crops 360x480, pipeline batch {args.batch_size}, {os.cpu_count()} CPUs visible")
    print(format_table(["figure", "value", "baseline", "baseline value", "ratio"], rows))
    worst = min(pipeline / float(r[1].split()[0]) for r in rows if r[1].endswith("images/s"))
    print(f"\ngoal: pipeline ≥ {GOAL:g}× the training step's images/s: {'met' if worst >= GOAL else 'NOT met'} (×{worst:.1f} for the fastest step)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
