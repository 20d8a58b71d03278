"""The one cached ONNX export, the graph read back from it, and atomic file writes."""
