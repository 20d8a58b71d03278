"""Every artefact a row runs is built here, checked and cached: the fp32 ONNX export (export.py,
from a source: sources.py), its int8 quantization (quantize.py) and the ExecuTorch program
(lowering.py). Runners (measure/) only run them."""
