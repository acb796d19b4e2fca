"""--runner beam: the local runner's plan on Apache Beam, the same files byte for byte."""

from __future__ import annotations

import hashlib

import pytest
from conftest import make_folder_dataset

from segprep.beam_writer import pipeline_flags

DIRECT_TWO = "runner=DirectRunner,direct_num_workers=2"


def digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_pipeline_options_in_tfds_form():
    assert pipeline_flags(None) == ["--runner=DirectRunner"]
    assert pipeline_flags(DIRECT_TWO) == ["--runner=DirectRunner", "--direct_num_workers=2", "--direct_running_mode=multi_processing"]
    assert pipeline_flags("runner=DataflowRunner, project=p ,region=europe-west1") == ["--runner=DataflowRunner", "--project=p", "--region=europe-west1"]
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        pipeline_flags("runner")


def test_a_url_needs_the_beam_runner(run_cli, tmp_path):
    root = make_folder_dataset(tmp_path / "data", count=3)
    result = run_cli("convert", "folder", "--root", root, "--out", "gs://bucket/out", "--name", "toy")
    assert result.exit_code == 2 and "a URL needs --runner beam" in result.output


beam = pytest.importorskip("apache_beam", reason="apache-beam is the [beam] extra")


@pytest.mark.parametrize("options", [None, DIRECT_TWO])
def test_beam_writes_the_local_runners_bytes(run_cli, registry, tmp_path, options):
    root = make_folder_dataset(tmp_path / "data", count=23)
    common = ["--root", root, "--name", "toy", "--split", "train=0.7", "--split", "val=0.3", "--num-shards", "3", "--quiet"]
    empty = registry.read_text()
    assert run_cli("convert", "folder", "--out", tmp_path / "local", *common).exit_code == 0
    local_registry = registry.read_text()
    extra = ["--beam-pipeline-options", options] if options else []
    registry.write_text(empty)
    result = run_cli("convert", "folder", "--out", tmp_path / "beam", "--runner", "beam", *extra, *common)
    assert result.exit_code == 0, result.output
    local, beamed = digests(tmp_path / "local"), digests(tmp_path / "beam")
    assert sorted(local) == sorted(beamed) == [*(f"train-0000{i}-of-00003.tfrecord" for i in range(3)), "train.manifest.json",
                                               "trainval-00000-of-00003.tfrecord", "trainval-00001-of-00003.tfrecord", "trainval-00002-of-00003.tfrecord",
                                               "trainval.manifest.json", *(f"val-0000{i}-of-00003.tfrecord" for i in range(3)), "val.manifest.json"]
    assert local == beamed
    assert registry.read_text() == local_registry.replace(str((tmp_path / "local").resolve()), str((tmp_path / "beam").resolve()))
    verify = run_cli("verify", tmp_path / "beam")
    assert verify.exit_code == 0, verify.output


def test_beam_refuses_a_bad_split_and_keeps_its_old_output(run_cli, tmp_path):
    root = make_folder_dataset(tmp_path / "data", count=8)
    common = ["--root", root, "--name", "toy", "--split", "train=1", "--num-shards", "2", "--quiet", "--runner", "beam"]
    out = tmp_path / "out"
    assert run_cli("convert", "folder", "--out", out, *common).exit_code == 0
    before = digests(out)
    bad = sorted((root / "labels").iterdir())[3]
    bad.write_bytes(b"not a png")
    result = run_cli("convert", "folder", "--out", out, *common)
    assert result.exit_code == 1 and f"{bad}: label is not a PNG" in result.stderr
    assert digests(out) == before  # nothing staged, no result file left, the earlier split intact
    skipped = run_cli("convert", "folder", "--out", out, *common, "--skip-invalid")
    assert skipped.exit_code == 0 and f"skipped {bad}" in skipped.stderr
    assert run_cli("verify", out).exit_code == 0
