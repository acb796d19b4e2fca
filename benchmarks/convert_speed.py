"""End-to-end speed of `segprep convert camvid` against two single-process baselines.

    python benchmarks/convert_speed.py [--root DIR] [--repeat 3] [--workers N] [--verify-only]

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

Verify, beside convert: one more segprep conversion is kept and `segprep verify OUT --quiet` is
timed on it the same way (median of --repeat), in two arms:

- after: verify as it ships, decoding every label (8-bit single channel, size, values inside the
  classes, histogram equal to the manifest's) and reading every image header;
- before: the verify of before the label decoding (records, CRCs, feature keys and the sha256 of
  the payloads against the manifest only): the same CLI in a process of this script that switches
  the decoding off through segprep.verify.run_plan's internal decode_labels=False.

and `segprep verify --decode-images` beside `segprep convert --decode-images` (not with
--verify-only). Each verify figure is printed as a ratio to convert's time and the after arm as a
ratio to the before arm.

--verify-only measures segprep convert and the verify arms only (no baselines, no beam).

Every output is read back with segprep.formats.tfrecord.iter_records and must hold 701 records.
The baselines are functions in this file, run as `python benchmarks/convert_speed.py
--_run-baseline {decode,raw,verify-sha256} OUT --root ROOT`; this module imports only the standard library at
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


def run_verify_sha256_only(out: Path, extra: list[str]) -> int:
    """`segprep verify OUT ...` with the label decoding switched off: the verify of before it."""
    import segprep.verify as verify

    full = verify.run_plan

    def sha256_only(*args, **kwargs):  # the CLI imports run_plan from the module when it runs
        return full(*args, **{**kwargs, "decode_labels": False})

    verify.run_plan = sha256_only
    from segprep.cli.main import main as segprep_main

    return segprep_main(["verify", str(out), *extra], standalone_mode=False) or 0


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
    parser.add_argument("--verify-only", action="store_true",
                        help="measure segprep convert and segprep verify only (no baselines, no --decode-images, no beam)")
    parser.add_argument("--_run-baseline", dest="run_baseline", nargs=2, metavar=("KIND", "OUT"),
                        help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args(argv)

    if args.run_baseline:
        kind, out = args.run_baseline
        if kind == "verify-sha256":  # --workers is this parser's too: hand it on
            return run_verify_sha256_only(Path(out), rest + (["--workers", str(args.workers)] if args.workers is not None else []))
        {"decode": run_baseline_decode, "raw": run_baseline_raw}[kind](args.root, Path(out))
        return 0
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")

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
        shutil.copyfile(REPO / "dataset_registry.yaml", registry)

        def segprep_command(out: Path, *extra: str) -> list[str]:
            command = [str(segprep), "convert", "camvid", "--root", str(root), "--out", str(out),
                       "--registry", str(registry), "--quiet", "--num-shards", str(NUM_SHARDS), *extra]
            if args.workers is not None:
                command += ["--workers", str(args.workers)]
            return command

        def baseline_command(kind: str):
            script = str(Path(__file__).resolve())
            return lambda out: [sys.executable, script, "--_run-baseline", kind, str(out), "--root", str(root)]

        def verify_options(*extra: str) -> list[str]:
            options = ["--registry", str(registry), "--quiet", *extra]
            return options + (["--workers", str(args.workers)] if args.workers is not None else [])

        def verify_seconds(name: str, command: list[str]) -> float:
            times = []
            for run in range(args.repeat):
                times.append(timed_command(command, env))
                print(f"  {name}: run {run + 1}/{args.repeat} {times[-1]:.2f} s", flush=True)
            return statistics.median(times)

        files, size = warm_page_cache(root)
        print(f"warm-up: read {files} files, {size / 2**20:.0f} MiB under {root}")
        print(f"cores: {cores} (usable by this process: {usable}); segprep workers: "
              f"{args.workers if args.workers is not None else 'default (all cores)'}; repeat: {args.repeat}",
              flush=True)
        load_before = load_average()
        local_files: dict[str, str] = {}
        t_segprep = median_seconds("segprep", segprep_command, args.repeat, env, local_files)
        t_decode = t_raw = t_full = None
        if not args.verify_only:
            t_decode = median_seconds("decode-everything", baseline_command("decode"), args.repeat, env)
            t_raw = median_seconds("raw byte copy", baseline_command("raw"), args.repeat, env)
            t_full = median_seconds("segprep --decode-images", lambda out: segprep_command(out, "--decode-images"),
                                    args.repeat, env)
        # verify, before and after the label decoding, on one more conversion kept for it
        verified = Path(reg_dir) / "verified"
        timed_run(segprep_command(verified), verified, env)
        segprep_verify = [str(segprep), "verify", str(verified)]
        t_verify_before = verify_seconds("segprep verify (sha256 only, before)",
                                         [*baseline_command("verify-sha256")(verified), *verify_options()])
        t_verify = verify_seconds("segprep verify (labels decoded)", [*segprep_verify, *verify_options()])
        t_verify_full = None
        if not args.verify_only:
            t_verify_full = verify_seconds("segprep verify --decode-images", [*segprep_verify, *verify_options("--decode-images")])
        beam_files: dict[str, str] = {}
        t_beam = None
        if not args.verify_only and importlib.util.find_spec("apache_beam") is not None:  # the [beam] extra
            beam_options = f"runner=DirectRunner,direct_num_workers={args.workers or usable}"
            t_beam = median_seconds("segprep --runner beam", lambda out: [*segprep_command(out), "--runner", "beam", "--beam-pipeline-options", beam_options],
                                    args.repeat, env, beam_files)
        load_after = load_average()

    header = ["figure", "seconds", "baseline", "baseline seconds", "ratio"]
    rows = []
    if t_decode is not None and t_raw is not None and t_full is not None:
        faster = t_decode / t_segprep
        of_limit = t_segprep / t_raw
        rows += [
            [f"segprep convert camvid ({EXPECTED_RECORDS} pairs)", f"{t_segprep:.2f}", DECODE_NAME,
             f"{t_decode:.2f}", f"×{faster:.1f} faster"],
            ["segprep convert camvid", f"{t_segprep:.2f}", RAW_NAME, f"{t_raw:.2f}", f"×{of_limit:.2f} of the limit"],
            ["segprep convert camvid --decode-images", f"{t_full:.2f}", DECODE_NAME, f"{t_decode:.2f}",
             f"×{t_decode / t_full:.1f} faster"],
        ]
    if t_beam is not None:
        rows.append([f"segprep convert camvid --runner beam ({beam_options})", f"{t_beam:.2f}", "segprep convert camvid (local runner)",
                     f"{t_segprep:.2f}", f"×{t_beam / t_segprep:.2f} the time"])
    convert_name = f"segprep convert camvid ({EXPECTED_RECORDS} pairs)" if args.verify_only else "segprep convert camvid"
    rows += [
        ["segprep verify, sha256 only (before label decoding)", f"{t_verify_before:.2f}", convert_name,
         f"{t_segprep:.2f}", f"×{t_verify_before / t_segprep:.2f} the time"],
        ["segprep verify, labels decoded (after)", f"{t_verify:.2f}", convert_name, f"{t_segprep:.2f}",
         f"×{t_verify / t_segprep:.2f} the time"],
        ["segprep verify, labels decoded (after)", f"{t_verify:.2f}", "segprep verify, sha256 only (before)",
         f"{t_verify_before:.2f}", f"×{t_verify / t_verify_before:.2f} the time"],
    ]
    if t_verify_full is not None and t_full is not None:
        rows.append(["segprep verify --decode-images", f"{t_verify_full:.2f}", "segprep convert camvid --decode-images",
                     f"{t_full:.2f}", f"×{t_verify_full / t_full:.2f} the time"])
    print()
    print(f"median of {args.repeat} end-to-end runs (process start to exit), {EXPECTED_RECORDS} records each, "
          f"{cores} cores, 1-minute load average {load_before} before and {load_after} after")
    print(format_table(header, rows))
    print()
    timings = [("segprep", t_segprep), ("segprep --decode-images", t_full), ("decode-everything", t_decode),
               ("raw byte copy", t_raw), ("verify, sha256 only", t_verify_before), ("verify, labels decoded", t_verify),
               ("verify --decode-images", t_verify_full)]
    for name, seconds in timings:
        if seconds is not None:
            print(f"{name:<23} {EXPECTED_RECORDS / seconds:8.1f} images/s")
    if t_beam is not None:
        same = local_files == beam_files
        print(f"{'segprep --runner beam':<23} {EXPECTED_RECORDS / t_beam:8.1f} images/s")
        print(f"--runner beam files: {len(beam_files)}, every sha256 equal to the local runner's: {'yes' if same else 'NO'}")
        for name in sorted(set(local_files) | set(beam_files)):
            print(f"  {local_files.get(name, '-')[:16]}  {beam_files.get(name, '-')[:16]}  {name}")
    elif not args.verify_only:
        print("--runner beam: not measured (apache-beam is not installed: pip install -e '.[beam]')")
    if t_decode is not None and t_raw is not None:
        print()
        print(f"goal ≥ 5× faster than decode-everything: {'met' if faster >= 5 else 'NOT met'} (×{faster:.1f})")
        print(f"goal ≤ 2× the raw byte copy limit:       {'met' if of_limit <= 2 else 'NOT met'} (×{of_limit:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
