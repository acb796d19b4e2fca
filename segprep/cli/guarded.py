"""The click group both CLIs use: no Python traceback reaches a user unless they ask for it.

Problems with data or the environment arrive here as SegprepError, OSError or one of the
project's ValueError subclasses; each becomes one `error:` line (an OS error names its path and
reason) and exit status 1. Anything else is a bug in this tool: it is reported the same way,
marked as an internal error, with a hint to re-run with --debug. `--debug` (or SEGPREP_DEBUG=1)
lets every exception through with its traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

DEBUG_ENV = "SEGPREP_DEBUG"
EXIT_DATA_ERROR = 1
EXIT_INTERRUPTED = 130


def debug_requested(ctx: click.Context | None = None) -> bool:
    """True with --debug on the group or SEGPREP_DEBUG set to anything but '', '0' or 'false'."""
    if ctx is not None and ctx.find_root().meta.get("segprep.debug"):
        return True
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def one_line(text: str) -> str:
    """Collapse a multi-line message (TensorFlow's, YAML's) to its lines joined by ' | '."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return " | ".join(lines)


def describe_exception(exc: BaseException) -> tuple[str, bool]:
    """(one-line message, expected); expected is False for what can only be a bug in this tool."""
    from segprep.errors import SegprepError, describe_os_error

    if isinstance(exc, OSError):
        return describe_os_error(exc), True
    if isinstance(exc, SegprepError):
        return one_line(str(exc)), True
    module = type(exc).__module__ or ""
    if module.startswith(("segprep", "segtrain")) and isinstance(exc, ValueError):
        return one_line(str(exc)), True  # the project's own ValueError-based errors
    if module.startswith("tensorflow") and type(exc).__name__ in (
        "DataLossError",
        "InvalidArgumentError",
        "NotFoundError",
        "FailedPreconditionError",
        "ResourceExhaustedError",
        "PermissionDeniedError",
        "OutOfRangeError",
    ):
        message = getattr(exc, "message", None) or str(exc)
        return f"TensorFlow: {one_line(message)}", True
    if isinstance(exc, MemoryError):
        return "out of memory", True
    detail = one_line(str(exc))
    return f"internal error: {type(exc).__name__}{': ' + detail if detail else ''} (re-run with --debug for the traceback)", False


class GuardedGroup(click.Group):
    """A click.Group with a `--debug` flag whose commands never end in a traceback unless asked."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.append(
            click.Option(
                ["--debug"],
                is_flag=True,
                expose_value=False,
                is_eager=True,
                callback=_remember_debug,
                help=f"Show Python tracebacks (also {DEBUG_ENV}=1).",
            )
        )

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            if debug_requested(ctx):
                raise
            click.echo("error: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:
            # The reader of our output went away (`| head`): nothing left to tell anybody.
            sys.stderr.close()
            sys.exit(EXIT_DATA_ERROR)
        except Exception as exc:  # noqa: BLE001 - the point of this layer
            if debug_requested(ctx):
                raise
            message, _expected = describe_exception(exc)
            click.echo(f"error: {message}", err=True)
            sys.exit(EXIT_DATA_ERROR)


def _remember_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_root().meta["segprep.debug"] = True
