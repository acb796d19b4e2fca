"""The layout catalog: one adapter interface, options declared once, the label policy built in one place."""

from __future__ import annotations

import importlib
import io

import numpy as np
from conftest import make_camvid_layout, read_records
from PIL import Image

from segprep import schema
from segprep.datasets.adapter import ConvertContext, label_policy
from segprep.datasets.base import LabelRules
from segprep.datasets.catalog import ADAPTERS, OPTIONS, takes
from segprep.registry import DatasetEntry, load_registry


def test_every_adapter_plans_and_every_option_is_read():
    for adapter in ADAPTERS.values():
        assert callable(importlib.import_module(adapter.module).plan), adapter.name
        assert set(adapter.options) <= set(OPTIONS), adapter.name
    assert {dest for a in ADAPTERS.values() for dest in takes(a)} == set(OPTIONS)  # the class-mapping options: every layout


def test_an_option_of_another_layout_is_refused(run_cli, tmp_path):
    root = make_camvid_layout(tmp_path / "camvid", {"train": 2, "val": 1, "test": 1})
    result = run_cli("convert", "camvid", "--root", root, "--out", tmp_path / "out", "--seed", "3", "--quiet")
    assert result.exit_code == 2 and "--seed: not an option of camvid" in result.output
    assert not (tmp_path / "out").exists()


def test_policy_takes_classes_and_ignore_from_the_registry_and_conversions_from_the_rules(registry, tmp_path):
    reg = load_registry(registry)
    camvid = reg.get("camvid")
    policy = label_policy(camvid, LabelRules(void_values=(11,)))
    assert (policy.num_classes, policy.ignore_label, policy.remap, policy.accept_palette) == (11, 255, ((11, 255),), False)
    # A user entry with another ignore label: the void value goes there.
    mine = DatasetEntry("mine", 3, 0, "pascal", ["a", "b", "c"])
    assert label_policy(mine, LabelRules(void_values=(7,))).remap == ((7, 0),)
    kitti = label_policy(reg.get("kitti_road"), LabelRules(colour_coded=True, void_colors=((0, 0, 0),)))
    assert kitti.colormap == ((255, 0, 0), (255, 0, 255)) and kitti.extra_colors == (((0, 0, 0), 255),)


def test_the_plan_is_what_the_cli_writes(run_cli, registry, tmp_path):
    """convert camvid through the CLI holds exactly the samples the adapter's plan lists, void stored as 255."""
    root = make_camvid_layout(tmp_path / "camvid", {"train": 3, "val": 2, "test": 1})
    plan = ADAPTERS["camvid"].plan(ConvertContext(root, None, {}, load_registry(registry)))
    assert plan.entry.name == "camvid" and not plan.register
    out = tmp_path / "out"
    assert run_cli("convert", "camvid", "--root", root, "--out", out, "--quiet").exit_code == 0
    voids = 0
    for split, samples in plan.layout.splits.items():
        records = read_records(out, split)
        assert [r[schema.FILENAME].decode() for r in records] == [s.name for s in samples]
        for record, sample in zip(records, samples):
            source = np.asarray(Image.open(sample.label))
            stored = np.asarray(Image.open(io.BytesIO(record[schema.LABEL])))
            np.testing.assert_array_equal(stored, np.where(source == 11, 255, source))
            voids += int((source == 11).sum())
    assert voids > 0  # the synthetic labels do hold CamVid's void value
