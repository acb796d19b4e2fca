"""Issue "Faults, round two", the preparation commands: `segprep trainids` (and convert cityscapes'
trainIds step), `segprep labelme` and `segprep convert labelme`.

1. No size a file declares is allocated before it is checked against the real image's header
   (a polygons JSON's imgWidth x imgHeight, a labelIds PNG's header, labelme's imageHeight /
   imageWidth and mask bitmaps); without an image the size is bounded and the error says so.
   Checked in a subprocess under RLIMIT_AS: one `error:` line naming the file, not a kill and not
   an anonymous "out of memory".
2. A FIFO or folder named like an annotation, an image, a labels file or an export's metadata is
   a one-line error naming it: never a hang (subprocess timeout), never a silent skip.
3. No silent drops: a stem with two images in an export is refused, once.
"""

from __future__ import annotations

import base64
import io
import json
import os
import resource
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from faultkit import assert_unchanged, snapshot
from PIL import Image

MEMORY_LIMIT = 2 * 2**30  # far below what 100000 x 100000 needs, far above what the commands need (~250 MB)
TIMEOUT = 120  # seconds: a FIFO that is opened blocks forever, so any hang ends the test here


# --------------------------------------------------------------------------- helpers


def segprep(*args: object, memory_limit: int | None = None) -> subprocess.CompletedProcess:
    """segprep in its own process (optionally under an address-space limit), with a timeout."""

    def limit() -> None:
        if memory_limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    command = [sys.executable, "-m", "segprep.cli.main", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, preexec_fn=limit)


def lines_naming(result: subprocess.CompletedProcess, path: Path) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith(f"error: {path}: ")]


def assert_one_line(result: subprocess.CompletedProcess, path: Path, *fragments: str) -> str:
    """Exit 1, no traceback, and exactly one `error: PATH: ...` line holding every fragment."""
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    assert "out of memory" not in result.stderr, result.stderr
    lines = lines_naming(result, path)
    assert len(lines) == 1, (path, result.stderr)
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_declaring(width: int, height: int, color_type: int = 0) -> bytes:
    """A small, well-formed-looking PNG whose header declares width x height (its data is one row)."""
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )


def png_of(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG")
    return buffer.getvalue()


# --------------------------------------------------------------------------- Cityscapes trainIds


def cityscapes_frame(root: Path, index: int, *, size: tuple[int, int] | None = (64, 32), image: bool = True,
                     group: str = "gtFine", split: str = "train", city: str = "aachen") -> tuple[Path, Path]:
    """One polygons JSON (declaring `size`, width x height) and, when `image`, its 64x32 leftImg8bit PNG."""
    base = f"{city}_{index:06d}_000019"
    folder = root / group / split / city
    folder.mkdir(parents=True, exist_ok=True)
    annotation = folder / f"{base}_{group}_polygons.json"
    if size is not None:
        width, height = size
        document = {"imgWidth": width, "imgHeight": height, "objects": [{"label": "car", "polygon": [[2, 2], [20, 3], [10, 15]]}]}
        annotation.write_text(json.dumps(document))
    picture = root / "leftImg8bit" / split / city / f"{base}_leftImg8bit.png"
    if image:
        picture.parent.mkdir(parents=True, exist_ok=True)
        picture.write_bytes(png_of(np.full((32, 64, 3), 90, np.uint8)))
    return annotation, picture


def trainids_of(annotation: Path) -> Path:
    return annotation.with_name(annotation.name.replace("_polygons.json", "_labelTrainIds.png").replace("_labelIds.png", "_labelTrainIds.png"))


@pytest.mark.fault("os", "trainids")
def test_trainids_declared_size_is_checked_against_the_image_under_a_memory_limit(tmp_path):
    """One JSON declaring 100000 x 100000 once took 22 GB; now it is one line naming it and both sizes."""
    root = tmp_path / "cityscapes"
    good, _ = cityscapes_frame(root, 0)
    huge, huge_image = cityscapes_frame(root, 1, size=(100_000, 100_000))
    narrow, narrow_image = cityscapes_frame(root, 2, size=(32, 32))  # smaller than the image: a mismatch too
    before = snapshot(huge, narrow, root / "leftImg8bit")
    result = segprep("trainids", root, "--workers", 2, memory_limit=MEMORY_LIMIT)
    assert_one_line(result, huge, f"imgWidth x imgHeight is 100000x100000 but the image {huge_image} is 64x32")
    assert_one_line(result, narrow, f"imgWidth x imgHeight is 32x32 but the image {narrow_image} is 64x32")
    assert "2 of 3 annotation(s) could not be converted; the other 1 were written" in result.stderr
    assert trainids_of(good).is_file()
    assert not trainids_of(huge).exists() and not trainids_of(narrow).exists()
    assert_unchanged(before, huge, narrow, root / "leftImg8bit")
    assert not [p for p in root.rglob("*.tmp")]


@pytest.mark.fault("os", "trainids")
def test_trainids_without_an_image_bounds_the_size_and_says_so(tmp_path):
    root = tmp_path / "cityscapes"
    small, small_image = cityscapes_frame(root, 0, image=False)
    huge, huge_image = cityscapes_frame(root, 1, size=(100_000, 100_000), image=False)
    result = segprep("trainids", root, "--workers", 1, memory_limit=MEMORY_LIMIT)
    assert_one_line(
        result,
        huge,
        "imgWidth x imgHeight is 100000x100000, over the 67108864 pixels (8192x8192) accepted without an image "
        f"to compare with ({huge_image} not found)",
    )
    assert trainids_of(small).is_file() and not trainids_of(huge).exists()
    # What was converted without a check is counted, not passed over in silence.
    assert "note: 1 annotation(s) have no" in result.stderr and "only held to at most 8192x8192 pixels" in result.stderr
    assert not small_image.exists()


@pytest.mark.fault("os", "trainids")
def test_trainids_label_ids_header_is_checked_before_decoding(tmp_path):
    root = tmp_path / "cityscapes"
    folder = root / "gtFine" / "train" / "aachen"
    folder.mkdir(parents=True)
    matched, mismatched, orphan = (folder / f"aachen_{i:06d}_000019_gtFine_labelIds.png" for i in range(3))
    matched.write_bytes(png_of(np.full((32, 64), 26, np.uint8), "L"))
    mismatched.write_bytes(png_declaring(100_000, 100_000))
    orphan.write_bytes(png_declaring(100_000, 100_000))
    for i in range(2):  # the orphan has no image
        cityscapes_frame(root, i, size=None)
    image = root / "leftImg8bit" / "train" / "aachen" / "aachen_000001_000019_leftImg8bit.png"
    result = segprep("trainids", root, "--source", "labelids", "--workers", 2, memory_limit=MEMORY_LIMIT)
    assert_one_line(result, mismatched, f"the labelIds PNG is 100000x100000 but the image {image} is 64x32")
    assert_one_line(result, orphan, "the labelIds PNG is 100000x100000, over the 67108864 pixels", "not found")
    assert np.asarray(Image.open(trainids_of(matched))).tolist() == [[13] * 64] * 32


@pytest.mark.fault("os", "trainids")
def test_trainids_fifo_or_folder_named_like_an_annotation_or_image(tmp_path):
    root = tmp_path / "cityscapes"
    good, _ = cityscapes_frame(root, 0)
    fifo_json, _ = cityscapes_frame(root, 1, size=None)
    os.mkfifo(fifo_json)
    folder_json, _ = cityscapes_frame(root, 2, size=None)
    folder_json.mkdir()
    fifo_image_json, fifo_image = cityscapes_frame(root, 3, image=False)
    os.mkfifo(fifo_image)
    folder_image_json, folder_image = cityscapes_frame(root, 4, image=False)
    folder_image.mkdir()
    result = segprep("trainids", root, "--workers", 2)
    assert_one_line(result, fifo_json, "cannot read: not a regular file (a FIFO)")
    assert_one_line(result, folder_json, "cannot read: is a folder, not a file")
    assert_one_line(result, fifo_image_json, f"image {fifo_image}: not a regular file (a FIFO)")
    assert_one_line(result, folder_image_json, f"image {folder_image}: is a folder, not a file")
    assert "4 of 5 annotation(s) could not be converted" in result.stderr
    assert trainids_of(good).is_file()
    assert not any(trainids_of(p).exists() for p in (fifo_json, folder_json, fifo_image_json, folder_image_json))
    assert fifo_json.is_fifo() and fifo_image.is_fifo() and folder_json.is_dir() and folder_image.is_dir()


@pytest.mark.fault("inputs", "trainids")
def test_trainids_output_name_held_by_a_folder_or_fifo_is_reported_not_replaced(tmp_path):
    root = tmp_path / "cityscapes"
    good, _ = cityscapes_frame(root, 0)
    blocked_dir, _ = cityscapes_frame(root, 1)
    blocked_fifo, _ = cityscapes_frame(root, 2)
    (trainids_of(blocked_dir) / "mine.txt").parent.mkdir()
    (trainids_of(blocked_dir) / "mine.txt").write_text("x")
    os.mkfifo(trainids_of(blocked_fifo))
    result = segprep("trainids", root, "--workers", 2)
    assert_one_line(result, blocked_dir, f"output {trainids_of(blocked_dir)} exists and is a folder")
    assert_one_line(result, blocked_fifo, f"output {trainids_of(blocked_fifo)} exists and is a FIFO")
    assert "2 of 3 annotation(s) could not be converted; the other 1 were written" in result.stderr
    assert (trainids_of(blocked_dir) / "mine.txt").read_text() == "x" and trainids_of(blocked_fifo).is_fifo()
    assert trainids_of(good).is_file()


@pytest.mark.fault("os", "convert")
def test_convert_cityscapes_fifo_annotation_and_huge_size(tmp_path):
    """convert makes the missing trainIds first: the same checks, through the same code."""
    root = tmp_path / "cityscapes"
    cityscapes_frame(root, 0)
    fifo_json, _ = cityscapes_frame(root, 1, size=None)
    os.mkfifo(fifo_json)
    huge, huge_image = cityscapes_frame(root, 2, size=(100_000, 100_000))
    out = tmp_path / "tf"
    result = segprep("convert", "cityscapes", "--root", root, "--out", out, "--workers", 1, memory_limit=MEMORY_LIMIT)
    assert_one_line(result, fifo_json, "not a regular file (a FIFO)")
    assert_one_line(result, huge, f"imgWidth x imgHeight is 100000x100000 but the image {huge_image} is 64x32")
    assert not list(out.glob("*.tfrecord"))


def test_polygons_size_check_in_the_library():
    from segprep.ops.cityscapes_raster import AnnotationError, ImageSize, rasterize_polygons

    data = json.dumps({"imgWidth": 100_000, "imgHeight": 100_000, "objects": []}).encode()
    with pytest.raises(AnnotationError, match="is 100000x100000 but the image x.png is 64x32"):
        rasterize_polygons(data, ImageSize(64, 32, "x.png"))
    with pytest.raises(AnnotationError, match="over the 67108864 pixels"):
        rasterize_polygons(data)
    infinite = b'{"imgWidth": Infinity, "imgHeight": 2, "objects": []}'
    with pytest.raises(AnnotationError, match="are not integers"):  # was an OverflowError (internal error)
        rasterize_polygons(infinite)
    with pytest.raises(AnnotationError, match="unreadable JSON"):  # was a ValueError (internal error)
        rasterize_polygons(b'{"imgWidth": ' + b"9" * 5000 + b', "imgHeight": 2, "objects": []}')
    with pytest.raises(AnnotationError, match=r"is 99999999999999999\.\.\.x2, over"):  # one short line
        rasterize_polygons(b'{"imgWidth": ' + b"9" * 400 + b', "imgHeight": 2, "objects": []}')
    small = json.dumps({"imgWidth": 64, "imgHeight": 32, "objects": []}).encode()
    assert rasterize_polygons(small, ImageSize(64, 32, "x.png")).shape == (32, 64)


# --------------------------------------------------------------------------- labelme


LABELS = "__ignore__\n_background_\ncat\n"
CAT = {"label": "cat", "points": [[1, 1], [9, 1], [5, 6]], "shape_type": "polygon", "group_id": None, "flags": {}}


def labelme_json(path: Path, *, image_path: str | None = None, image_data: bytes | None = None,
                 size: tuple[int, int] = (16, 8), shapes: list | None = None) -> Path:
    width, height = size
    document = {
        "version": "5.4.1",
        "flags": {},
        "shapes": [CAT] if shapes is None else shapes,
        "imagePath": image_path or "",
        "imageData": None if image_data is None else base64.b64encode(image_data).decode(),
        "imageHeight": height,
        "imageWidth": width,
    }
    path.write_text(json.dumps(document))
    return path


def small_png() -> bytes:
    return png_of(np.full((8, 16, 3), 120, np.uint8))


@pytest.mark.fault("os", "labelme")
def test_labelme_declared_sizes_under_a_memory_limit(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.png").write_bytes(small_png())
    labels = tmp_path / "labels.txt"
    labels.write_text(LABELS)
    labelme_json(src / "good.json", image_path="a.png")
    by_path = labelme_json(src / "by_path.json", image_path="a.png", size=(100_000, 100_000))
    embedded = labelme_json(src / "embedded.json", image_data=small_png(), size=(100_000, 100_000))
    bomb = labelme_json(src / "bomb.json", image_data=png_declaring(100_000, 100_000, 2), size=(100_000, 100_000))
    # A mask bitmap is an image of its own: 9000x9000 RGBA would take ~400 MB to decode, and can never fit.
    mask = {"label": "cat", "points": [[0, 0], [15, 7]], "shape_type": "mask", "group_id": None, "flags": {},
            "mask": base64.b64encode(png_declaring(9000, 9000, 6)).decode()}
    big_mask = labelme_json(src / "big_mask.json", image_path="a.png", shapes=[CAT, mask])
    before = snapshot(src, labels)
    out = tmp_path / "voc"
    result = segprep("labelme", src, out, "--labels", labels, "--workers", 2, memory_limit=MEMORY_LIMIT)
    assert_one_line(result, by_path, f"imageHeight is 100000 but the image ({src / 'a.png'}) is 16x8")
    assert_one_line(result, embedded, "imageHeight is 100000 but the image (imageData) is 16x8")
    assert_one_line(result, bomb, "imageData", "exceeds limit")
    assert_one_line(result, big_mask, f"shape 1 ('cat'): mask bitmap is 9000x9000, larger than the image ({src / 'a.png'}, 16x8)")
    assert "Warning" not in result.stderr
    assert "4 of 5 labelme file(s) could not be converted" in result.stderr
    assert not out.exists()
    assert_unchanged(before, src, labels)


def test_a_mask_that_fits_the_image_is_still_drawn(tmp_path):
    from segprep.formats.labelme_json import LabelmeFormatError, parse_labelme

    bitmap = np.zeros((4, 4), bool)
    bitmap[1:3, 1:3] = True
    mask = {"label": "cat", "points": [[2, 2], [5, 5]], "shape_type": "mask", "group_id": None, "flags": {},
            "mask": base64.b64encode(png_of(bitmap)).decode()}
    path = labelme_json(tmp_path / "a.json", image_data=small_png(), shapes=[mask])
    parsed = parse_labelme(path.read_bytes(), path)
    assert parsed.shapes[0].mask.tolist() == bitmap.tolist()
    wide = dict(mask, mask=base64.b64encode(png_of(np.ones((4, 17), bool))).decode())
    path = labelme_json(tmp_path / "b.json", image_data=small_png(), shapes=[wide])
    with pytest.raises(LabelmeFormatError, match=r"mask bitmap is 17x4, larger than the image \(imageData, 16x8\)"):
        parse_labelme(path.read_bytes(), path)


@pytest.mark.fault("os", "labelme")
def test_labelme_fifo_or_folder_named_like_an_annotation_or_image(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.png").write_bytes(small_png())
    labels = tmp_path / "labels.txt"
    labels.write_text(LABELS)
    labelme_json(src / "good.json", image_path="a.png")
    fifo_json, folder_json = src / "fifo.json", src / "folder.json"
    os.mkfifo(fifo_json)
    folder_json.mkdir()  # used to be skipped in silence, like the FIFO
    os.mkfifo(src / "pipe.png")
    (src / "dir.png").mkdir()
    to_fifo = labelme_json(src / "to_fifo.json", image_path="pipe.png")
    to_folder = labelme_json(src / "to_folder.json", image_path="dir.png")
    out = tmp_path / "voc"
    result = segprep("labelme", src, out, "--labels", labels, "--workers", 2)
    assert_one_line(result, fifo_json, "cannot read: not a regular file (a FIFO)")
    assert_one_line(result, folder_json, "cannot read: is a folder, not a file")
    assert_one_line(result, to_fifo, f"cannot read image {src / 'pipe.png'}: not a regular file (a FIFO)")
    assert_one_line(result, to_folder, f"cannot read image {src / 'dir.png'}: is a folder, not a file")
    assert "4 of 5 labelme file(s) could not be converted" in result.stderr
    assert not out.exists()

    # With an existing export to replace, every JSON is read first for its imagePath: still no hang.
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "a.png").write_bytes(small_png())
    labelme_json(clean / "good.json", image_path="a.png")
    assert segprep("labelme", clean, out, "--labels", labels, "--workers", 1).returncode == 0
    result = segprep("labelme", src, out, "--labels", labels, "--overwrite", "--workers", 1)
    assert_one_line(result, fifo_json, "not a regular file (a FIFO)")
    assert (out / "SegmentationClass" / "good.png").is_file()  # the previous export is untouched

    # The labels file itself.
    fifo_labels = tmp_path / "fifo_labels.txt"
    os.mkfifo(fifo_labels)
    result = segprep("labelme", clean, tmp_path / "other", "--labels", fifo_labels)
    assert_one_line(result, fifo_labels, "not a regular file (a FIFO)")
    assert not (tmp_path / "other").exists()


@pytest.fixture
def labelme_export(tmp_path: Path) -> Path:
    """A small export by `segprep labelme` (3 samples, ignore label 200, every sample in train)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.png").write_bytes(small_png())
    for name in ("one", "two", "three"):
        labelme_json(src / f"{name}.json", image_path="a.png")
    labels = tmp_path / "labels.txt"
    labels.write_text(LABELS)
    voc = tmp_path / "voc"
    result = segprep("labelme", src, voc, "--labels", labels, "--val-fraction", 0, "--ignore-label", 200, "--workers", 1)
    assert result.returncode == 0, result.stderr
    return voc


@pytest.mark.fault("os", "convert")
@pytest.mark.parametrize("name", ["class_names.txt", "segprep_labelme.json", "ImageSets/Segmentation/extra.txt"])
@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_convert_labelme_fifo_or_folder_among_the_export_files(labelme_export, tmp_path, name, kind):
    target = labelme_export / name
    if target.exists():
        target.unlink()
    if kind == "fifo":
        os.mkfifo(target)
    else:
        target.mkdir()  # segprep_labelme.json as a folder used to mean "no metadata": ignore label 255
    result = segprep("convert", "labelme", "--root", labelme_export, "--out", tmp_path / "tf", "--name", "mine", "--workers", 1)
    reason = "not a regular file (a FIFO)" if kind == "fifo" else "is a folder, not a file"
    assert_one_line(result, target, reason)
    assert not list((tmp_path / "tf").glob("*.tfrecord"))


@pytest.mark.fault("poison", "convert")
def test_convert_labelme_two_images_with_one_stem(labelme_export, tmp_path):
    """JPEGImages/two.png and two.jpg: which is the sample cannot be guessed; it used to take the first."""
    images = labelme_export / "JPEGImages"
    (images / "two.jpg").write_bytes((images / "two.png").read_bytes())
    result = segprep("convert", "labelme", "--root", labelme_export, "--out", tmp_path / "tf", "--name", "mine", "--workers", 1)
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if "'two'" in line]
    assert len(lines) == 1, result.stderr  # train and trainval hold it: still one line
    assert "2 images with the stem 'two' (two.jpg, two.png)" in lines[0] and lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    assert not list((tmp_path / "tf").glob("*.tfrecord"))


def test_convert_labelme_reads_the_recorded_ignore_label(labelme_export):
    from segprep.datasets.labelme import read_ignore_label

    assert read_ignore_label(labelme_export) == 200
    (labelme_export / "segprep_labelme.json").unlink()
    assert read_ignore_label(labelme_export) == 255  # absent: labelme2voc's folder, 255 as documented
