"""Per-layer view of the torch module run eagerly: `layers --device cuda`.

onnxruntime's per-node view (layers.py) answers "where does the CPU time go"; on a GPU the block
runs as torch launches it, one kernel (or a few) per op, so the rows here are the block's named
layers (`conv_pw`, `conv_dw`, `conv_pwl`; a ModuleList's elements as `conv_pw.0`, ...) plus one
row for the ops between them (the residual `add`, ShuffleNet's `chunk+cat+...`), named after
those ops. Each row has two times, from two separate passes over `runs` calls each:

- `kernel_ms`: what the layer's kernels ran on the device, summed (torch's profiler, kineto /
  CUPTI): the cost of the work with launch overhead removed, the per-layer analogue of the
  CUDA-graph column of `compare --device cuda`. `kernels` counts them per call.
- `span_ms`: from the moment the layer's first op was issued to its last op's end, on the
  device's own clock (CUDA events recorded by forward hooks, nothing synchronised in between):
  the kernels plus the gaps in which the GPU waited for Python to launch the next one. At
  batch 1 a block is launch-bound and `span_ms` is several times `kernel_ms`. The between-layers
  row's span is the whole call's span minus the layers' spans.

The profiler pass adds host-side overhead, which would widen the gaps, so spans are measured in
their own pass without it. Each figure is the median over the calls after `warmup` calls. On the
CPU the same code runs with the host clock for spans and the ops' CPU time for `kernel_ms` (leaf
ops counted as `kernels`); that is how it is tested where no GPU is.

Costs come from the exported ONNX graph, grouped by the exporter's name scopes
(`layers.layer_name`): a layer's MACs are its nodes' MACs, its bytes the tensors crossing its
boundary; every node outside the named layers belongs to the between-layers row, so the rows'
MACs add up to the block's.

onnxruntime's CUDA provider has no row of its own: in its release builds the profiler times each
node's host-side launch, not the kernel (kernel profiling is a build option,
`--enable_cuda_profiling`, microsoft/onnxruntime#9875).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

from mnv2prof.count.counting import count_graph
from mnv2prof.models.inputs import example_input
from mnv2prof.quiet import quiet_stderr
from mnv2prof.measure.layers import boundary_bytes, layer_name
from mnv2prof.onnx.graph import load_graph, load_model

_RUN = "mnv2prof::run"
_LAYER = "mnv2prof::layer::"


@dataclass(frozen=True)
class EagerLayerRow:
    layer: str  # the block attribute (`conv_dw`, `conv_pw.0`), or the ops between layers (`add`)
    macs: int
    bytes_moved: int  # tensors crossing the layer's boundary in the exported graph
    kernels: int  # kernels launched per call (CPU: leaf ops run)
    kernel_ms: float  # device time of those kernels, summed; median over the profiled calls
    span_ms: float  # first launch to last end, launch gaps included; median over the timed calls

    def row(self, total_kernel_ms: float, total_macs: int) -> dict[str, object]:
        return {
            "layer": self.layer,
            "macs": self.macs,
            "bytes_moved": self.bytes_moved,
            "arith_intensity_flop_per_byte": round(
                2 * self.macs / self.bytes_moved if self.bytes_moved else 0.0, 4
            ),
            "kernels": self.kernels,
            "kernel_ms": round(self.kernel_ms, 6),
            "span_ms": round(self.span_ms, 6),
            "launch_gap_ms": round(max(self.span_ms - self.kernel_ms, 0.0), 6),
            "time_share_frac": round(
                self.kernel_ms / total_kernel_ms if total_kernel_ms else 0.0, 6
            ),
            "macs_share_frac": round(self.macs / total_macs if total_macs else 0.0, 6),
        }


def named_layers(module: nn.Module) -> dict[str, nn.Module]:
    """The block's layers in attribute order: its direct children, a ModuleList's elements one by
    one (`conv_pw.0`: the list itself is never called), `nn.Identity` placeholders left out."""
    found: dict[str, nn.Module] = {}
    for name, child in module.named_children():
        items = child.named_children() if isinstance(child, nn.ModuleList) else [("", child)]
        for index, item in items:
            if not isinstance(item, nn.Identity):
                found[f"{name}.{index}" if index else name] = item
    return found


@contextlib.contextmanager
def _hooks(layers: dict[str, nn.Module], on_enter, on_exit) -> Iterator[None]:
    """Call `on_enter(name)` before and `on_exit(name)` after each layer's forward."""
    handles = []
    for name, layer in layers.items():
        handles.append(layer.register_forward_pre_hook(lambda m, a, name=name: on_enter(name)))
        handles.append(layer.register_forward_hook(lambda m, a, o, name=name: on_exit(name)))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class _Clock:
    """Marks on the device's own timeline: CUDA events on a GPU, the host clock on the CPU."""

    def __init__(self, device: str) -> None:
        self.cuda = device == "cuda"

    def mark(self) -> object:
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def elapsed_ms(self, start: object, end: object) -> float:
        if self.cuda:
            return start.elapsed_time(end)
        return (end - start) * 1000.0


def _spans(
    call: Callable[[], object], layers: dict[str, nn.Module], clock: _Clock, runs: int, warmup: int
) -> list[dict[str, float]]:
    """Per timed call: layer -> span (ms), and "" -> the whole call's span."""
    marks: dict[str, list[object]] = {}
    with _hooks(
        layers,
        lambda name: marks.__setitem__(name, [clock.mark()]),
        lambda name: marks[name].append(clock.mark()),
    ):
        for _ in range(warmup):
            call()
        clock.sync()
        spans = []
        for _ in range(runs):
            marks.clear()
            start = clock.mark()
            call()
            end = clock.mark()
            clock.sync()
            spans.append(
                {"": clock.elapsed_ms(start, end)}
                | {name: clock.elapsed_ms(*pair) for name, pair in marks.items()}
            )
    return spans


def _profiled(
    call: Callable[[], object], layers: dict[str, nn.Module], device: str, runs: int, warmup: int
) -> list[list[tuple[str, float, int]]]:
    """Per profiled call: (row name, kernel ms, kernels) for each top-level event, in order."""
    ranges: list[record_function] = []

    def enter(name: str) -> None:
        ranges.append(record_function(_LAYER + name))
        ranges[-1].__enter__()

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with _hooks(layers, enter, lambda name: ranges.pop().__exit__(None, None, None)):
        for _ in range(warmup):
            call()
        if device == "cuda":
            torch.cuda.synchronize()
        with quiet_stderr(), profile(activities=activities) as prof:
            for _ in range(runs):
                with record_function(_RUN):
                    call()
            if device == "cuda":
                torch.cuda.synchronize()
    on_host = torch.autograd.DeviceType.CPU  # a GPU trace repeats each range on the device
    calls = sorted(
        (e for e in prof.events() if e.name == _RUN and e.device_type == on_host),
        key=lambda e: e.time_range.start,
    )
    return [
        [(_row_name(e), _device_ms(e, device), _kernel_count(e, device)) for e in c.cpu_children]
        for c in calls
    ]


def _row_name(event) -> str:
    """A layer's range names its layer; any other top-level op is named without `aten::`."""
    if event.name.startswith(_LAYER):
        return event.name.removeprefix(_LAYER)
    return event.name.split("::")[-1]


def _device_ms(event, device: str) -> float:
    # device_time_total sums the kernels every op below the event launched (kineto correlation)
    return (event.device_time_total if device == "cuda" else event.cpu_time_total) / 1000.0


def _kernel_count(event, device: str) -> int:
    if device == "cuda":
        return len(event.kernels) + sum(_kernel_count(c, device) for c in event.cpu_children)
    if not event.cpu_children:
        return 1
    return sum(_kernel_count(c, device) for c in event.cpu_children)


def _costs(model_path: Path, layers: dict[str, nn.Module]) -> dict[str, tuple[int, int]]:
    """Layer -> (MACs, boundary bytes) from the exported graph; "" gathers every other node."""
    graph = load_graph(load_model(model_path))
    macs = {c.name: c.macs for c in count_graph(graph).nodes}
    members: dict[str, list[str]] = defaultdict(list)
    for node in graph.nodes:
        if node.name in macs:
            name = layer_name(node)
            members[name if name in layers else ""].append(node.name)
    return {
        name: (sum(macs[m] for m in names), boundary_bytes(graph, names))
        for name, names in members.items()
    }


def time_eager_layers(
    module: nn.Module,
    model_path: Path,
    input_shape: tuple[int, ...],
    device: str = "cpu",
    runs: int = 50,
    warmup: int = 10,
    seed: int = 0,
) -> list[EagerLayerRow]:
    """One row per named layer of `module` (in the order they ran) and one for the ops between
    them, with the costs of `model_path` (the module's export). `device`: "cpu" or "cuda"."""
    module = module.eval().to(device)
    x = example_input(input_shape, seed).to(device)
    layers = named_layers(module)

    def call() -> object:
        with torch.inference_mode():
            return module(x)

    spans = _spans(call, layers, _Clock(device), runs, warmup)
    profiled = _profiled(call, layers, device, runs, warmup)
    costs = _costs(model_path, layers)

    def row_of(name: str) -> str:  # "" is the row of the ops between layers
        return name if name in layers else ""

    def per_call(row: str, field: int) -> list[float]:  # field 1: kernel ms, 2: kernels
        return [sum(e[field] for e in c if row_of(e[0]) == row) for c in profiled]

    # rows in the order they first ran; the ops between layers take their first op's place
    ran = list(dict.fromkeys(name for c in profiled for name, _, _ in c))
    between = [name for name in ran if name not in layers]
    rows = []
    for name in dict.fromkeys(map(row_of, ran)):
        if name:
            spans_ms = [s[name] for s in spans]
        else:  # the whole call's span less the layers' spans
            spans_ms = [max(s[""] - sum(v for k, v in s.items() if k), 0.0) for s in spans]
        macs, moved = costs.get(name, (0, 0))
        rows.append(
            EagerLayerRow(
                layer=name or "+".join(between),
                macs=macs,
                bytes_moved=moved,
                kernels=int(statistics.median(per_call(name, 2))),
                kernel_ms=statistics.median(per_call(name, 1)),
                span_ms=statistics.median(spans_ms),
            )
        )
    if "" in costs and not between:  # nodes outside the layers, yet no op ran between them
        macs, moved = costs[""]
        rows.append(EagerLayerRow("(outside layers)", macs, moved, 0, 0.0, 0.0))
    return rows
