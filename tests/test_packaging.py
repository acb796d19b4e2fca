"""The built-in registry has one copy, the top-level dataset_registry.yaml, and a built wheel carries it."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TOP = REPO / "dataset_registry.yaml"


def test_the_package_reads_the_top_level_registry() -> None:
    from segprep.registry import BUILTIN_REGISTRY

    assert BUILTIN_REGISTRY.resolve() == TOP.resolve()
    copies = [p for folder in ("segprep", "segtrain") for p in (REPO / folder).rglob("*.yaml") if not p.is_symlink()]
    assert copies == []  # the package holds a link to the top-level file, no copy that could drift


def test_a_built_wheel_holds_the_registry(tmp_path: Path) -> None:
    try:
        import setuptools  # noqa: F401
    except ImportError:
        pytest.skip("setuptools is not installed in this environment")
    source = tmp_path / "src"
    shutil.copytree(REPO, source, symlinks=True, ignore=shutil.ignore_patterns(".venv", ".git", "*.egg-info", "__pycache__", "build", "dist", "examples"))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(source), "-w", str(tmp_path / "dist")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    wheel = next((tmp_path / "dist").glob("segprep-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        shipped = archive.read("segprep/dataset_registry.yaml")
    assert hashlib.sha256(shipped).digest() == hashlib.sha256(TOP.read_bytes()).digest()


def test_no_command_writes_the_builtin_registry(tmp_path: Path, registry: Path, run_cli) -> None:
    from conftest import make_folder_dataset

    before = TOP.read_bytes(), os.stat(TOP).st_mtime_ns
    root = make_folder_dataset(tmp_path / "data", count=4)
    assert run_cli("convert", "folder", "--root", root, "--out", tmp_path / "out", "--name", "toy", "--quiet").exit_code == 0
    assert run_cli("register", "camvid", "--class-weights", ",".join(["1"] * 11)).exit_code == 0
    assert run_cli("inspect", "toy", "--class-weights").exit_code == 0
    assert (TOP.read_bytes(), os.stat(TOP).st_mtime_ns) == before
