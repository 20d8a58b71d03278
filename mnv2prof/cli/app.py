"""The typer app, its two consoles, and the one place errors become exit codes (errors.ExitCode).

Commands stay thin (after fastapi-cli): options are `Annotated[..., typer.Option(help=...)]`, the
docstring is the help, and domain errors become one red line on stderr and their exit code, never
a traceback. Signals are deferred for the whole command (interrupts.py): a Ctrl-C or a `kill`
stops the work at the next safe point with exit code 130 and one line.
"""

from __future__ import annotations

import errno
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
PIPED_WIDTH = 100  # the width of the default views (report.views), when stdout is not a terminal


def _width(stream) -> int | None:
    """A terminal's own width; else $COLUMNS, else `PIPED_WIDTH` (the views are made to fit
    it): piped output looks like the terminal's, not squeezed to 80 or spread to 240."""
    if stream.isatty():
        return None
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else PIPED_WIDTH


stdout = Console(width=_width(sys.stdout))
stderr = Console(stderr=True, width=_width(sys.stderr))


def display_on_stderr() -> None:
    """Send tables and lines to stderr from now on: stdout carries a `--csv -` or `--json -`
    and nothing else, so `mnv2prof compare --csv - | ...` reads data only."""
    global stdout
    stdout = stderr


def say(line: str) -> None:
    """One line for the user on stdout, never wrapped mid-word or coloured by guesswork."""
    stdout.print(line, highlight=False, soft_wrap=True)


def show(items) -> None:
    """Print tables, and lines as `say` prints them, in order. A table wider than the terminal
    (a `--show` view with many groups) is printed at its own width, its lines left to wrap: rich
    would otherwise shrink its columns and cut cells ("9,…"), and a cut number is no number."""
    from rich.table import Table

    for item in items:
        if isinstance(item, str):
            say(item)
        elif isinstance(item, Table):
            needed = stdout.measure(item, options=stdout.options.update_width(10_000)).maximum
            width = stdout.width
            stdout.width = max(width, needed)
            try:
                stdout.print(item)
            finally:
                stdout.width = width
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
    except OSError as exc:
        if (code := _os_error_code(exc)) is None:
            return _unexpected(exc)
        where = f"{exc.filename}: " if exc.filename else ""
        error(f"{where}{exc.strerror or _one_line(exc)}")
        return code
    except (MemoryError, OverflowError) as exc:  # a size the checks let through (--force)
        error(f"{type(exc).__name__}: {_one_line(exc) or 'out of memory'}")
        return ExitCode.TOOL_FAILURE
    except Exception as exc:  # a failure no check foresaw: one line, not a traceback
        return _unexpected(exc)
    return code if isinstance(code, int) else ExitCode.OK


def _unexpected(exc: Exception) -> int:
    if os.environ.get("MNV2PROF_DEBUG"):
        raise exc
    error(f"unexpected {type(exc).__name__}: {_one_line(exc)} (set MNV2PROF_DEBUG=1 for the "
          "traceback, and please report it)")
    return ExitCode.TOOL_FAILURE


# OSErrors no check caught that still say what is wrong: a user's path (a name too long, a link
# loop) is bad input; a full disk or quota is the machine's, and no bug to report
_PATH_ERRNOS = (errno.ENAMETOOLONG, errno.ELOOP)
_MACHINE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def _os_error_code(exc: OSError) -> int | None:
    if exc.errno in _PATH_ERRNOS:
        return ExitCode.USAGE
    if exc.errno in _MACHINE_ERRNOS:
        return ExitCode.TOOL_FAILURE
    return None


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else ""


def error(message: str) -> None:
    """One line on stderr: a message of several lines (a library's, passed through) is cut to
    its first."""
    from rich.markup import escape  # messages quote TOML tables such as [grid]: not markup

    line = next((ln.strip() for ln in str(message).splitlines() if ln.strip()), "")
    stderr.print(f"[red]mnv2prof: error:[/] {escape(line)}", highlight=False, soft_wrap=True)
