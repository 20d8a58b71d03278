"""The `mnv2prof` command line: one module per command group, each command thin (parse options,
call one core function, render). `main` is the console entry point (cli.app)."""

# importing a group registers its commands, in the order --help lists them
from mnv2prof.cli import blocks, gates, sweeps, models, machine  # noqa: F401, I001
from mnv2prof.cli import predictor  # noqa: F401
from mnv2prof.cli.app import app, main

__all__ = ["app", "main"]
