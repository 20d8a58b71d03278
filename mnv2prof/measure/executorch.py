"""ExecuTorch beside onnxruntime: a runner that times a lowered `.pte` (artifacts/lowering.py
builds it) like `latency.OrtRunner`.

**Running** (`EtRunner`): the runtime alone, `executorch.extension.pybindings._C`, imports in
5 ms once torch is loaded, where `executorch.runtime` (and `portable_lib`, which it imports)
takes 5-6 s because it pulls in `executorch.exir` and torchao; the runner uses `_C` directly
(an experimental, underscored API of ExecuTorch 1.5: pinned in the `mobile` extra). It loads
the program with `Verification.InternalConsistency`, sets the input once (`set_inputs`: copied
into the method's planned input buffer) and each call is one `ExecuTorchMethod.execute()`: no
Python tensor is made or returned per call, the outputs stay in the method's planned memory
(`outputs()` copies them out). Per-call overhead, a one-element `x + 1` program, median of
bursts: 3.9 us for `execute()`, against 3.6 us for onnxruntime's pre-bound call
(`artifacts.identity.identity_model`) and 8.3 us for `method((x,))`, which copies the input in and clones
the output out each call.

**Threads.** XNNPACK runs every delegated kernel on ExecuTorch's one process-wide threadpool.
It is created on first use with one thread per processor as cpuinfo counts them (logical
processors; on the 2-core, 1-thread-per-core development machine: 2), whatever the process's
CPU affinity: under `taskset -c 0` it still has 2 threads, where torch's default follows the
affinity (1). The only
way to size it is `_C._unsafe_reset_threadpool(n)`, which destroys the pool and makes a new one;
a method loaded before a reset keeps a pointer to the old pool and aborts the process (a futex
error, no exception) the next time it runs. So `EtRunner` pins the pool to its `threads` before
it loads its method (`_Threadpool.pin`), and refuses (`UsageError`) a thread count other than
the pool's while any runner loaded under the current count is alive: one thread count per
process at a time; a new count is possible once every earlier runner is gone. `lower_cached`'s
checks run on whatever pool there is and drop their method at once, so they never block a
later pin.

**int8 is not faster everywhere.** Back to back at 1 thread on the development machine
(AMD EPYC, AVX2 without VNNI), mbv2 C=32 56x56 t=6, median of 9 bursts of 100 calls: ExecuTorch
fp32 1.23 ms, int8 1.67 ms (1.35x slower: XNNPACK's int8 kernels lose to its fp32 ones without
VNNI); onnxruntime fp32 1.35 ms, int8 (QDQ, fused to QLinearConv) 0.94 ms (0.70x). Every node of
both graphs is delegated to XNNPACK: the difference is the kernels, not a fallback.
"""

from __future__ import annotations

import weakref
from pathlib import Path

import torch

from mnv2prof.artifacts.lowering import load_method, runtime
from mnv2prof.errors import ModelFileError, UsageError, first_line
from mnv2prof.models.inputs import example_input
from mnv2prof.quiet import quiet_stderr


# --- the threadpool ----------------------------------------------------------------------------


class _Threadpool:
    """The process-wide XNNPACK threadpool and the runners whose methods hold it."""

    def __init__(self) -> None:
        self.runners: weakref.WeakSet[EtRunner] = weakref.WeakSet()

    def threads(self) -> int:
        return int(runtime()._threadpool_get_thread_count())

    def pin(self, threads: int) -> None:
        """Size the pool to `threads`, before a method is loaded on it."""
        current = self.threads()
        if current == threads:
            return
        if any(True for _ in self.runners):
            raise UsageError(
                f"ExecuTorch's threadpool is process-wide and runs a loaded program at {current} "
                f"thread(s); it cannot be resized to {threads} while that program is loaded "
                "(one thread count per process): time each thread count in its own run"
            )
        with quiet_stderr():
            runtime()._unsafe_reset_threadpool(threads)


THREADPOOL = _Threadpool()


# --- running -----------------------------------------------------------------------------------


class EtRunner:
    """One ExecuTorch program with its input set once; calling it runs `forward` once.

    The XNNPACK threadpool is pinned to `threads` before the method is loaded (see the module
    docstring: the pool is process-wide, so a runner at another count is refused while this one
    is alive).
    """

    def __init__(
        self,
        pte_path: Path,
        threads: int = 1,
        input_shape: tuple[int, ...] | None = None,
        seed: int = 0,
    ) -> None:
        if threads < 1:
            raise UsageError(f"ExecuTorch needs at least one thread, got {threads}")
        C = runtime()
        pte_path = Path(pte_path)
        if not pte_path.is_file():
            raise ModelFileError(f"no such ExecuTorch program: {pte_path}")
        THREADPOOL.pin(threads)
        self.threads = threads
        self.path = pte_path
        try:
            self.program, self.method = load_method(C, pte_path)
        except Exception as exc:  # RuntimeError from the bindings, with ExecuTorch's error code
            raise ModelFileError(
                f"ExecuTorch cannot load {pte_path.name}: {first_line(exc, with_type=True)}"
            ) from exc
        # from here this object holds a method on the pool: no resize while it lives (even if
        # the checks below fail and a traceback keeps it)
        THREADPOOL.runners.add(self)
        meta = self.method.method_meta()
        if meta.num_inputs() != 1:
            raise UsageError(
                f"{pte_path.name} takes {meta.num_inputs()} inputs; EtRunner feeds one"
            )
        planned = tuple(meta.input_tensor_meta(0).sizes())
        shape = tuple(input_shape) if input_shape is not None else planned
        if shape != planned:
            raise UsageError(
                f"{pte_path.name} takes an input of shape {'x'.join(map(str, planned))}, "
                f"not {'x'.join(map(str, shape))}"
            )
        self.input = example_input(shape, seed)  # kept alive: the method may read it
        self.method.set_inputs((self.input,))
        self._execute = self.method.execute
        self._execute()  # first run: XNNPACK packs the weights, the outputs are planned

    def __call__(self) -> None:
        self._execute()

    def outputs(self) -> list[torch.Tensor]:
        """Copies of the outputs of the last call."""
        return list(self.method.get_outputs(clone_outputs=True))
