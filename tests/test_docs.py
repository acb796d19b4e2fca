"""The project's docs/ are its contract: the CLI reference must be what the commands print."""

from __future__ import annotations

import importlib.util
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("make_cli_reference", DOCS / "make_cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_current() -> None:
    page = (DOCS / "cli.md").read_text(encoding="utf-8")
    assert page == _generator().render(), "docs/cli.md is stale: run python docs/make_cli_reference.py"


def test_cli_reference_covers_every_command() -> None:
    from segprep.cli.main import main as segprep_main
    from segtrain.cli import main as segtrain_main

    page = (DOCS / "cli.md").read_text(encoding="utf-8")
    for tool, group in (("segprep", segprep_main), ("segtrain", segtrain_main)):
        for name in group.commands:
            assert f"### `{tool} {name}`" in page


def test_docs_pages_exist_and_are_linked_from_the_readme() -> None:
    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    for page in ("cli.md", "tfrecord.md", "registry.md", "exports.md", "metrics.md"):
        assert (DOCS / page).is_file()
        assert f"docs/{page}" in readme
