"""Direct cost measured on this machine: latency harness, statistics, eager, GPU, layers, roofline."""
