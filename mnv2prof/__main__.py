"""`python -m mnv2prof` and the `mnv2prof` script (pyproject.toml) run `entry()`.

Its first statement installs the signal handlers (interrupts.install), before typer, rich and the
command groups are imported, so a Ctrl-C or a `kill` at any moment from here to the exit ends
with exit code 130 and one line on stderr.
"""

from mnv2prof import interrupts


def entry() -> None:
    interrupts.install()
    from mnv2prof.cli import main

    interrupts.exit(main())


if __name__ == "__main__":
    entry()
