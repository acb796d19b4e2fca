"""`segprep labelme` and `segprep convert labelme`, checked against labelme 6.3.1 itself.

Parity coverage (every mask compared pixel for pixel with labelme.utils.shapes_to_label run on
what labelme's own LabelFile loads; the counts are asserted below so this stays true):

- test_masks_equal_labelme_shapes_to_label: 60 files, 962 shapes: every shape type
  (polygon, rectangle in all 4 corner orders, oriented_rectangle, circle, line, linestrip,
  point, mask incl. a broadcast 1-row bitmap), overlaps in file order, `_background_` holes,
  `__ignore__` regions, points outside the image and negative, int and float coordinates,
  group_ids, degenerate shapes (zero-size rectangles, zero-radius circles, one-point
  linestrips, collinear polygons); imagePath and embedded imageData, JPEG and PNG images.
- test_exif_orientation_matches_labelme_jpeg / _png: 10 files, 40 shapes: JPEG orientations 2-8, a PNG
  (eXIf chunk) and an RGBA PNG with orientation 6, and an orientation-1 JPEG; masks and the
  stored image bytes equal what labelme loads.
- test_image_paths_and_embedded_data: 4 files, 16 shapes: Windows `..\\images\\x.jpg` and
  `sub\\x.png` imagePaths, embedded imageData with an EXIF tag (used as is, like labelme).
- test_ignore_label_value: 1 file, 3 shapes with --ignore-label 200.

In all 75 files and 1,021 shapes.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segprep.registry import load_registry
from segprep import schema

labelme_label_file = pytest.importorskip("labelme._label_file")
labelme_utils = pytest.importorskip("labelme.utils")
pytest.importorskip("loguru").logger.disable("labelme")  # labelme logs every image it loads

LABELS = ["__ignore__", "_background_", "cat", "dog", "car", "tree"]
SHAPE_TYPES = ["polygon", "rectangle", "oriented_rectangle", "circle", "line", "linestrip", "point", "mask"]
RECTANGLE_ORDERS = ("tl-br", "br-tl", "tr-bl", "bl-tr")


# --------------------------------------------------------------------------- synthetic labelme files


def write_labels(path: Path, names: list[str] = LABELS) -> Path:
    path.write_text("".join(f"{n}\n" for n in names), encoding="utf-8")
    return path


def encode_image(array: np.ndarray, fmt: str, exif_orientation: int | None = None) -> bytes:
    image = Image.fromarray(array)
    buffer = io.BytesIO()
    kwargs: dict = {}
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif.tobytes()
    if fmt == "JPEG":
        kwargs["quality"] = 90
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def mask_b64(bitmap: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(bitmap.astype(np.uint8) * 255).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def coord(rng: np.random.Generator, size: int) -> int | float:
    """A coordinate mostly inside [0, size), sometimes outside or negative; int or float."""
    value = rng.uniform(-0.25 * size, 1.25 * size)
    kind = rng.integers(0, 3)
    if kind == 0:
        return round(value)
    if kind == 1:
        return round(float(value), 2)
    return float(value)


def random_shape(rng: np.random.Generator, shape_type: str, width: int, height: int, index: int) -> dict:
    label = str(rng.choice(LABELS, p=[0.1, 0.15, 0.2, 0.2, 0.2, 0.15]))

    def pt() -> list:
        return [coord(rng, width), coord(rng, height)]

    if shape_type == "polygon":
        if index % 17 == 0:  # collinear / degenerate
            x, y = pt()
            points = [[x, y], [x + 3, y + 3], [x + 6, y + 6]]
        else:
            points = [pt() for _ in range(int(rng.integers(3, 9)))]
    elif shape_type == "rectangle":
        x0, x1 = sorted([coord(rng, width), coord(rng, width)])
        y0, y1 = sorted([coord(rng, height), coord(rng, height)])
        if index % 13 == 0:
            x1, y1 = x0, y0  # zero size
        order = RECTANGLE_ORDERS[int(rng.integers(0, 4))]
        points = {"tl-br": [[x0, y0], [x1, y1]], "br-tl": [[x1, y1], [x0, y0]], "tr-bl": [[x1, y0], [x0, y1]], "bl-tr": [[x0, y1], [x1, y0]]}[order]
    elif shape_type == "oriented_rectangle":
        cx, cy = coord(rng, width), coord(rng, height)
        angle = rng.uniform(0, np.pi)
        a, b = rng.uniform(1, width / 3), rng.uniform(1, height / 3)
        u = np.array([np.cos(angle), np.sin(angle)])
        v = np.array([-u[1], u[0]])
        points = [[float(cx + s * a * u[0] + t * b * v[0]), float(cy + s * a * u[1] + t * b * v[1])] for s, t in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
    elif shape_type == "circle":
        center = pt()
        points = [center, list(center) if index % 11 == 0 else [center[0] + coord(rng, width // 4), center[1] + coord(rng, height // 4)]]
    elif shape_type == "line":
        points = [pt(), pt()]
    elif shape_type == "linestrip":
        points = [pt() for _ in range(1 if index % 9 == 0 else int(rng.integers(2, 7)))]
    elif shape_type == "point":
        points = [pt()]
    else:  # mask: a box inside the image (labelme cannot place one that sticks out), float corners truncated
        x1 = float(rng.uniform(0, width - 2))
        y1 = float(rng.uniform(0, height - 2))
        x2 = float(rng.uniform(x1, width - 1))
        y2 = float(rng.uniform(y1, height - 1))
        box_w, box_h = int(x2) - int(x1) + 1, int(y2) - int(y1) + 1
        rows = 1 if index % 7 == 0 else box_h  # a 1-row bitmap broadcasts over the box, in numpy and so in labelme
        shape = {"label": label, "points": [[x1, y1], [x2, y2]], "shape_type": "mask", "group_id": None, "flags": {}, "description": ""}
        shape["mask"] = mask_b64(rng.random((rows, box_w)) < 0.5)
        return shape
    group_id = int(rng.integers(0, 4)) if rng.random() < 0.4 else None
    return {"label": label, "points": points, "group_id": group_id, "description": "", "shape_type": shape_type, "flags": {}, "mask": None}


def labelme_document(shapes: list[dict], image_path: str, width: int, height: int, image_data: bytes | None = None) -> dict:
    return {
        "version": "6.3.1",
        "flags": {},
        "shapes": shapes,
        "imagePath": image_path,
        "imageData": base64.b64encode(image_data).decode() if image_data is not None else None,
        "imageHeight": height,
        "imageWidth": width,
    }


def write_json(path: Path, document: dict) -> Path:
    path.write_text(json.dumps(document, indent=1), encoding="utf-8")
    return path


def make_parity_folder(src: Path, count: int, seed: int = 0) -> int:
    """count labelme files with 5-30 mixed shapes each; returns the number of shapes."""
    rng = np.random.default_rng(seed)
    src.mkdir(parents=True)
    total = 0
    for i in range(count):
        width, height = int(rng.integers(24, 120)), int(rng.integers(16, 90))
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        fmt, ext = ("PNG", ".png") if i % 3 == 0 else ("JPEG", ".jpg")
        data = encode_image(pixels, fmt)
        n = int(rng.integers(5, 31))
        shapes = [random_shape(rng, SHAPE_TYPES[(i + k) % len(SHAPE_TYPES)], width, height, i * 31 + k) for k in range(n)]
        total += n
        if i % 5 == 4:
            write_json(src / f"f{i:03d}.json", labelme_document(shapes, f"f{i:03d}{ext}", width, height, image_data=data))
        else:
            (src / f"f{i:03d}{ext}").write_bytes(data)
            write_json(src / f"f{i:03d}.json", labelme_document(shapes, f"f{i:03d}{ext}", width, height))
    return total


# --------------------------------------------------------------------------- the reference


def labelme_load(json_path: Path, ignore_label: int = 255, names: list[str] = LABELS) -> tuple[np.ndarray, bytes, int]:
    """(mask, image bytes, shape count) as labelme computes them: LabelFile + shapes_to_label, __ignore__ = -1."""
    label_file = labelme_label_file.LabelFile(str(json_path))
    image = np.asarray(Image.open(io.BytesIO(label_file.image_data)))
    name_to_value = {name: index - 1 for index, name in enumerate(names)} if names[0] == "__ignore__" else {n: i for i, n in enumerate(names)}
    cls, _ = labelme_utils.shapes_to_label(image.shape, label_file.shapes, name_to_value)
    cls = np.where(cls == -1, ignore_label, cls)
    assert cls.min() >= 0 and cls.max() <= 255
    return cls.astype(np.uint8), label_file.image_data, len(label_file.shapes)


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "L"
        return np.asarray(image)


def assert_parity(src: Path, out: Path, ignore_label: int = 255, names: list[str] = LABELS) -> tuple[int, int]:
    """Every JSON in src: our SegmentationClass PNG == labelme's mask; returns (files, shapes) compared."""
    files = shapes = 0
    for json_path in sorted(src.glob("*.json")):
        expected, _, count = labelme_load(json_path, ignore_label, names)
        ours = read_png(out / "SegmentationClass" / f"{json_path.stem}.png")
        assert ours.shape == expected.shape, json_path.name
        diff = np.argwhere(ours != expected)
        assert diff.size == 0, f"{json_path.name}: {len(diff)} pixels differ, first at (y, x) {diff[0].tolist()}"
        files += 1
        shapes += count
    return files, shapes


# --------------------------------------------------------------------------- parity


def test_masks_equal_labelme_shapes_to_label(run_cli, tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    shapes = make_parity_folder(src, 60)
    labels = write_labels(tmp_path / "labels.txt")
    result = run_cli("labelme", src, out, "--labels", labels, "--workers", "2")
    assert result.exit_code == 0, result.output
    assert assert_parity(src, out) == (60, shapes) == (60, 962)
    # Every shape type, every corner order and both special labels were really exercised.
    documents = [json.loads(p.read_text()) for p in src.glob("*.json")]
    all_shapes = [s for d in documents for s in d["shapes"]]
    assert {s["shape_type"] for s in all_shapes} == set(SHAPE_TYPES)
    assert {"__ignore__", "_background_"} <= {s["label"] for s in all_shapes}
    assert any(min(v for p in s["points"] for v in p) < 0 for s in all_shapes)
    assert any(max(p[0] for p in s["points"]) > d["imageWidth"] for d in documents for s in d["shapes"])
    degenerate = {
        "zero-size rectangle": [s for s in all_shapes if s["shape_type"] == "rectangle" and s["points"][0] == s["points"][1]],
        "zero-radius circle": [s for s in all_shapes if s["shape_type"] == "circle" and s["points"][0] == s["points"][1]],
        "one-point linestrip": [s for s in all_shapes if s["shape_type"] == "linestrip" and len(s["points"]) == 1],
        "collinear polygon": [s for s in all_shapes if s["shape_type"] == "polygon" and len(s["points"]) == 3 and s["points"][1][0] - s["points"][0][0] == 3],
        "broadcast mask": [s for s in all_shapes if s["shape_type"] == "mask" and Image.open(io.BytesIO(base64.b64decode(s["mask"]))).height == 1],
        "rectangle corner orders": {(s["points"][0][0] <= s["points"][1][0], s["points"][0][1] <= s["points"][1][1]) for s in all_shapes if s["shape_type"] == "rectangle"},
    }
    assert all(degenerate.values()), {k: len(v) for k, v in degenerate.items()}
    assert len(degenerate["rectangle corner orders"]) == 4
    assert any(d["imageData"] for d in documents) and any(s.get("group_id") is not None for s in all_shapes)
    values = set(np.unique(np.concatenate([read_png(p).ravel() for p in (out / "SegmentationClass").glob("*.png")])).tolist())
    assert values == {0, 1, 2, 3, 4, 255}
    # Layout: images keep their bytes and real-format extension, visualizations are JPEGs of the same size.
    for json_path in sorted(src.glob("*.json")):
        stem = json_path.stem
        document = json.loads(json_path.read_text())
        images = list((out / "JPEGImages").glob(f"{stem}.*"))
        assert len(images) == 1
        source = base64.b64decode(document["imageData"]) if document["imageData"] else (src / document["imagePath"]).read_bytes()
        assert images[0].read_bytes() == source
        assert images[0].suffix == (".png" if source.startswith(b"\x89PNG") else ".jpg")
        with Image.open(out / "SegmentationClassVisualization" / f"{stem}.jpg") as viz:
            assert viz.format == "JPEG" and viz.size == (document["imageWidth"], document["imageHeight"])
    assert (out / "class_names.txt").read_text() == "_background_\ncat\ndog\ncar\ntree\n"
    lists = {s: (out / "ImageSets" / "Segmentation" / f"{s}.txt").read_text().split() for s in ("train", "val", "trainval")}
    assert len(lists["train"]) == 54 and len(lists["val"]) == 6
    assert lists["trainval"] == lists["train"] + lists["val"]
    assert sorted(lists["trainval"]) == sorted(p.stem for p in src.glob("*.json"))
    metadata = json.loads((out / "segprep_labelme.json").read_text())
    assert metadata["ignore_label"] == 255 and metadata["reencoded_images"] == {}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_same_seed_same_lists_other_seed_other_lists(run_cli, tmp_path):
    src = tmp_path / "src"
    make_parity_folder(src, 20, seed=3)
    labels = write_labels(tmp_path / "labels.txt")
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        assert run_cli("labelme", src, tmp_path / name, "--labels", labels, "--seed", seed, "--val-fraction", 0.25, "--workers", 1, "--quiet").exit_code == 0
    val = {name: (tmp_path / name / "ImageSets" / "Segmentation" / "val.txt").read_text() for name in "abc"}
    assert val["a"] == val["b"] != val["c"]
    assert len(val["a"].split()) == 5


@pytest.mark.parametrize("orientation", [1, 2, 3, 4, 5, 6, 7, 8])
def test_exif_orientation_matches_labelme_jpeg(run_cli, tmp_path, orientation):
    _check_exif_case(run_cli, tmp_path, np.uint8, "JPEG", ".jpg", orientation)


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_exif_orientation_matches_labelme_png(run_cli, tmp_path, mode):
    _check_exif_case(run_cli, tmp_path, mode, "PNG", ".png", 6)


def _check_exif_case(run_cli, tmp_path, mode, fmt, ext, orientation):
    """A 40x24 image stored sideways with an EXIF tag; annotated (as in labelme) on the upright view."""
    rng = np.random.default_rng(orientation)
    channels = 4 if mode == "RGBA" else 3
    stored = rng.integers(0, 256, (24, 40, channels), dtype=np.uint8)
    upright_w, upright_h = (24, 40) if orientation >= 5 else (40, 24)
    src = tmp_path / "src"
    src.mkdir()
    data = encode_image(stored, fmt, orientation)
    (src / f"img{ext}").write_bytes(data)
    shapes = [random_shape(rng, t, upright_w, upright_h, k) for k, t in enumerate(["polygon", "rectangle", "circle", "mask"])]
    write_json(src / "img.json", labelme_document(shapes, f"img{ext}", upright_w, upright_h))
    out = tmp_path / "out"
    result = run_cli("labelme", src, out, "--labels", write_labels(tmp_path / "labels.txt"), "--workers", 1)
    assert result.exit_code == 0, result.output
    assert assert_parity(src, out) == (1, 4)
    _, expected_image, _ = labelme_load(src / "img.json")
    (ours,) = (out / "JPEGImages").glob("img.*")
    assert ours.read_bytes() == expected_image  # labelme's own re-encoding, byte for byte
    with Image.open(ours) as image:
        assert image.size == (upright_w, upright_h)
    metadata = json.loads((out / "segprep_labelme.json").read_text())
    if orientation == 1:
        assert ours.read_bytes() == data and metadata["reencoded_images"] == {}
    else:
        expected_suffix = ".png" if mode == "RGBA" else ".jpg"
        assert ours.suffix == expected_suffix
        assert metadata["reencoded_images"] == {ours.name: f"EXIF orientation {orientation}"}


def test_image_paths_and_embedded_data(run_cli, tmp_path):
    rng = np.random.default_rng(5)
    root = tmp_path / "project"
    src, images, sub = root / "json", root / "images", root / "json" / "sub"
    for folder in (src, images, sub):
        folder.mkdir(parents=True)
    pixels = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)

    def shapes() -> list[dict]:
        return [random_shape(rng, t, 50, 30, k) for k, t in enumerate(["polygon", "circle", "linestrip", "point"])]

    (images / "a.jpg").write_bytes(encode_image(pixels, "JPEG"))
    write_json(src / "a.json", labelme_document(shapes(), "..\\images\\a.jpg", 50, 30))
    (sub / "b.png").write_bytes(encode_image(pixels, "PNG"))
    write_json(src / "b.json", labelme_document(shapes(), "sub\\b.png", 50, 30))
    # Embedded JPEG with an EXIF orientation: labelme uses imageData as is (no rotation), so do we.
    embedded = encode_image(pixels, "JPEG", exif_orientation=6)
    write_json(src / "c.json", labelme_document(shapes(), "gone\\c.jpg", 50, 30, image_data=embedded))
    write_json(src / "d.json", labelme_document(shapes(), "d.png", 50, 30, image_data=encode_image(pixels, "PNG")))
    out = tmp_path / "out"
    result = run_cli("labelme", src, out, "--labels", write_labels(tmp_path / "labels.txt"), "--workers", 1)
    assert result.exit_code == 0, result.output
    assert assert_parity(src, out) == (4, 16)
    assert (out / "JPEGImages" / "a.jpg").read_bytes() == (images / "a.jpg").read_bytes()
    assert (out / "JPEGImages" / "b.png").read_bytes() == (sub / "b.png").read_bytes()
    assert (out / "JPEGImages" / "c.jpg").read_bytes() == embedded
    assert (out / "JPEGImages" / "d.png").exists()


def test_ignore_label_value(run_cli, tmp_path, registry):
    src = tmp_path / "src"
    src.mkdir()
    pixels = np.zeros((20, 30, 3), dtype=np.uint8)
    (src / "x.png").write_bytes(encode_image(pixels, "PNG"))
    shapes = [
        {"label": "cat", "points": [[0, 0], [29, 19]], "shape_type": "rectangle"},
        {"label": "__ignore__", "points": [[5, 5], [10, 10]], "shape_type": "rectangle"},
        {"label": "_background_", "points": [[15, 5], [25, 5], [20, 15]], "shape_type": "polygon"},
    ]
    write_json(src / "x.json", labelme_document(shapes, "x.png", 30, 20))
    out = tmp_path / "out"
    result = run_cli("labelme", src, out, "--labels", write_labels(tmp_path / "labels.txt"), "--ignore-label", 200, "--val-fraction", 0)
    assert result.exit_code == 0, result.output
    assert assert_parity(src, out, ignore_label=200) == (1, 3)
    mask = read_png(out / "SegmentationClass" / "x.png")
    assert mask[7, 7] == 200 and mask[1, 1] == 1 and mask[6, 20] == 0
    assert (out / "ImageSets" / "Segmentation" / "train.txt").read_text() == "x\n"
    assert (out / "ImageSets" / "Segmentation" / "trainval.txt").read_text() == "x\n"
    assert not (out / "ImageSets" / "Segmentation" / "val.txt").exists()
    # convert picks the recorded ignore label up.
    result = run_cli("convert", "labelme", "--root", out, "--out", tmp_path / "tf", "--name", "ign")
    assert result.exit_code == 0, result.output
    entry = load_registry(registry).get("ign")
    assert entry.ignore_label == 200 and entry.splits == {"train": 1, "trainval": 1}


# --------------------------------------------------------------------------- bad input


def test_every_bad_file_is_named_and_nothing_is_written(run_cli, tmp_path):
    rng = np.random.default_rng(1)
    src = tmp_path / "src"
    src.mkdir()
    pixels = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    (src / "img.jpg").write_bytes(encode_image(pixels, "JPEG"))
    good = [{"label": "cat", "points": [[1, 1], [5, 5]], "shape_type": "rectangle"}]
    write_json(src / "good.json", labelme_document(good, "img.jpg", 30, 20))
    write_json(src / "unknown.json", labelme_document(good + [{"label": "dgo", "points": [[1, 1]], "shape_type": "point"}], "img.jpg", 30, 20))
    (src / "broken.json").write_text('{"shapes": [', encoding="utf-8")
    (src / "latin1.json").write_bytes(json.dumps(labelme_document(good, "img.jpg", 30, 20)).replace("cat", "chât").encode("latin-1"))
    write_json(src / "missing.json", labelme_document(good, "nowhere.jpg", 30, 20))
    write_json(src / "height.json", labelme_document(good, "img.jpg", 30, 21))
    write_json(src / "circle.json", labelme_document([{"label": "cat", "points": [[1, 1], [2, 2], [3, 3]], "shape_type": "circle"}], "img.jpg", 30, 20))
    write_json(src / "oddtype.json", labelme_document([{"label": "cat", "points": [[1, 1], [2, 2]], "shape_type": "hexagon"}], "img.jpg", 30, 20))
    box = {"label": "cat", "points": [[25, 15], [29, 19]], "shape_type": "mask", "mask": mask_b64(np.ones((8, 8), bool))}
    write_json(src / "bigmask.json", labelme_document([box], "img.jpg", 30, 20))
    out = tmp_path / "out"
    result = run_cli("labelme", src, out, "--labels", write_labels(tmp_path / "labels.txt"), "--workers", 2)
    assert result.exit_code == 1
    err = result.stderr
    expected = {
        "unknown.json": "unknown label 'dgo' (not in labels.txt)",
        "broken.json": "broken JSON",
        "latin1.json": "not UTF-8 text",
        "missing.json": f"image not found: {src / 'nowhere.jpg'}",
        "height.json": "imageHeight is 21 but the image",
        "circle.json": "a circle needs 2 point(s), got 3",
        "oddtype.json": "unsupported shape_type 'hexagon'",
        "bigmask.json": "does not fit its box",
    }
    for name, reason in expected.items():
        lines = [line for line in err.splitlines() if line.startswith(f"error: {src / name}: ")]
        assert len(lines) == 1 and reason in lines[0], (name, err)
    assert "good.json" not in err
    assert "8 of 9 labelme file(s) could not be converted" in err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.txt", "registry.yaml", "src"]


def test_labelme_refuses_what_we_refuse(tmp_path):
    """The oversized mask box fails in labelme too (numpy broadcast error), so no file labelme converts is refused."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "img.png").write_bytes(encode_image(np.zeros((20, 30, 3), np.uint8), "PNG"))
    box = {"label": "cat", "points": [[25, 15], [29, 19]], "shape_type": "mask", "mask": mask_b64(np.ones((8, 8), bool))}
    write_json(src / "bigmask.json", labelme_document([box], "img.png", 30, 20))
    with pytest.raises(ValueError, match="could not broadcast"):
        labelme_load(src / "bigmask.json")


@pytest.mark.parametrize(
    ("lines", "extra", "message"),
    [
        (["cat", "_background_"], [], "first class must be '_background_'"),
        (["_background_", "cat", "cat"], [], "label 'cat' repeats line 2"),
        (["_background_", "", "cat"], [], "blank line"),
        (["__ignore__", "_background_", "cat"], ["--ignore-label", "1"], "ignore label 1 is a class id"),
        (["_background_", "cat"], ["--colormap", "nope"], "--colormap"),
    ],
)
def test_usage_errors_exit_2(run_cli, tmp_path, lines, extra, message):
    src = tmp_path / "src"
    src.mkdir()
    labels = write_labels(tmp_path / "labels.txt", lines)
    result = run_cli("labelme", src, tmp_path / "out", "--labels", labels, *extra)
    assert result.exit_code == 2
    assert message in result.stderr
    assert not (tmp_path / "out").exists()


def test_existing_out_needs_overwrite(run_cli, tmp_path):
    src = tmp_path / "src"
    make_parity_folder(src, 3)
    labels = write_labels(tmp_path / "labels.txt")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert run_cli("labelme", src, out, "--labels", labels).exit_code == 2
    assert (out / "keep.txt").exists()
    # --overwrite deletes only an export segprep labelme wrote (issue 8), never a user's folder.
    result = run_cli("labelme", src, out, "--labels", labels, "--overwrite", "--workers", 1)
    assert result.exit_code == 1 and "OUT is not a folder segprep labelme wrote" in result.stderr
    assert (out / "keep.txt").read_text() == "x"
    (out / "keep.txt").unlink()
    assert run_cli("labelme", src, out, "--labels", labels, "--workers", 1).exit_code == 0  # an empty OUT is fine
    result = run_cli("labelme", src, out, "--labels", labels, "--overwrite", "--workers", 1)
    assert result.exit_code == 0, result.output
    assert len(list((out / "SegmentationClass").iterdir())) == 3


def test_empty_folder_is_a_data_error(run_cli, tmp_path):
    (tmp_path / "src").mkdir()
    result = run_cli("labelme", tmp_path / "src", tmp_path / "out", "--labels", write_labels(tmp_path / "labels.txt"))
    assert result.exit_code == 1 and "no labelme *.json files" in result.stderr


# --------------------------------------------------------------------------- convert labelme


def test_convert_labelme_end_to_end(run_cli, tmp_path, registry, read_records_fn=None):
    from conftest import read_records

    src, voc, tf_out = tmp_path / "src", tmp_path / "voc", tmp_path / "tf"
    make_parity_folder(src, 12, seed=9)
    labels = write_labels(tmp_path / "labels.txt")
    assert run_cli("labelme", src, voc, "--labels", labels, "--val-fraction", 0.25, "--quiet").exit_code == 0
    result = run_cli("convert", "labelme", "--root", voc, "--out", tf_out, "--name", "pets", "--colormap", "ade20k")
    assert result.exit_code == 0, result.output
    entry = load_registry(registry).get("pets")
    assert entry.class_names == ["_background_", "cat", "dog", "car", "tree"]
    assert entry.num_classes == 5 and entry.ignore_label == 255 and entry.colormap == "ade20k"
    assert entry.splits == {"train": 9, "trainval": 12, "val": 3}
    for split in ("train", "val", "trainval"):
        names = (voc / "ImageSets" / "Segmentation" / f"{split}.txt").read_text().split()
        records = read_records(tf_out, split)
        assert [r[schema.FILENAME].decode() for r in records] == names
        for record in records:
            name = record[schema.FILENAME].decode()
            (image_file,) = (voc / "JPEGImages").glob(f"{name}.*")
            assert record[schema.IMAGE] == image_file.read_bytes()
            assert record[schema.IMAGE_FORMAT] == (b"png" if image_file.suffix == ".png" else b"jpeg")
            label = np.asarray(Image.open(io.BytesIO(record[schema.LABEL])))
            np.testing.assert_array_equal(label, read_png(voc / "SegmentationClass" / f"{name}.png"))
            assert (record[schema.HEIGHT], record[schema.WIDTH]) == label.shape
