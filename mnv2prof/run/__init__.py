"""Measurement plans carried out: the pipeline every command measures through, sweeps,
profiles, foreign models, whole networks, the guidelines."""
