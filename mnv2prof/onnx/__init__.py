"""An exported ONNX file read back: its graph with every tensor's shape and size (graph.py), its
inputs' dims (inputs.py), and its nodes grouped by the torch module that made them (scopes.py).
The export itself is artifacts/export.py; atomic writes are files/atomic.py."""
