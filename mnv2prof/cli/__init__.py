"""The `mnv2prof` command line: one module per command group, each command thin (parse options,
call one core function, render). `main` is the console entry point (cli.app)."""

from mnv2prof.cli import blocks, gates, sweeps, models, machine  # noqa: F401, I001  (registers, in --help order)
from mnv2prof.cli.app import app, main

__all__ = ["app", "main"]
