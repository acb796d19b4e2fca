"""The real CamVid (SegNet layout) from ../shared: skipped where it is absent, as in a user's clone."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import SHARED_CAMVID, read_records
from PIL import Image

from segprep.registry import load_registry
from segprep import schema

pytestmark = pytest.mark.skipif(not (SHARED_CAMVID / "train.txt").is_file(), reason="../shared/datasets/camvid is absent")


def test_convert_real_camvid(run_cli, registry, tmp_path):
    out = tmp_path / "camvid"
    result = run_cli("convert", "camvid", "--root", SHARED_CAMVID, "--out", out)
    assert result.exit_code == 0, result.output
    assert load_registry(registry).get("camvid").splits == {"train": 367, "val": 101, "test": 233}
    for split, count in (("train", 367), ("val", 101), ("test", 233)):
        records = read_records(out, split)
        assert len(records) == count
        listed = [line.split()[0].rsplit("/", 1)[1][:-4] for line in (SHARED_CAMVID / f"{split}.txt").read_text().splitlines()]
        assert [r[schema.FILENAME].decode() for r in records] == listed
        for record in records:
            name = record[schema.FILENAME].decode()
            assert record[schema.IMAGE] == (SHARED_CAMVID / split / f"{name}.png").read_bytes()
            assert (record[schema.HEIGHT], record[schema.WIDTH], record[schema.IMAGE_FORMAT]) == (360, 480, b"png")
            source = np.asarray(Image.open(SHARED_CAMVID / f"{split}annot" / f"{name}.png"))
            stored = np.asarray(Image.open(io.BytesIO(record[schema.LABEL])))
            np.testing.assert_array_equal(stored, np.where(source == 11, 255, source))
    assert run_cli("verify", out).exit_code == 0
