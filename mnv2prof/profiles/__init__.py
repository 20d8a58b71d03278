"""Profiles: measurement plans in TOML. The grid they describe (grid.py), read and checked with
the project's one rules (reader.py), and the shipped ones found and loaded (shipped.py)."""
