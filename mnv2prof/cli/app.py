"""The typer app, its two consoles, and the one place errors become exit codes (errors.ExitCode).

Commands stay thin (after fastapi-cli): options are `Annotated[..., typer.Option(help=...)]`, the
docstring is the help, and domain errors become one red line on stderr and their exit code, never
a traceback. Signals are deferred for the whole command (interrupts.py): a Ctrl-C or a `kill`
stops the work at the next safe point with exit code 130 and one line.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sys
from collections.abc import Sequence

import typer
from rich.console import Console
from typer.exceptions import TyperException

from mnv2prof import interrupts
from mnv2prof.errors import ExitCode, Mnv2profError, ValueRefused

app = typer.Typer(
    name="mnv2prof",
    help="Indirect (MACs) against direct (latency, memory) cost of MobileNetV2-style blocks.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
PIPED_WIDTH = 100  # the width of the views when the stream is not a terminal and no COLUMNS


def _width(stream) -> int | None:
    """$COLUMNS, else a terminal's own width (None: rich asks the terminal), else `PIPED_WIDTH`:
    piped output looks like the terminal's, not squeezed to 80 or spread to 240."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isascii() and columns.isdigit() and int(columns) > 0:
        return int(columns)
    return None if stream is not None and stream.isatty() else PIPED_WIDTH


_STDOUT = Console(width=_width(sys.stdout))
stdout = _STDOUT
stderr = Console(stderr=True, width=_width(sys.stderr))


def fit_consoles() -> None:
    """Both consoles at the width of their streams now, and the views on stdout again (each
    command starts so: `main` may run several in one process, as the tests do)."""
    global stdout
    stdout = _STDOUT
    for console, stream in ((_STDOUT, sys.stdout), (stderr, sys.stderr)):
        console.width = _width(stream) or Console(file=stream).width


def display_on_stderr() -> None:
    """Send tables and lines to stderr from now on: stdout carries a `--csv -` or `--json -`
    and nothing else, so `mnv2prof compare --csv - | ...` reads data only."""
    global stdout
    stdout = stderr


def say(line: str) -> None:
    """A line of a list for the user on stdout (`NAME  description`), never coloured by
    guesswork: past the console's width it wraps at spaces, continued under the text after its
    last run of two spaces (the description's column), or two spaces in for a line without
    columns. A line whose first column takes more than half the width (a path and what was
    done with it) is left whole, to be copied."""
    import re

    columns = [m.end() for m in re.finditer(r"\S {2,}(?=\S)", line)]
    if columns and columns[0] > stdout.width // 2:
        stdout.print(line, highlight=False, soft_wrap=True, markup=False)
        return
    hang = columns[-1] if columns and columns[-1] <= stdout.width // 2 else 2
    _wrapped(line, " " * hang)


def note(text: str) -> None:
    """A note under a table on stdout, wrapped at spaces to the console's width (the terminal's,
    else $COLUMNS or `PIPED_WIDTH`), each continuation indented two spaces past the line's own
    indent so a note reads as one block."""
    for line in text.splitlines() or [""]:
        _wrapped(line, " " * (len(line) - len(line.lstrip(" "))) + "  ")


def _wrapped(line: str, indent: str) -> None:
    """`line` wrapped at spaces to stdout's width, continuations indented `indent`. Plain text,
    never markup: a line may quote [grid]. A word longer than the width (a path) is left whole,
    to be copied."""
    import textwrap

    from rich.text import Text

    pieces = textwrap.wrap(line, stdout.width, subsequent_indent=indent,
                           break_long_words=False, break_on_hyphens=False) or [""]
    for piece in pieces:
        stdout.print(Text(piece), highlight=False, soft_wrap=True)


def show(items) -> None:
    """Print views (report.views: folded to the console's width), tables (made views first),
    and lines as `note` prints them, in order. A column wider than the console on its own is
    printed whole, its line left to wrap: rich would otherwise cut it ("9,…"), and a cut
    number is no number."""
    from rich.table import Table

    from mnv2prof.report.views import as_view

    for item in items:
        if isinstance(item, str):
            note(item)
            continue
        item = as_view(item) if isinstance(item, Table) else item
        needed = stdout.measure(item).minimum
        width = stdout.width
        stdout.width = max(width, needed)
        try:
            stdout.print(item)
        finally:
            stdout.width = width


def tell(line: str) -> None:
    """One line about the run (what was written, a warning) on stderr; plain text, never markup
    (a path may hold [red] or [/])."""
    stderr.print(line, highlight=False, soft_wrap=True, markup=False, emoji=False)


class Terminal(io.TextIOBase):
    """sys.stdout while a command runs. A reader that went away (`| head -1`, a closed
    terminal) ends the showing, never the command: the files were written first, what could
    not be shown is dropped, and the command exits with its own code (0, or a gate's 1), not
    click's 1 for a broken pipe. Any other write error (a full disk) is raised as it is."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            self._guarded(self.stream.write, text)
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            self._guarded(self.stream.flush)

    def _guarded(self, call, *args) -> None:
        try:
            call(*args)
        except (BrokenPipeError, ValueError):  # no reader, or a stream someone closed
            self._went_away()
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.EBADF):
                raise
            self._went_away()

    def _went_away(self) -> None:
        self.gone = True
        with contextlib.suppress(OSError, ValueError):  # the interpreter's last flush, quiet
            if self.stream.fileno() == 1:
                os.dup2(os.open(os.devnull, os.O_WRONLY), 1)

    def isatty(self) -> bool:
        try:
            return not self.gone and self.stream.isatty()
        except (OSError, ValueError):
            return False

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self.stream, "encoding", "utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: run the app, turn every error into one line and an exit code.

    A signal in the command (interrupts.deferred) makes the outcome 130, whatever the command
    then raised or returned: one received after its last safe point (its output written, a
    `gate` that printed PASS) is acted on once it has returned. stdout is a `Terminal` for the
    command's duration."""
    shown = sys.stdout
    sys.stdout = shown if isinstance(shown, Terminal) else Terminal(shown)
    try:
        return _run(argv)
    finally:
        sys.stdout = shown


def _run(argv: Sequence[str] | None) -> int:
    window = interrupts.Window()
    message: str | None = None
    fit_consoles()
    try:
        with interrupts.deferred() as window:
            code = app(
                args=list(argv) if argv is not None else None,
                prog_name="mnv2prof",
                standalone_mode=False,
            )
            interrupts.check_ended()
        code = code if isinstance(code, int) else ExitCode.OK
    except TyperException as exc:  # click's usage errors (bad flag, 'abc' for an integer...)
        ctx = getattr(exc, "ctx", None)
        code = exc.exit_code
        if type(exc).__name__ == "NoArgsIsHelpError":
            code = ExitCode.USAGE  # typer has already printed the help
        else:
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            message = exc.format_message() + hint
    except ValueRefused as exc:  # a value one rule refused, by its flag
        code, message = exc.exit_code, exc.as_flag()
    except Mnv2profError as exc:
        code, message = exc.exit_code, str(exc)
    except (typer.Abort, KeyboardInterrupt):  # a second signal, or click's own abort
        code = ExitCode.INTERRUPTED
        message = f"interrupted ({window.name})" if window.received else "interrupted"
    except OSError as exc:
        code = _os_error_code(exc)
        if code is None:
            if os.environ.get("MNV2PROF_DEBUG"):
                raise
            code, message = ExitCode.TOOL_FAILURE, _unexpected_message(exc)
        else:
            where = f"{exc.filename}: " if exc.filename else ""
            message = f"{where}{exc.strerror or _one_line(exc)}"
    except (MemoryError, OverflowError) as exc:  # a size the checks let through (--force)
        code = ExitCode.TOOL_FAILURE
        message = f"{type(exc).__name__}: {_one_line(exc) or 'out of memory'}"
    except Exception as exc:  # a failure no check foresaw: one line, not a traceback
        if os.environ.get("MNV2PROF_DEBUG"):
            raise
        code, message = ExitCode.TOOL_FAILURE, _unexpected_message(exc)
    if window.received and code != ExitCode.INTERRUPTED:  # what a library made of the signal
        code, message = ExitCode.INTERRUPTED, f"interrupted ({window.name})"
    if message is not None:
        with interrupts.settling(code):  # a signal from now on cannot add a second line
            error(message)
    return code


def _unexpected_message(exc: BaseException) -> str:
    return (f"unexpected {type(exc).__name__}: {_one_line(exc)} (set MNV2PROF_DEBUG=1 for the "
            "traceback, and please report it)")


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
    stderr.print(f"[red]mnv2prof: error:[/] {escape(line)}", highlight=False, soft_wrap=True,
                 emoji=False)  # ':abc' is no emoji code: --ray head:abc stays as typed
