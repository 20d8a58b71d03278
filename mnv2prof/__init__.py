"""mnv2prof: indirect (MACs) against direct (latency, memory) cost of MobileNetV2-style blocks."""

__version__ = "0.1.0"
