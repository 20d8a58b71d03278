"""The torch module itself, run eagerly: its latency beside onnxruntime's, and its measured memory.

Timing hygiene (torch.utils.benchmark `Timer`): torch's intra-op threads are pinned to the same
count as onnxruntime's for the duration of the timing (`torch_threads`, restored afterwards, so a
caller's setting survives), the module runs under `torch.inference_mode` (no autograd
bookkeeping), and the input is made once, before timing.

Measured memory comes from torch's profiler allocator events (`profile_memory=True`) during one
forward pass, after a warm-up pass so lazy one-time allocations (oneDNN primitive caches) are not
counted. It is measured on `inference_graph(module)`: BN folded into the conv as the ONNX export
does, and traced by torch.fx, whose generated forward drops every intermediate after its last
use, the liveness rule of memory.py. (On the module as written, Python frames keep each
sub-module's input alive until it returns and BN writes one more tensor: for mbv2 that is 46%
more, a cost of eager execution, not of the block.) Two peaks are read from the same events:
- `peak_bytes`: live bytes at the end of every top-level op, the input included. This is what the
  static liveness walk models (a node's inputs and outputs alive while it runs), measured.
- `alloc_peak_bytes`: the highest live byte count at any allocation, so also the scratch a kernel
  allocates and frees inside one op (oneDNN copies a conv's input into its blocked layout).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from mnv2prof.models.inputs import example_input
from mnv2prof.quiet import quiet_stderr


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Pin torch's intra-op threads to `threads`, restoring the previous count on exit."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class EagerRunner:
    """Calling it runs `module` once on a pre-made input, without autograd."""

    def __init__(self, module: nn.Module, input_shape: tuple[int, ...], seed: int = 0) -> None:
        self.module = module.eval()
        self.input = example_input(input_shape, seed)

    def __call__(self) -> None:
        with torch.inference_mode():
            self.module(self.input)


def inference_graph(module: nn.Module) -> nn.Module:
    """`module` with BN folded and intermediates freed at last use (torch.fx); a module fx cannot
    trace is returned as it is."""
    from torch.fx.experimental.optimization import fuse

    try:
        return fuse(module.eval())
    except Exception:  # fx raises many types for untraceable control flow; all mean "as it is"
        return module.eval()


@dataclass(frozen=True)
class MeasuredMemory:
    peak_bytes: int  # live bytes at op boundaries, input included
    alloc_peak_bytes: int  # live bytes at any allocation: kernel scratch included


def measure_memory(module: nn.Module, input_shape: tuple[int, ...], seed: int = 0) -> MeasuredMemory:
    """Peak memory of one eager forward pass, from the allocator's events."""
    return measure_memories([(module, input_shape)], seed)[0]


def measure_memories(
    blocks: Sequence[tuple[nn.Module, tuple[int, ...]]], seed: int = 0
) -> list[MeasuredMemory]:
    """`measure_memory` of each (module, input shape), all under one profiler session.

    Starting the profiler costs ~0.2 s, so the blocks share one session; each forward runs inside
    its own `record_function` marker and owns the allocations and ops inside that window. The
    session is autograd.profiler's, the one under torch.profiler's: the same kineto events, but
    torch.profiler's start asks `hasattr(torch, "_inductor")`, which imports torch._inductor and
    torch._dynamo (1.8 s) for a CUDA-graph setting a CPU trace never reads.
    """
    from torch.autograd.profiler import profile, record_function

    inputs = [example_input(shape, seed) for _, shape in blocks]
    markers = [f"mnv2prof.measure_memory.{i}" for i in range(len(blocks))]
    with torch.inference_mode():
        for (module, _), x in zip(blocks, inputs, strict=True):
            module.eval()(x)  # warm-up: one-time allocations are not the block's memory
        with quiet_stderr(), profile(use_cpu=True, profile_memory=True) as p:
            for (module, _), x, marker in zip(blocks, inputs, markers, strict=True):
                with record_function(marker):
                    module(x)
    events = p.kineto_results.events()
    windows = {e.name(): (e.start_ns(), e.end_ns()) for e in events if e.name() in markers}
    allocations = sorted(
        ((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]"), key=lambda a: a[0]
    )
    ops = sorted(
        (e.start_ns(), e.end_ns())
        for e in events
        if e.name() != "[memory]" and e.name() not in windows
    )
    measured = []
    for marker, x in zip(markers, inputs, strict=True):
        start, end = windows[marker]
        inside = [a for a in allocations if start <= a[0] <= end]
        block_ops = [o for o in ops if start <= o[0] <= end]
        measured.append(
            MeasuredMemory(
                peak_bytes=x.nbytes + _peak_at(inside, _top_level_ends(block_ops)),
                alloc_peak_bytes=x.nbytes + _peak_at(inside, [t for t, _ in inside]),
            )
        )
    return measured


def _top_level_ends(ops: list[tuple[int, int]]) -> list[int]:
    """End times of the ops not nested in another (sorted by start)."""
    ends, current_end = [], -1
    for start, end in ops:
        if start >= current_end:
            ends.append(end)
            current_end = end
    return ends


def _peak_at(allocations: list[tuple[int, int]], times: list[int]) -> int:
    """The largest running sum of allocation sizes (frees negative) seen at any of `times`."""
    peak, live, i = 0, 0, 0
    for t in sorted(times):
        while i < len(allocations) and allocations[i][0] <= t:
            live += allocations[i][1]
            i += 1
        peak = max(peak, live)
    return peak
