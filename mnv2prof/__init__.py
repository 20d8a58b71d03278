"""mnv2prof: indirect (MACs) against direct (latency, memory) cost of MobileNetV2-style blocks.

The Python API (mnv2prof/api.py, docs/python.md): `mnv2prof.compare(...)`, `profile`,
`network`, `baseline`, `gate` and `sweep` take the command line's words and return pandas
DataFrames with the CSV's columns; they are imported on first use, so `import mnv2prof` stays
light.
"""

__version__ = "0.1.0"
__all__ = ["baseline", "compare", "gate", "network", "predict", "profile", "sweep"]


def __getattr__(name: str):
    if name in __all__:
        from mnv2prof import api

        return getattr(api, name)
    raise AttributeError(f"module 'mnv2prof' has no attribute {name!r}")
