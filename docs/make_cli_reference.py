"""Write docs/cli.md, the command-line reference, from the click commands themselves.

    python docs/make_cli_reference.py            # rewrite docs/cli.md
    python docs/make_cli_reference.py --check    # exit 1 when docs/cli.md is stale (tests/test_docs.py does the same)

Every command's --help, rendered at a fixed width so that the page does not depend on the terminal.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

WIDTH = 110
PAGE = Path(__file__).resolve().parent / "cli.md"


def _sections(group: click.Group, name: str) -> list[str]:
    # The group's own context settings (its help option names) as a command line gets them; the width fixed.
    settings = {key: value for key, value in group.context_settings.items() if key not in ("terminal_width", "max_content_width")}
    root = click.Context(group, info_name=name, terminal_width=WIDTH, max_content_width=WIDTH, **settings)
    parts = [f"## `{name}`\n\n```\n{group.get_help(root)}\n```\n"]
    for command_name in group.list_commands(root):
        command = group.get_command(root, command_name)
        if command is None or command.hidden:
            continue
        context = click.Context(command, info_name=command_name, parent=root, terminal_width=WIDTH, max_content_width=WIDTH)
        parts.append(f"### `{name} {command_name}`\n\n```\n{command.get_help(context)}\n```\n")
    return parts


def render() -> str:
    """The whole page."""
    from segprep.cli.main import main as segprep_main
    from segtrain.cli import main as segtrain_main

    header = (
        "# Command-line reference\n\n"
        "Generated from the commands' own `--help` by `python docs/make_cli_reference.py`; `tests/test_docs.py` fails\n"
        "when this page and the commands disagree. Exit codes: 0 success, 1 a problem with the data or the environment\n"
        "(one `error:` line per bad file, then a summary), 2 a usage error.\n"
    )
    return "\n".join([header, *_sections(segprep_main, "segprep"), *_sections(segtrain_main, "segtrain")])


def main() -> None:
    text = render()
    if "--check" in sys.argv[1:]:
        if not PAGE.is_file() or PAGE.read_text(encoding="utf-8") != text:
            print(f"{PAGE} is stale: run python docs/make_cli_reference.py", file=sys.stderr)
            sys.exit(1)
        return
    PAGE.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
