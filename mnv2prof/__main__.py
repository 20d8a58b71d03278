"""`python -m mnv2prof` and the `mnv2prof` script (pyproject.toml) run `entry()`.

Its first statement installs the signal handlers (interrupts.install), before typer, rich and the
command groups are imported, so a Ctrl-C or a `kill` at any moment from here to the exit ends
with exit code 130 and one line on stderr.
"""

from mnv2prof import interrupts


def entry() -> None:
    interrupts.install()
    _closed_streams_to_devnull()
    from mnv2prof.cli import main

    interrupts.exit(main())


def _closed_streams_to_devnull() -> None:
    """A stream the shell closed (`>&-`, `2>&-`) is None in Python: write it to the null device,
    so the command runs and exits with its own code (2 for a bad flag, not 1 for a crash)."""
    import os
    import sys

    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115


if __name__ == "__main__":
    entry()
