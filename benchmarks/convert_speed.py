"""End-to-end speed of `segprep convert camvid` against two single-process baselines.

    python benchmarks/convert_speed.py [--root DIR] [--repeat 3] [--workers N]

Each contender runs as its own process and is timed from process start to exit
(time.perf_counter around subprocess.run); the figure is the median of --repeat runs, after one
untimed pass that reads every file of the dataset so the page cache is equally warm for all.

Contenders, all writing 4 shards per split (contiguous chunks of ceil(N/4)) of the same
tf.train.Example layout:

- segprep: `segprep convert camvid --quiet --num-shards 4` with the default payload checks
  (validates every label pixel, remaps void 11 -> 255, checks every PNG chunk's CRC in images and
  labels, inflates every label strictly, Huffman-decodes JPEG scans, reads image sizes from
  headers, writes manifests, uses all cores).
- segprep --decode-images: the same, also inflating every byte of every PNG image (reported as a
  third row; the goal applies to the default).
- decode-everything: what DeepLab's build_voc2012_data.py / build_data.ImageReader does, in one
  process with TensorFlow: GFile read, decode image and label to get their shapes, check they match,
  remap 11 -> 255 with numpy, re-encode the label with tf.io.encode_png, tf.train.Example,
  tf.io.TFRecordWriter.
- segprep --runner beam: the same conversion as an Apache Beam pipeline on the DirectRunner with
  one worker process per core (only when apache-beam, the [beam] extra, is installed); every file
  it writes must have the local runner's sha256.
- raw byte copy: read the two files and write them framed with segprep's encode_example /
  frame_record; no TensorFlow, no decode, no checks, labels copied unchanged, height/width constant.
  This is the I/O + serialisation limit.

Every output is read back with segprep.formats.tfrecord.iter_records and must hold 701 records.
The baselines are functions in this file, run as `python benchmarks/convert_speed.py
--_run-baseline {decode,raw} OUT --root ROOT`; this module imports only the standard library at
the top so that the raw baseline's process pays for nothing it does not use.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import math
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path, PurePosixPath

from _common import timed_command

REPO = Path(__file__).resolve().parent.parent
DEFAULT_ROOT = REPO.parent / "shared" / "datasets" / "camvid"
SPLITS = ("train", "val", "test")
NUM_SHARDS = 4
EXPECTED_RECORDS = 701
CAMVID_HEIGHT, CAMVID_WIDTH = 360, 480

DECODE_NAME = "decode-everything (DeepLab build_voc2012_data.py style)"
RAW_NAME = "raw byte copy (no checks)"


# --------------------------------------------------------------------------- shared helpers


def read_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    """(image, label) paths of a split, list-file paths resolved by their last two components."""
    pairs = []
    for line in (root / f"{split}.txt").read_text().splitlines():
        fields = line.split()
        if not fields:
            continue
        image, label = (root / Path(*PurePosixPath(text).parts[-2:]) for text in fields[:2])
        pairs.append((image, label))
    return pairs


def shard_chunks(items: list, num_shards: int) -> list[list]:
    """Contiguous chunks of ceil(N/num_shards); trailing shards may be short or empty."""
    size = math.ceil(len(items) / num_shards) if items else 0
    return [items[i * size : (i + 1) * size] for i in range(num_shards)]


def shard_path(out: Path, split: str, index: int, num_shards: int) -> Path:
    from segprep.schema import shard_name

    return out / shard_name(split, index, num_shards)


# --------------------------------------------------------------------------- baselines


def run_baseline_decode(root: Path, out: Path) -> None:
    """DeepLab build_data.ImageReader style: decode everything with TensorFlow, one process."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    from segprep.schema import example_features

    out.mkdir(parents=True, exist_ok=True)

    def bytes_feature(value: bytes) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    def int64_feature(value: int) -> tf.train.Feature:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

    for split in SPLITS:
        for index, chunk in enumerate(shard_chunks(read_pairs(root, split), NUM_SHARDS)):
            with tf.io.TFRecordWriter(str(shard_path(out, split, index, NUM_SHARDS))) as writer:
                for image_path, label_path in chunk:
                    with tf.io.gfile.GFile(str(image_path), "rb") as handle:
                        image_data = handle.read()
                    image = tf.io.decode_png(image_data, channels=3).numpy()
                    height, width = image.shape[:2]
                    with tf.io.gfile.GFile(str(label_path), "rb") as handle:
                        label_data = handle.read()
                    label = tf.io.decode_png(label_data, channels=1).numpy()
                    if label.shape[:2] != (height, width):
                        raise RuntimeError(f"shape mismatch between {image_path} and {label_path}")
                    void = label == 11
                    if void.any():  # re-encode only when something changed, as segprep does
                        label = np.where(void, np.uint8(255), label)
                        label_data = tf.io.encode_png(label).numpy()
                    features = example_features(image_path.stem, image_data, "png", height, width, label_data)
                    example = tf.train.Example(
                        features=tf.train.Features(
                            feature={key: bytes_feature(v) if isinstance(v, bytes) else int64_feature(v) for key, v in features}
                        )
                    )
                    writer.write(example.SerializeToString())


def run_baseline_raw(root: Path, out: Path) -> None:
    """Read the bytes, frame them as records; no TensorFlow, no decode, no validation."""
    from segprep.formats.example import encode_example
    from segprep.formats.tfrecord import frame_record
    from segprep.schema import example_features

    out.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        for index, chunk in enumerate(shard_chunks(read_pairs(root, split), NUM_SHARDS)):
            with open(shard_path(out, split, index, NUM_SHARDS), "wb") as handle:
                for image_path, label_path in chunk:
                    features = example_features(image_path.stem, image_path.read_bytes(), "png", CAMVID_HEIGHT, CAMVID_WIDTH, label_path.read_bytes())
                    payload = encode_example(features)
                    handle.write(frame_record(payload))


# --------------------------------------------------------------------------- driver


def warm_page_cache(root: Path) -> tuple[int, int]:
    """Read every file under root once; return (files, bytes)."""
    files = total = 0
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with open(path, "rb") as handle:
                while chunk := handle.read(1 << 20):
                    total += len(chunk)
            files += 1
    return files, total


def count_records(out: Path) -> int:
    from segprep.formats.tfrecord import iter_records
    from segprep.schema import SHARD_SUFFIX

    return sum(1 for shard in sorted(out.glob("*" + SHARD_SUFFIX)) for _ in iter_records(shard))


def timed_run(command: list[str], out: Path, env: dict[str, str]) -> float:
    elapsed = timed_command(command, env)
    records = count_records(out)
    if records != EXPECTED_RECORDS:
        raise SystemExit(f"{' '.join(command)} wrote {records} records, expected {EXPECTED_RECORDS}")
    return elapsed


def median_seconds(name: str, make_command, repeat: int, env: dict[str, str], digests: dict[str, str] | None = None) -> float:
    """Median wall time; digests (when given) receives the sha256 of every file the last run wrote."""
    times = []
    for run in range(repeat):
        with tempfile.TemporaryDirectory(prefix="segprep-bench-") as tmp:
            out = Path(tmp) / "out"
            times.append(timed_run(make_command(out), out, env))
            if digests is not None:
                digests.clear()
                digests.update({p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())})
        print(f"  {name}: run {run + 1}/{repeat} {times[-1]:.2f} s, {EXPECTED_RECORDS} records", flush=True)
    return statistics.median(times)


def load_average() -> str:
    """The 1-minute load average: other work on the machine makes every figure slower."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


def format_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    def line(cells):
        return " | ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip()
    return "\n".join([line(header), "-+-".join("-" * w for w in widths), *(line(row) for row in rows)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="CamVid in the SegNet layout")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per contender (median)")
    parser.add_argument("--workers", type=int, help="passed to segprep convert --workers")
    parser.add_argument("--_run-baseline", dest="run_baseline", nargs=2, metavar=("KIND", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.run_baseline:
        kind, out = args.run_baseline
        {"decode": run_baseline_decode, "raw": run_baseline_raw}[kind](args.root, Path(out))
        return 0

    root = args.root.resolve()
    if not all((root / f"{split}.txt").is_file() for split in SPLITS):
        print(f"CamVid not found at {root} (need train.txt, val.txt, test.txt); nothing to benchmark.")
        return 0
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    segprep = Path(sys.executable).parent / "segprep"
    if not segprep.exists():
        segprep = Path(shutil.which("segprep") or "segprep")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores

    with tempfile.TemporaryDirectory(prefix="segprep-bench-reg-") as reg_dir:
        registry = Path(reg_dir) / "dataset_registry.yaml"
        shutil.copyfile(REPO / "segprep" / "builtin_registry.yaml", registry)

        def segprep_command(out: Path, *extra: str) -> list[str]:
            command = [str(segprep), "convert", "camvid", "--root", str(root), "--out", str(out),
                       "--registry", str(registry), "--quiet", "--num-shards", str(NUM_SHARDS), *extra]
            if args.workers is not None:
                command += ["--workers", str(args.workers)]
            return command

        def baseline_command(kind: str):
            script = str(Path(__file__).resolve())
            return lambda out: [sys.executable, script, "--_run-baseline", kind, str(out), "--root", str(root)]

        files, size = warm_page_cache(root)
        print(f"warm-up: read {files} files, {size / 2**20:.0f} MiB under {root}")
        print(f"cores: {cores} (usable by this process: {usable}); segprep workers: "
              f"{args.workers if args.workers is not None else 'default (all cores)'}; repeat: {args.repeat}",
              flush=True)
        load_before = load_average()
        local_files: dict[str, str] = {}
        t_segprep = median_seconds("segprep", segprep_command, args.repeat, env, local_files)
        t_decode = median_seconds("decode-everything", baseline_command("decode"), args.repeat, env)
        t_raw = median_seconds("raw byte copy", baseline_command("raw"), args.repeat, env)
        t_full = median_seconds("segprep --decode-images", lambda out: segprep_command(out, "--decode-images"),
                                args.repeat, env)
        beam_files: dict[str, str] = {}
        t_beam = None
        if importlib.util.find_spec("apache_beam") is not None:  # the [beam] extra
            beam_options = f"runner=DirectRunner,direct_num_workers={args.workers or usable}"
            t_beam = median_seconds("segprep --runner beam", lambda out: [*segprep_command(out), "--runner", "beam", "--beam-pipeline-options", beam_options],
                                    args.repeat, env, beam_files)
        load_after = load_average()

    faster = t_decode / t_segprep
    of_limit = t_segprep / t_raw
    header = ["figure", "seconds", "baseline", "baseline seconds", "ratio"]
    rows = [
        [f"segprep convert camvid ({EXPECTED_RECORDS} pairs)", f"{t_segprep:.2f}", DECODE_NAME,
         f"{t_decode:.2f}", f"×{faster:.1f} faster"],
        ["segprep convert camvid", f"{t_segprep:.2f}", RAW_NAME, f"{t_raw:.2f}", f"×{of_limit:.2f} of the limit"],
        ["segprep convert camvid --decode-images", f"{t_full:.2f}", DECODE_NAME, f"{t_decode:.2f}",
         f"×{t_decode / t_full:.1f} faster"],
    ]
    if t_beam is not None:
        rows.append([f"segprep convert camvid --runner beam ({beam_options})", f"{t_beam:.2f}", "segprep convert camvid (local runner)",
                     f"{t_segprep:.2f}", f"×{t_beam / t_segprep:.2f} the time"])
    print()
    print(f"median of {args.repeat} end-to-end runs (process start to exit), {EXPECTED_RECORDS} records each, "
          f"{cores} cores, 1-minute load average {load_before} before and {load_after} after")
    print(format_table(header, rows))
    print()
    for name, seconds in (("segprep", t_segprep), ("segprep --decode-images", t_full),
                          ("decode-everything", t_decode), ("raw byte copy", t_raw)):
        print(f"{name:<23} {EXPECTED_RECORDS / seconds:8.1f} images/s")
    if t_beam is not None:
        same = local_files == beam_files
        print(f"{'segprep --runner beam':<23} {EXPECTED_RECORDS / t_beam:8.1f} images/s")
        print(f"--runner beam files: {len(beam_files)}, every sha256 equal to the local runner's: {'yes' if same else 'NO'}")
        for name in sorted(set(local_files) | set(beam_files)):
            print(f"  {local_files.get(name, '-')[:16]}  {beam_files.get(name, '-')[:16]}  {name}")
    else:
        print("--runner beam: not measured (apache-beam is not installed: pip install -e '.[beam]')")
    print()
    print(f"goal ≥ 5× faster than decode-everything: {'met' if faster >= 5 else 'NOT met'} (×{faster:.1f})")
    print(f"goal ≤ 2× the raw byte copy limit:       {'met' if of_limit <= 2 else 'NOT met'} (×{of_limit:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
