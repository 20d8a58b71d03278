"""The typer app, its two consoles, and the one place errors become exit codes (errors.ExitCode).

Commands stay thin (after fastapi-cli): options are `Annotated[..., typer.Option(help=...)]`, the
docstring is the help, and domain errors become one red line on stderr and their exit code, never
a traceback. Signals are deferred for the whole command (interrupts.py): a Ctrl-C or a `kill`
stops the work at the next safe point with exit code 130 and one line.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import typer
from rich.console import Console
from typer.exceptions import TyperException

from mnv2prof import interrupts
from mnv2prof.errors import ExitCode, Mnv2profError

app = typer.Typer(
    name="mnv2prof",
    help="Indirect (MACs) against direct (latency, memory) cost of MobileNetV2-style blocks.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
# Wide tables must not be squeezed to 80 columns when stdout is a file or a CI log.
stdout = Console(width=None if sys.stdout.isatty() else 240)
stderr = Console(stderr=True)


def say(line: str) -> None:
    """One line for the user on stdout, never wrapped mid-word or coloured by guesswork."""
    stdout.print(line, highlight=False, soft_wrap=True)


def show(items) -> None:
    """Print tables, and lines as `say` prints them, in order."""
    for item in items:
        if isinstance(item, str):
            say(item)
        else:
            stdout.print(item)


def tell(line: str) -> None:
    """One line about the run (what was written, a warning) on stderr."""
    stderr.print(line, highlight=False, soft_wrap=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: run the app, turn every error into one line and an exit code."""
    try:
        with interrupts.deferred():
            code = app(
                args=list(argv) if argv is not None else None,
                prog_name="mnv2prof",
                standalone_mode=False,
            )
    except TyperException as exc:  # click's usage errors (bad flag, 'abc' for an integer...)
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":
            return ExitCode.USAGE  # typer has already printed the help
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        error(exc.format_message() + hint)
        return exc.exit_code
    except Mnv2profError as exc:
        error(str(exc))
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):  # a second signal, or click's own abort
        error("interrupted")
        return ExitCode.INTERRUPTED
    except (MemoryError, OverflowError) as exc:  # a size the checks let through (--force)
        error(f"{type(exc).__name__}: {_one_line(exc) or 'out of memory'}")
        return ExitCode.TOOL_FAILURE
    except Exception as exc:  # a failure no check foresaw: one line, not a traceback
        if os.environ.get("MNV2PROF_DEBUG"):
            raise
        error(f"unexpected {type(exc).__name__}: {_one_line(exc)} (set MNV2PROF_DEBUG=1 for the "
              "traceback, and please report it)")
        return ExitCode.TOOL_FAILURE
    return code if isinstance(code, int) else ExitCode.OK


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else ""


def error(message: str) -> None:
    from rich.markup import escape  # messages quote TOML tables such as [grid]: not markup

    stderr.print(f"[red]mnv2prof: error:[/] {escape(message)}", highlight=False, soft_wrap=True)
