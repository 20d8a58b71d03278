"""What each command computes, as data: the command line renders it (cli/), the Python API
returns its frame (api.py). Each takes a checked `run.plan.Plan` (or the values of one) and
optional progress hooks (run.pipeline.Progress); none prints, exits or reads a flag."""
