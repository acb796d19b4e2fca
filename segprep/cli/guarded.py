"""The click group both CLIs use: no Python traceback reaches a user unless they ask for it.

One error contract for segprep and segtrain, told by the exit status:

  1  a problem with the user's data or environment: a SegprepError (segtrain's SegtrainError is
     one), an OSError (it names its path and reason), MemoryError, or one of TensorFlow's errors
     about data, files or resources. One `error:` line (or one per bad file and a summary).
  2  a usage error: click's UsageError / BadParameter (click prints the usage line).
  3  an internal error: anything else can only be a bug in the tool. It is one line,
     `error: internal error: TYPE: message (this is a bug in TOOL; re-run with --debug ...)`.
130  interrupted (Ctrl-C).

`--debug` (or SEGPREP_DEBUG=1) lets every exception through with its traceback. Which errors are
expected is decided by class (isinstance), never by the module a class was defined in.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

DEBUG_ENV = "SEGPREP_DEBUG"
EXIT_DATA_ERROR = 1
EXIT_USAGE_ERROR = 2  # click's own exit status for UsageError / BadParameter
EXIT_INTERNAL_ERROR = 3
EXIT_INTERRUPTED = 130

# TensorFlow's errors (tf.errors.OpError subclasses) that come from the user's data, files or
# machine rather than from a bug: a corrupt or missing record or checkpoint, a full GPU.
TF_EXPECTED_ERRORS = (
    "DataLossError",
    "InvalidArgumentError",
    "NotFoundError",
    "FailedPreconditionError",
    "ResourceExhaustedError",
    "PermissionDeniedError",
    "OutOfRangeError",
)


def debug_requested(ctx: click.Context | None = None) -> bool:
    """True with --debug on the group or SEGPREP_DEBUG set to anything but '', '0' or 'false'."""
    if ctx is not None and ctx.find_root().meta.get("segprep.debug"):
        return True
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def one_line(text: str) -> str:
    """Collapse a multi-line message (TensorFlow's, YAML's) to its lines joined by ' | '."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return " | ".join(lines)


def _tensorflow_expected(exc: BaseException) -> bool:
    """True for an instance of one of TF_EXPECTED_ERRORS; TensorFlow is never imported for this."""
    tf = sys.modules.get("tensorflow")
    errors = getattr(tf, "errors", None) if tf is not None else None
    if errors is None:
        return False  # TensorFlow not imported: no TensorFlow error can have been raised
    classes = tuple(c for c in (getattr(errors, name, None) for name in TF_EXPECTED_ERRORS) if isinstance(c, type))
    return bool(classes) and isinstance(exc, classes)


def describe_exception(exc: BaseException, tool: str = "segprep/segtrain") -> tuple[str, bool]:
    """(one-line message, expected); expected is False for what can only be a bug in `tool`."""
    from segprep.errors import SegprepError, describe_os_error

    if isinstance(exc, OSError):
        return describe_os_error(exc), True
    if isinstance(exc, SegprepError):
        return one_line(str(exc)), True
    if _tensorflow_expected(exc):
        message = getattr(exc, "message", None) or str(exc)
        return f"TensorFlow: {one_line(message)}", True
    if isinstance(exc, MemoryError):
        return "out of memory", True
    detail = one_line(str(exc))
    return (
        f"internal error: {type(exc).__name__}{': ' + detail if detail else ''}"
        f" (this is a bug in {tool}; re-run with --debug for the traceback)"
    ), False


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

    @property
    def tool_name(self) -> str:
        """'segprep' or 'segtrain': the package whose group this is (for the internal-error line)."""
        module = getattr(self.callback, "__module__", None) or ""
        return module.split(".", 1)[0] or "segprep/segtrain"

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
            message, expected = describe_exception(exc, self.tool_name)
            click.echo(f"error: {message}", err=True)
            sys.exit(EXIT_DATA_ERROR if expected else EXIT_INTERNAL_ERROR)


def _remember_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_root().meta["segprep.debug"] = True
