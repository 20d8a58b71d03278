"""Indirect cost counted from a graph: MACs, bytes moved, parameters, peak memory."""
