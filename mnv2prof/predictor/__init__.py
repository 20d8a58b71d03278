"""Latency without running it: a kernel-level predictor built on the target (issue 32).

After nn-Meter (Zhang et al., MobiSys'21): a network's latency is the sum of its kernels', each
kernel a node of onnxruntime's optimized graph (fusions done), predicted by one regressor per
kernel kind, trained on kernels timed alone on the target. By role:

- kinds.py: what a kernel is (kind, features, MACs); detect.py: the kernels of a model, read off
  onnxruntime's own optimized graph, and one kernel cut out as a graph of its own;
- space.py: the sampling space; graphs.py: its networks, blocks and patterns as ONNX graphs;
- timing.py: kernels timed alone (and whole networks) on the harness `compare` uses;
- sampling.py: samples and the one function that times their kernels (here or on Ray:
  remote.py); fitting.py: regressors per kind, the FLOPs baseline, the scores;
- build.py: `predictor build`; folder.py: the predictor folder; fingerprint.py: its
  environment;
- prediction.py: a model's predicted latency; subject.py: what `predict` is asked about.
"""
