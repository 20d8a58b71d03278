"""Direct cost measured on this machine: the latency harness, statistics, eager torch, the GPU,
per-layer time, the roofline."""
