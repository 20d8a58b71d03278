"""Specs and the torch modules they describe: block variants, whole networks, probes."""
