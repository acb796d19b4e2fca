"""Cityscapes: trainIds against cityscapesScripts itself, `segprep trainids`, and `segprep convert cityscapes`.

Parity coverage (checked by the tests, which assert these counts): `test_polygon_parity_with_json2labelImg`
compares 160 synthetic *_polygons.json files holding 5,277 objects (4,841 drawn; the rest deleted or
license plates) with what cityscapesScripts' json2labelImg(..., "trainIds") writes, pixel for pixel.
Every label of the table appears, void classes (trainId 255) and `polegroup` included, plus
`...group` names, `license plategroup`, deleted objects (deleted: 1 / true / "yes"), explicit
deleted: 0 / false, concave and self-intersecting polygons, two-point polygons, overlapping
objects, points outside the image and negative, float coordinates and points with a third value.
Image sizes range from 1x1 to 2048x1024 (three full-size frames with 100+ large polygons).
The end-to-end CLI tests add a small tree compared with the reference files as well.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import png_bytes, random_image, read_records
from PIL import Image

from segprep.ops.cityscapes_labels import (
    BY_NAME,
    ID_TO_TRAIN_ID,
    LABELS,
    TRAIN_CLASS_NAMES,
    UnknownClassError,
)
from segprep.ops.cityscapes_raster import (
    AnnotationError,
    decode_label_ids,
    rasterize_polygons,
    subset_lookup,
)
from segprep.registry import load_registry
from segprep import schema

ALL_NAMES = [label.name for label in LABELS]
GROUP_NAMES = ["cargroup", "persongroup", "ridergroup", "bicyclegroup", "truckgroup", "motorcyclegroup", "license plategroup"]


# --------------------------------------------------------------------------- synthetic annotations


def random_points(rng: np.random.Generator, width: int, height: int, kind: int) -> list:
    """Polygon points of one of several shapes; many reach outside the image or below zero."""
    count = int(rng.integers(3, 16))
    cx, cy = rng.uniform(-0.2, 1.2) * width, rng.uniform(-0.2, 1.2) * height
    radius = rng.uniform(0.5, 0.8 * max(width, height))
    angles = np.sort(rng.uniform(0, 2 * np.pi, count))
    radii = radius * rng.uniform(0.2, 1.0, count)  # star-shaped, hence mostly concave
    xs, ys = cx + radii * np.cos(angles), cy + radii * np.sin(angles)
    if kind == 0:
        return [[int(x), int(y)] for x, y in zip(xs, ys)]
    if kind == 1:  # random vertex order: self-intersecting
        order = rng.permutation(count)
        return [[int(xs[i]), int(ys[i])] for i in order]
    if kind == 2:  # float coordinates
        return [[round(float(x), 3), round(float(y), 3)] for x, y in zip(xs, ys)]
    if kind == 3:  # a two-point polygon (a line)
        return [[int(xs[0]), int(ys[0])], [int(xs[1]), int(ys[1])]]
    if kind == 4:  # points with a third value, which the reference drops
        return [[int(x), int(y), 7] for x, y in zip(xs, ys)]
    return [[int(rng.integers(-3, width + 3)), int(rng.integers(-3, height + 3))] for _ in range(count)]  # tiny, anywhere


def random_annotation(rng: np.random.Generator, width: int, height: int, count: int, offset: int = 0) -> dict:
    """A Cityscapes-style annotation; labels cycle through the whole table and the group names."""
    names = ALL_NAMES + GROUP_NAMES
    objects = []
    for i in range(count):
        obj: dict = {"label": names[(offset + i) % len(names)], "polygon": random_points(rng, width, height, int(rng.integers(0, 6)))}
        roll = rng.random()
        if roll < 0.04:
            obj["deleted"] = [1, True, "yes"][int(rng.integers(0, 3))]
        elif roll < 0.08:
            obj["deleted"] = [0, False][int(rng.integers(0, 2))]
        objects.append(obj)
    return {"imgHeight": height, "imgWidth": width, "objects": objects}


def big_annotation(rng: np.random.Generator, width: int = 2048, height: int = 1024) -> dict:
    """A full-size frame: background regions, then 100+ polygons with 20..200 vertices."""
    objects = [{"label": "out of roi", "polygon": [[0, 0], [width, 0], [width, height], [0, height]]}]
    objects += [{"label": "sky", "polygon": [[0, 0], [width, 0], [width, height // 3], [0, height // 2]]}]
    for i in range(int(rng.integers(100, 130))):
        count = int(rng.integers(20, 200))
        cx, cy, radius = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(5, 300)
        angles = np.linspace(0, 2 * np.pi, count, endpoint=False)
        radii = radius * rng.uniform(0.4, 1.0, count)
        points = [[int(cx + r * np.cos(a)), int(cy + r * np.sin(a))] for a, r in zip(angles, radii)]
        objects.append({"label": TRAIN_CLASS_NAMES[i % 19] if i % 5 else GROUP_NAMES[i % 7], "polygon": points})
    return {"imgHeight": height, "imgWidth": width, "objects": objects}


def reference_trainids(json_path: Path, tmp: Path) -> np.ndarray:
    """What cityscapesScripts writes for this annotation, decoded."""
    json2label = pytest.importorskip("cityscapesscripts.preparation.json2labelImg")
    out = tmp / (json_path.name + ".ref.png")
    json2label.json2labelImg(str(json_path), str(out), "trainIds")
    with Image.open(out) as image:
        assert image.mode == "L"
        return np.asarray(image)


def decode(path_or_bytes) -> np.ndarray:
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "L"
        return np.asarray(image)


# --------------------------------------------------------------------------- the label table


def test_label_table_matches_cityscapesscripts():
    labels = pytest.importorskip("cityscapesscripts.helpers.labels")
    ours = [(label.name, label.id, label.train_id, label.color) for label in LABELS]
    theirs = [(label.name, label.id, label.trainId, tuple(label.color)) for label in labels.labels]
    assert ours == theirs
    assert TRAIN_CLASS_NAMES == tuple(labels.trainId2label[t].name for t in range(19))
    assert TRAIN_CLASS_NAMES[0] == "road" and TRAIN_CLASS_NAMES[18] == "bicycle"
    for value in range(256):
        expected = labels.id2label[value].trainId if value in labels.id2label and value >= 0 else 255
        assert ID_TO_TRAIN_ID[value] == expected


# --------------------------------------------------------------------------- rasterization parity


def parity_files(tmp_path: Path) -> list[Path]:
    rng = np.random.default_rng(2024)
    paths = []
    sizes = [(1, 1), (2, 3), (7, 5)] + [(int(rng.integers(8, 200)), int(rng.integers(6, 140))) for _ in range(154)]
    offset = 0
    for i, (width, height) in enumerate(sizes):
        count = int(rng.integers(1, 60))
        document = random_annotation(rng, width, height, count, offset)
        offset += count
        paths.append(tmp_path / f"c_{i:06d}_000019_gtFine_polygons.json")
        paths[-1].write_text(json.dumps(document, indent=4 if i % 2 else None))
    for i in range(3):
        paths.append(tmp_path / f"big_{i:06d}_000019_gtFine_polygons.json")
        paths[-1].write_text(json.dumps(big_annotation(rng)))
    return paths


def test_polygon_parity_with_json2labelImg(tmp_path):
    pytest.importorskip("cityscapesscripts")
    files = parity_files(tmp_path)
    objects = drawn = 0
    seen_labels: set[str] = set()
    values_seen: set[int] = set()
    for path in files:
        document = json.loads(path.read_text())
        objects += len(document["objects"])
        for obj in document["objects"]:
            seen_labels.add(obj["label"])
            drawn += not obj.get("deleted") and not obj["label"].startswith("license plate")
        ours = rasterize_polygons(path.read_bytes())
        reference = reference_trainids(path, tmp_path)
        assert ours.shape == reference.shape == (document["imgHeight"], document["imgWidth"])
        mismatch = np.argwhere(ours != reference)
        assert mismatch.size == 0, f"{path.name}: {len(mismatch)} pixels differ, first at {mismatch[0].tolist()}"
        values_seen.update(np.unique(ours).tolist())
    assert (len(files), objects, drawn) == (160, 5277, 4841)
    assert set(ALL_NAMES + GROUP_NAMES) <= seen_labels
    assert values_seen == set(range(19)) | {255}  # every trainId was actually drawn somewhere


def test_drawing_order_void_on_top_group_fallback_and_skips():
    document = {
        "imgWidth": 10,
        "imgHeight": 4,
        "objects": [
            {"label": "road", "polygon": [[0, 0], [9, 0], [9, 3], [0, 3]]},
            {"label": "cargroup", "polygon": [[0, 0], [3, 0], [3, 3], [0, 3]]},  # -> car (13)
            {"label": "polegroup", "polygon": [[4, 0], [5, 0], [5, 3], [4, 3]]},  # a label of its own: 255
            {"label": "sky", "polygon": [[6, 0], [7, 0], [7, 3], [6, 3]], "deleted": 1},
            {"label": "license plate", "polygon": [[8, 0], [9, 0], [9, 3], [8, 3]]},
            {"label": "car", "polygon": [[]], "deleted": True},  # deleted objects are not examined
        ],
    }
    labels = rasterize_polygons(json.dumps(document).encode())
    assert labels[1].tolist() == [13, 13, 13, 13, 255, 255, 0, 0, 0, 0]


@pytest.mark.parametrize(
    ("objects", "reason"),
    [
        ([{"label": "road", "polygon": []}], "polygon 0 cannot be drawn"),
        ([{"label": "road", "polygon": [[1, 1]]}], "polygon 0 cannot be drawn"),
        ([{"label": "road", "polygon": [1, 2, 3, 4, 5, 6]}], "object 0 (road): polygon points are not [x, y] pairs"),
        ([{"label": "road"}], "object 0 (road) has no 'polygon'"),
        ([{"label": "road", "polygon": [[0, 0], [2, 0], [1, 1]]}, {"label": "skyscraper", "polygon": [[0, 0], [1, 1]]}],
         "unknown label 'skyscraper' (object 1)"),
        ([{"label": "foogroup", "polygon": [[0, 0], [1, 1]]}], "unknown label 'foogroup' (object 0)"),
    ],
)
def test_annotations_the_reference_cannot_draw_are_errors(tmp_path, objects, reason):
    data = json.dumps({"imgWidth": 5, "imgHeight": 5, "objects": objects}).encode()
    with pytest.raises(AnnotationError) as caught:
        rasterize_polygons(data)
    assert reason in str(caught.value)
    json2label = pytest.importorskip("cityscapesscripts.preparation.json2labelImg")
    path = tmp_path / "a_polygons.json"
    path.write_bytes(data)
    with pytest.raises((Exception, SystemExit)):  # the reference fails on these too (unknown label: sys.exit)
        json2label.json2labelImg(str(path), str(tmp_path / "a.png"), "trainIds")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"imgWidth": 4, "imgHeight": 2, "objects": [', "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"imgHeight": 2, "objects": []}', "no 'imgWidth'"),
        (b'{"imgWidth": 0, "imgHeight": 2, "objects": []}', "image size 0x2 is empty"),
        (b'{"imgWidth": 4, "imgHeight": 2}', "no 'objects' list"),
    ],
)
def test_broken_json_is_an_annotation_error(data, reason):
    with pytest.raises(AnnotationError, match=reason):
        rasterize_polygons(data)


def test_label_ids_decode_and_refuse_non_ids():
    ids = np.array([[0, 7, 26, 33], [24, 25, 1, 18]], dtype=np.uint8)
    np.testing.assert_array_equal(decode_label_ids(png_bytes(ids, "L")), ids)
    with pytest.raises(AnnotationError, match=r"not Cityscapes label ids \(0..33\): 34 \(1 px\), 200 \(1 px\)"):
        decode_label_ids(png_bytes(np.array([[7, 34, 200]], dtype=np.uint8), "L"))
    with pytest.raises(AnnotationError, match="mode RGB"):
        decode_label_ids(png_bytes(np.zeros((2, 2, 3), dtype=np.uint8)))


def test_subset_lookup_orders_classes_as_given():
    table = subset_lookup(["rider", "person"])
    assert table[12] == 1 and table[11] == 2 and table[255] == 255
    assert [int(table[t]) for t in range(19) if t not in (11, 12)] == [0] * 17
    assert table[19] == 19  # no trainId: left as is, so it stays invalid
    assert subset_lookup(["traffic_light"])[6] == 1
    with pytest.raises(UnknownClassError, match="unknown Cityscapes class.*'cars'.*valid: road, sidewalk"):
        subset_lookup(["cars"])
    with pytest.raises(UnknownClassError, match="twice"):
        subset_lookup(["car", "car"])


# --------------------------------------------------------------------------- a synthetic tree


def make_tree(root: Path, spec: dict[tuple[str, str], dict[str, int]], seed: int = 0, width: int = 64, height: int = 32) -> list[Path]:
    """gtFine/gtCoarse {split}/{city}/ polygons JSONs and leftImg8bit images; returns the JSON paths.

    The test split gets only void labels, as the real one does.
    """
    rng = np.random.default_rng(seed)
    jsons = []
    for (group, split), cities in spec.items():
        for city, count in cities.items():
            for i in range(count):
                base = f"{city}_{i:06d}_{19 + i:06d}"
                folder = root / group / split / city
                folder.mkdir(parents=True, exist_ok=True)
                document = random_annotation(rng, width, height, int(rng.integers(5, 25)), offset=i)
                if split == "test":
                    document["objects"] = [{"label": "out of roi", "polygon": [[0, 0], [width, 0], [width, height], [0, height]]}]
                path = folder / f"{base}_{group}_polygons.json"
                path.write_text(json.dumps(document))
                jsons.append(path)
                image = root / "leftImg8bit" / split / city / f"{base}_leftImg8bit.png"
                if not image.exists():
                    image.parent.mkdir(parents=True, exist_ok=True)
                    image.write_bytes(png_bytes(random_image(rng, width, height)))
    return jsons


def trainids_file(json_path: Path, tag: str = "") -> Path:
    return json_path.with_name(json_path.name.replace("_polygons.json", f"_labelTrainIds{tag}.png"))


FINE_SPEC = {("gtFine", "train"): {"aachen": 3, "bochum": 2}, ("gtFine", "val"): {"frankfurt": 2}}


def test_trainids_cli_matches_reference(run_cli, tmp_path):
    pytest.importorskip("cityscapesscripts")
    root = tmp_path / "cityscapes"
    jsons = make_tree(root, FINE_SPEC)
    result = run_cli("trainids", root, "--workers", "2")
    assert result.exit_code == 0, result.output
    assert "gtFine/train" in result.stdout and "gtFine/val" in result.stdout
    for path in jsons:
        np.testing.assert_array_equal(decode(trainids_file(path)), reference_trainids(path, tmp_path))
    # Re-run: rewritten (same bytes); --skip-existing leaves a changed file alone.
    first = trainids_file(jsons[0])
    first.write_bytes(b"stale")
    assert run_cli("trainids", root, "--skip-existing", "--quiet").exit_code == 0
    assert first.read_bytes() == b"stale"
    assert run_cli("trainids", root, "--quiet").exit_code == 0
    np.testing.assert_array_equal(decode(first), reference_trainids(jsons[0], tmp_path))


def test_trainids_coarse_only_with_flag(run_cli, tmp_path):
    root = tmp_path / "cityscapes"
    fine = make_tree(root, FINE_SPEC)
    coarse = make_tree(root, {("gtCoarse", "train_extra"): {"augsburg": 3}}, seed=1)
    assert run_cli("trainids", root, "--quiet").exit_code == 0
    assert all(trainids_file(p).is_file() for p in fine) and not any(trainids_file(p).exists() for p in coarse)
    assert run_cli("trainids", root, "--quiet", "--coarse").exit_code == 0
    for path in coarse:
        assert trainids_file(path).name.endswith("_gtCoarse_labelTrainIds.png")
        np.testing.assert_array_equal(decode(trainids_file(path)), rasterize_polygons(path.read_bytes()))
    empty = tmp_path / "fine_only"
    make_tree(empty, FINE_SPEC)
    result = run_cli("trainids", empty, "--coarse")
    nothing = run_cli("trainids", tmp_path / "fine_only" / "gtFine")
    assert nothing.exit_code == 1 and "no gtFine/SPLIT/CITY/*_gtFine_polygons.json found" in nothing.stderr
    assert result.exit_code == 1 and "--coarse, but no gtCoarse/SPLIT/CITY/*_gtCoarse_polygons.json found" in result.stderr


def test_trainids_from_label_ids_uses_the_reference_table(run_cli, tmp_path):
    labels = pytest.importorskip("cityscapesscripts.helpers.labels")
    root = tmp_path / "cityscapes"
    rng = np.random.default_rng(3)
    sources = {}
    for split, city in (("train", "aachen"), ("val", "lindau")):
        folder = root / "gtFine" / split / city
        folder.mkdir(parents=True)
        ids = rng.integers(0, 34, (20, 30), dtype=np.uint8)
        path = folder / f"{city}_000000_000019_gtFine_labelIds.png"
        path.write_bytes(png_bytes(ids, "L"))
        sources[path] = ids
    result = run_cli("trainids", root, "--source", "labelids", "--quiet")
    assert result.exit_code == 0, result.output
    to_train = np.vectorize(lambda v: labels.id2label[int(v)].trainId)
    for path, ids in sources.items():
        out = path.with_name(path.name.replace("_labelIds.png", "_labelTrainIds.png"))
        np.testing.assert_array_equal(decode(out), to_train(ids))
    result = run_cli("trainids", root, "--source", "labelids", "--classes", "car", "--quiet")
    assert result.exit_code == 0, result.output
    for path, ids in sources.items():
        out = path.with_name(path.name.replace("_labelIds.png", "_labelTrainIds_car.png"))
        expected = np.where(ids == 26, 1, np.where(to_train(ids) == 255, 255, 0))
        np.testing.assert_array_equal(decode(out), expected)


@pytest.mark.parametrize(("classes", "tag", "name", "colors"), [
    ("car", "_car", "cityscapes_car", [[0, 0, 0], [0, 0, 142]]),
    ("person,rider", "_person-rider", "cityscapes_person_rider", [[0, 0, 0], [220, 20, 60], [255, 0, 0]]),
])
def test_trainids_class_subsets(run_cli, registry, tmp_path, classes, tag, name, colors):
    root = tmp_path / "cityscapes"
    jsons = make_tree(root, FINE_SPEC)
    result = run_cli("trainids", root, "--classes", classes)
    assert result.exit_code == 0, result.output
    chosen = classes.split(",")
    for path in jsons:
        assert not trainids_file(path).exists()  # a subset never writes (or replaces) the full trainIds file
        train_ids = rasterize_polygons(path.read_bytes())
        expected = np.zeros_like(train_ids)
        expected[train_ids == 255] = 255
        for k, cls in enumerate(chosen, start=1):
            expected[train_ids == TRAIN_CLASS_NAMES.index(cls)] = k
        np.testing.assert_array_equal(decode(trainids_file(path, tag)), expected)
    entry = load_registry(registry).get(name)
    assert (entry.num_classes, entry.ignore_label, entry.class_names, entry.colormap, entry.splits) == (
        len(chosen) + 1, 255, ["background", *chosen], colors, {})


def test_trainids_subset_name_and_usage_errors(run_cli, registry, tmp_path):
    root = tmp_path / "cityscapes"
    make_tree(root, FINE_SPEC)
    assert run_cli("trainids", root, "--classes", "car", "--name", "cars_only", "--quiet").exit_code == 0
    assert load_registry(registry).get("cars_only").class_names == ["background", "car"]
    result = run_cli("trainids", root, "--classes", "car,plane")
    assert result.exit_code == 2 and "'plane'" in result.stderr and "valid: road, sidewalk" in result.stderr
    assert run_cli("trainids", root, "--name", "x").exit_code == 2
    taken = run_cli("trainids", root, "--classes", "car", "--name", "camvid")
    assert taken.exit_code == 2 and "already has a dataset 'camvid'" in taken.stderr
    assert load_registry(registry).get("camvid").num_classes == 11


def test_trainids_reports_every_bad_file(run_cli, tmp_path, registry):
    root = tmp_path / "cityscapes"
    jsons = make_tree(root, FINE_SPEC)
    unknown, broken = jsons[1], jsons[4]
    document = json.loads(unknown.read_text())
    document["objects"].append({"label": "hovercraft", "polygon": [[0, 0], [5, 5], [0, 5]]})
    unknown.write_text(json.dumps(document))
    broken.write_text('{"imgWidth": 64, "imgHeight": 32, "objects": [')
    result = run_cli("trainids", root, "--classes", "car", "--workers", "2")
    assert result.exit_code == 1
    assert f"error: {unknown}: unknown label 'hovercraft'" in result.stderr
    assert f"error: {broken}: not valid JSON" in result.stderr
    assert "2 of 7 annotation(s) could not be converted; the other 5 were written" in result.stderr
    assert not trainids_file(unknown, "_car").exists() and not trainids_file(broken, "_car").exists()
    assert all(trainids_file(p, "_car").is_file() for p in jsons if p not in (unknown, broken))
    assert "cityscapes_car" not in load_registry(registry).datasets  # a failed run registers nothing

    ids_root = tmp_path / "ids"
    folder = ids_root / "gtFine" / "train" / "aachen"
    folder.mkdir(parents=True)
    good, bad = folder / "aachen_000000_000019_gtFine_labelIds.png", folder / "aachen_000001_000019_gtFine_labelIds.png"
    good.write_bytes(png_bytes(np.full((4, 4), 26, dtype=np.uint8), "L"))
    bad.write_bytes(png_bytes(np.array([[26, 34], [250, 7]], dtype=np.uint8), "L"))
    result = run_cli("trainids", ids_root, "--source", "labelids")
    assert result.exit_code == 1
    assert f"error: {bad}: values that are not Cityscapes label ids (0..33): 34 (1 px), 250 (1 px)" in result.stderr
    assert decode(good.with_name("aachen_000000_000019_gtFine_labelTrainIds.png")).tolist() == [[13] * 4] * 4


def test_generate_missing_trainids_keeps_existing_files(tmp_path):
    from segprep.trainids import generate_missing_trainids

    root = tmp_path / "cityscapes"
    jsons = make_tree(root, {**FINE_SPEC, ("gtCoarse", "train_extra"): {"augsburg": 2}})
    trainids_file(jsons[0]).write_bytes(b"made by someone else")
    assert generate_missing_trainids(root, workers=2) == []
    assert trainids_file(jsons[0]).read_bytes() == b"made by someone else"
    for path in jsons[1:]:
        np.testing.assert_array_equal(decode(trainids_file(path)), rasterize_polygons(path.read_bytes()))
    jsons[2].write_text("{")
    trainids_file(jsons[2]).unlink()
    assert [line.split(": ")[0] for line in generate_missing_trainids(root, workers=1)] == [str(jsons[2])]


# --------------------------------------------------------------------------- convert cityscapes


CONVERT_SPEC = {
    ("gtFine", "train"): {"aachen": 2, "bochum": 2},
    ("gtFine", "val"): {"frankfurt": 2},
    ("gtFine", "test"): {"berlin": 2},
    ("gtCoarse", "train"): {"aachen": 2},  # coarse labels of fine images: converted, never used
    ("gtCoarse", "train_extra"): {"augsburg": 2, "bamberg": 1},
}


def test_convert_cityscapes_end_to_end(run_cli, registry, tmp_path):
    root = tmp_path / "cityscapes"
    jsons = make_tree(root, CONVERT_SPEC)
    before = {p for p in root.rglob("*") if p.is_file()}
    out = tmp_path / "out"
    result = run_cli("convert", "cityscapes", "--root", root, "--out", out, "--quiet")
    assert result.exit_code == 0, result.output

    after = {p for p in root.rglob("*") if p.is_file()}
    assert after - before == {trainids_file(p) for p in jsons}  # nothing copied into the dataset
    assert all(p.suffix == ".tfrecord" or p.name.endswith(".manifest.json") or p.name.endswith(".journal.jsonl")
               for p in out.iterdir())
    expected = {"train": 4, "val": 2, "test": 2, "trainval": 6, "train_extra": 7}
    assert load_registry(registry).get("cityscapes").splits == expected

    names = {
        "train": ["aachen_000000_000019", "aachen_000001_000020", "bochum_000000_000019", "bochum_000001_000020"],
        "val": ["frankfurt_000000_000019", "frankfurt_000001_000020"],
        "test": ["berlin_000000_000019", "berlin_000001_000020"],
    }
    names["trainval"] = names["train"] + names["val"]
    names["train_extra"] = names["train"] + ["augsburg_000000_000019", "augsburg_000001_000020", "bamberg_000000_000019"]
    for split, expected_names in names.items():
        records = read_records(out, split)
        assert [r[schema.FILENAME].decode() for r in records] == expected_names
        for record in records:
            name = record[schema.FILENAME].decode()
            city = name.split("_")[0]
            image_split = "train_extra" if city in ("augsburg", "bamberg") else next(s for (g, s), c in CONVERT_SPEC.items() if g == "gtFine" and city in c)
            group = "gtCoarse" if image_split == "train_extra" else "gtFine"
            annotation = root / group / image_split / city / f"{name}_{group}_polygons.json"
            assert record[schema.IMAGE] == (root / "leftImg8bit" / image_split / city / f"{name}_leftImg8bit.png").read_bytes()
            assert (record[schema.HEIGHT], record[schema.WIDTH]) == (32, 64)
            np.testing.assert_array_equal(decode(record[schema.LABEL]), rasterize_polygons(annotation.read_bytes()))
    assert {int(v) for r in read_records(out, "test") for v in np.unique(decode(r[schema.LABEL]))} == {255}


def test_convert_cityscapes_class_subset(run_cli, registry, tmp_path):
    root = tmp_path / "cityscapes"
    make_tree(root, {("gtFine", "train"): {"aachen": 3}, ("gtFine", "val"): {"lindau": 2}})
    out = tmp_path / "out_car"
    result = run_cli("convert", "cityscapes", "--root", root, "--out", out, "--classes", "car", "--quiet")
    assert result.exit_code == 0, result.output
    entry = load_registry(registry).get("cityscapes_car")
    assert (entry.class_names, entry.splits) == (["background", "car"], {"train": 3, "val": 2, "trainval": 5})
    assert load_registry(registry).get("cityscapes").splits == {}
    car = BY_NAME["car"].train_id
    for record in read_records(out, "trainval"):
        name = record[schema.FILENAME].decode()
        train_ids = decode(next(root.glob(f"gtFine/*/*/{name}_gtFine_labelTrainIds.png")))
        expected = np.where(train_ids == car, 1, np.where(train_ids == 255, 255, 0))
        np.testing.assert_array_equal(decode(record[schema.LABEL]), expected)

    unknown = run_cli("convert", "cityscapes", "--root", root, "--out", tmp_path / "out_x", "--classes", "car,dragon")
    assert unknown.exit_code == 2 and "dragon" in unknown.output
    assert not (tmp_path / "out_x").exists()


def test_convert_cityscapes_bad_annotations_and_unpaired_files(run_cli, tmp_path):
    root = tmp_path / "cityscapes"
    jsons = make_tree(root, {("gtFine", "train"): {"aachen": 2}, ("gtFine", "val"): {"lindau": 1}})
    good = jsons[0].read_text()
    for path in jsons[:2]:
        path.write_text('{"imgWidth": 64, "imgHeight": 32, "objects": [{"label": "ufo", "polygon": [[0, 0], [1, 1]]}]}')
    out = tmp_path / "out"
    result = run_cli("convert", "cityscapes", "--root", root, "--out", out, "--quiet")
    assert result.exit_code == 1
    assert all(f"error: {p}: unknown label 'ufo' (object 0)" in result.stderr for p in jsons[:2])
    assert "2 Cityscapes annotation(s) could not be turned into trainIds; nothing written" in result.stderr
    assert not out.exists()
    for path in jsons[:2]:
        path.write_text(good)
    orphan = root / "leftImg8bit" / "train" / "aachen" / "aachen_000099_000019_leftImg8bit.png"
    orphan.write_bytes(png_bytes(random_image(np.random.default_rng(0), 64, 32)))
    result = run_cli("convert", "cityscapes", "--root", root, "--out", out, "--quiet")
    assert result.exit_code == 1
    missing = root / "gtFine" / "train" / "aachen" / "aachen_000099_000019_gtFine_labelTrainIds.png"
    assert f"{orphan}: image has no label {missing}" in result.stderr
    assert not list(out.glob("train-*")) and not list(out.glob("trainval-*"))
    assert [r[schema.FILENAME] for r in read_records(out, "val")] == [b"lindau_000000_000019"]


def test_load_cityscapes_splits_unions_and_unpaired_files(tmp_path):
    from segprep.datasets.base import LayoutError
    from segprep.datasets.adapter import label_policy
    from segprep.datasets.cityscapes import load_cityscapes, subset_entry
    from segprep.registry import load_registry
    from segprep.trainids import generate_missing_trainids

    root = tmp_path / "cityscapes"
    jsons = make_tree(root, {("gtFine", "train"): {"aachen": 2}, ("gtFine", "val"): {"lindau": 1}})
    assert generate_missing_trainids(root, workers=1) == []
    layout = load_cityscapes(root, None)
    assert list(layout.splits) == ["train", "val", "trainval"]  # no test, no coarse: not offered
    assert [s.name for s in layout.splits["trainval"]] == ["aachen_000000_000019", "aachen_000001_000020", "lindau_000000_000019"]
    assert layout.splits["trainval"][0] is layout.splits["train"][0]  # a list of the same samples, not copies
    policy = label_policy(load_registry(tmp_path / "registry.yaml").get("cityscapes"), layout.rules)
    assert (policy.num_classes, policy.ignore_label, policy.remap, policy.accept_palette) == (19, 255, (), False)
    assert list(load_cityscapes(root, ["val", "train_extra"]).splits) == ["val"]

    stray = trainids_file(jsons[0]).with_name("aachen_000007_000019_gtFine_labelTrainIds.png")
    stray.write_bytes(trainids_file(jsons[0]).read_bytes())
    layout = load_cityscapes(root, ["trainval"])
    assert [p.line() for p in layout.problems_for("trainval")] == [
        f"{stray}: label has no image {root / 'leftImg8bit' / 'train' / 'aachen' / 'aachen_000007_000019_leftImg8bit.png'}"
    ]

    subset = load_cityscapes(root, ["train"], ["bicycle", "road"])
    policy = label_policy(subset_entry(["bicycle", "road"]), subset.rules)
    assert policy.num_classes == 3 and dict(policy.remap)[18] == 1 and dict(policy.remap)[0] == 2
    assert dict(policy.remap).get(13) == 0 and 255 not in dict(policy.remap)
    entry = subset_entry(["traffic_light", "sky"])
    assert (entry.name, entry.class_names, entry.colormap) == (
        "cityscapes_traffic_light_sky", ["background", "traffic light", "sky"], [[0, 0, 0], [250, 170, 30], [70, 130, 180]])
    with pytest.raises(UnknownClassError):
        load_cityscapes(root, None, ["boat"])
    with pytest.raises(LayoutError, match="no Cityscapes split found"):
        load_cityscapes(tmp_path / "empty", None)
