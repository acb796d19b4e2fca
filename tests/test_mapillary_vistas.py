"""Mapillary Vistas v1.2: palette labels stored as their index images, Unlabeled (65) the ignore label."""

from __future__ import annotations

import io

import numpy as np
from conftest import jpeg_bytes, random_image, read_records
from PIL import Image

from segprep import schema
from segprep.colormaps import builtin_colormap, palette_for_png
from segprep.registry import load_registry


def vistas_label(ids: np.ndarray) -> bytes:
    """A label as Vistas ships it: a palette PNG whose indices are the ids, with the v1.2 colours."""
    image = Image.fromarray(ids, "P")
    image.putpalette(palette_for_png(builtin_colormap("mapillary_vistas"), 65))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def make_vistas(root, counts, labels_dir="v1.2/labels", seed=0):
    rng = np.random.default_rng(seed)
    ids = {}
    for split, folder in (("train", "training"), ("val", "validation")):
        (root / folder / "images").mkdir(parents=True)
        (root / folder / labels_dir).mkdir(parents=True)
        for i in range(counts[split]):
            name = f"{split}{i:02d}_AbCdEfGh"
            (root / folder / "images" / f"{name}.jpg").write_bytes(jpeg_bytes(random_image(rng, 30, 20)))
            label = rng.integers(0, 66, (20, 30), dtype=np.uint8)  # 65 = Unlabeled
            (root / folder / labels_dir / f"{name}.png").write_bytes(vistas_label(label))
            ids[name] = label
    (root / "testing" / "images").mkdir(parents=True)  # no labels: never a split
    return ids


def test_vistas_palette_labels_become_their_ids(run_cli, tmp_path, registry):
    root = tmp_path / "vistas"
    ids = make_vistas(root, {"train": 5, "val": 2})
    out = tmp_path / "out"
    result = run_cli("convert", "mapillary_vistas", "--root", root, "--out", out, "--quiet", "--splits", "train,val,trainval")
    assert result.exit_code == 0, result.output
    entry = load_registry(registry).get("mapillary_vistas")
    assert (entry.num_classes, entry.ignore_label, entry.splits) == (65, 65, {"train": 5, "val": 2, "trainval": 7})
    assert entry.class_names[13] == "Road" and entry.class_names[-1] == "Ego Vehicle"
    for split in ("train", "val"):
        records = read_records(out, split)
        assert [r[schema.FILENAME].decode() for r in records] == sorted(n for n in ids if n.startswith(split))
        for record in records:
            stored = Image.open(io.BytesIO(record[schema.LABEL]))
            assert stored.mode == "L"
            np.testing.assert_array_equal(np.asarray(stored), ids[record[schema.FILENAME].decode()])


def test_vistas_releases_before_2_0_keep_labels_beside_images(run_cli, tmp_path):
    root = tmp_path / "vistas"
    make_vistas(root, {"train": 2, "val": 1}, labels_dir="labels")
    result = run_cli("convert", "mapillary_vistas", "--root", root, "--out", tmp_path / "out", "--quiet")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").glob("*.manifest.json")) == ["train.manifest.json", "val.manifest.json"]


def test_vistas_id_above_65_and_a_missing_label_are_named(run_cli, tmp_path):
    root = tmp_path / "vistas"
    ids = make_vistas(root, {"train": 3, "val": 1})
    bad = ids["train01_AbCdEfGh"].copy()
    bad[0, 0] = 66
    (root / "training" / "v1.2" / "labels" / "train01_AbCdEfGh.png").write_bytes(vistas_label(bad))
    (root / "training" / "v1.2" / "labels" / "train02_AbCdEfGh.png").unlink()
    result = run_cli("convert", "mapillary_vistas", "--root", root, "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert "train01_AbCdEfGh.png: label values outside [0, 65) ∪ {65}: 66 (1 px)" in result.stderr
    assert "train02_AbCdEfGh.jpg: image has no label" in result.stderr
    assert not list((tmp_path / "out").glob("train-*"))
