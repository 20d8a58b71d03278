"""`sweep --ray ADDRESS`: a profile's grid points as Ray tasks, the rows journaled by the driver.

Ray is an optional extra (`pip install -e '.[ray]'`), imported only here and in
sweeps/ray_address.py, and only when asked for; without it `--ray` is one line naming the extra
(exit 2). The address is checked, and a running cluster's port probed, by
`ray_address.check_ray_address`, the one check every caller reaches.

- **One timing per host.** Every task asks for one unit of the custom resource `mnv2prof_timer`
  (`RESOURCE`), which each node offers once (`ray start --resources='{"mnv2prof_timer": 1}'`),
  so at most one grid point is exported and timed on a host at a time: two timings on one host
  would share its cores, caches and memory bandwidth, and each would measure the other.
  `connect` refuses a cluster that offers the resource nowhere, or more than once on one host.
- **One task per grid point** (`run_points`): the worker runs `sweep.measure_points` on the
  point (its variants timed together, in one rotation of bursts, as a local sweep times them)
  and returns the rows as plain dicts, each with the worker's own environment (`env_*`) and a
  `host` column. The driver appends them to the journal as they arrive, in completion order.
- **Exports happen on the workers**, inside the task that holds the host's timer, into each
  host's own cache (docs/scale.md says why).
- **Failures.** A task whose worker or node dies is retried by Ray (`max_retries`, on another
  host when the node is gone); after that its rows are reported missing, for `--resume` to
  measure. A point is delivered at most once: a task's result is read once, and a row whose
  spec_hash was delivered already is dropped. An error raised by the measurement itself (an
  export that fails) stops the sweep as it would locally, with the rows so far kept. When no
  node offers the timer any more (the last such host died), the remaining points cannot run
  anywhere: a watchdog stops waiting and reports them missing.
- **Signals.** `ray.init` replaces SIGTERM's handler with its own (`sys.exit`); `connect`
  restores the handlers it found, so inside `interrupts.deferred()` both signals still only set
  the flag that `interrupts.check()` turns into `Interrupted`, which `run_points` checks between
  waits. On any exception it re-raises without cancelling (run_points says why); the handle's
  owner (`with connect(...) as handle:`) shuts down, which ends the job, and Ray kills the job's
  workers, so no half-measured row comes back. A local cluster's daemons share the driver's
  process group but survive the SIGINT of a Ctrl-C (measured); they stop with the cluster.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Self

from mnv2prof import interrupts
from mnv2prof.errors import Mnv2profError, UsageError, first_line
from mnv2prof.models.user_models import Subject
from mnv2prof.profiles.grid import GridPoint, Profile
from mnv2prof.sweeps.ray_address import (
    LOCAL,
    PROBE_TIMEOUT_S,
    check_ray_address,
    import_ray,
    quiet_ray,
)

RESOURCE = "mnv2prof_timer"
RECIPE = (
    f"start every node with `ray start ... --resources='{{\"{RESOURCE}\": 1}}'` (the head too "
    "if it should time), or use --ray local"
)
_SIGNALS = interrupts.SIGNALS  # SIGHUP too: deferred after ray.init as before it


@dataclass
class ClusterHandle:
    """A connection to a Ray cluster; `started`: this process started it (`--ray local`), so
    `shutdown` stops it. A context manager: leaving the block shuts down."""

    address: str  # the GCS address connected to
    started: bool
    hosts: dict[str, float] = field(default_factory=dict)  # host -> timer slots, at connect
    resource: str = RESOURCE
    closed: bool = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        shutdown(self)


@dataclass(frozen=True)
class RayResult:
    written: int  # rows handed to on_row
    missing: list[str]  # spec_hash of every row not measured (its host died, no timer left)
    reasons: list[str] = field(default_factory=list)  # one line per missing grid point


@contextlib.contextmanager
def kept_signal_handlers() -> Iterator[None]:
    """Restore SIGINT's and SIGTERM's handlers as they were when entered (ray.init replaces
    SIGTERM's with `sys.exit`), so `interrupts.deferred()` keeps deferring both."""
    if not _main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in _SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def connect(address: str, *, object_store_mb: int = 100, timeout_s: float = PROBE_TIMEOUT_S,
            gcs_timeout_s: int = 5) -> ClusterHandle:
    """Connect to the cluster at `address`: "local" starts one on this machine (every core, one
    timer slot), "auto" finds the one `ray start` started here (or $RAY_ADDRESS), "HOST:PORT"
    names a head's GCS. An absent or dead address, or a cluster that offers no timer, is one
    UsageError line, found out in seconds (Ray itself would retry for minutes): the address is
    checked and its port probed for `timeout_s` (`check_ray_address`), and a port that answers
    but is no Ray head's GCS is given up after about `gcs_timeout_s` (Ray's own connect tries
    for 20 s); each message states the bound. Ray's loggers and what its C++ code writes to file
    descriptor 2 are silenced while it connects: the message says what went wrong."""
    shown = str(address).strip()
    checked = check_ray_address(shown, timeout_s=timeout_s)
    ray = import_ray()
    if ray.is_initialized():
        raise UsageError("--ray: this process is already connected to a Ray cluster")
    started = checked == LOCAL
    options: dict[str, object] = {"address": checked, "logging_level": logging.ERROR,
                                  "log_to_driver": False}
    if started:
        options.update(num_cpus=os.cpu_count() or 1, resources={RESOURCE: 1},
                       include_dashboard=False, object_store_memory=object_store_mb << 20)
    # a connection's tries at the GCS, about one a second (ray._private.node._init_gcs_client)
    bounded = {} if started else {"RAY_gcs_server_port_wait_time_s": str(gcs_timeout_s)}
    with (kept_signal_handlers(), _environment(RAY_USAGE_STATS_ENABLED="0", **bounded),
          quiet_ray()):
        try:
            context = ray.init(**options)
        except Exception as exc:  # noqa: BLE001 - a missing or wrong token, another Ray version
            reason = _init_failure(exc, checked, started, gcs_timeout_s)
            raise UsageError(f"--ray {shown}: cannot connect: {reason}") from None
    # Ray prints cluster errors ("(raylet) A worker died ...") to our stdout even with
    # log_to_driver=False; stdout is the command's output, and run_points reports failures.
    with contextlib.suppress(AttributeError):
        ray._private.worker._worker_logs_enabled = False
    handle = ClusterHandle(context.address_info.get("gcs_address", checked), started)
    try:
        handle.hosts = _one_timer_per_host(handle, shown)
    except BaseException:
        shutdown(handle)
        raise
    return handle


def _init_failure(exc: Exception, address: str, started: bool, gcs_timeout_s: int) -> str:
    """Why `ray.init` failed, in one line, with a hint where the cluster may want a token."""
    hint = (
        " (if the cluster uses token authentication: export RAY_AUTH_MODE=token, with "
        "its token in ~/.ray/auth_token or $RAY_AUTH_TOKEN)"
        if not started and "RAY_AUTH_MODE" not in os.environ else ""
    )
    reason = first_line(exc).partition(" Last connection error")[0].strip()
    if not started and reason.startswith("Failed to connect"):
        waited = os.environ.get("RAY_gcs_server_port_wait_time_s", str(gcs_timeout_s))
        reason = (f"something answers at {address}, but no Ray head's GCS "
                  f"did within {waited} s; is it the head's GCS port (`ray status`)?")
    return reason + hint


def _one_timer_per_host(handle: ClusterHandle, shown: str) -> dict[str, float]:
    """`timer_hosts`, refused in one line where no host offers the timer, or one offers it more
    than once (two timings there would measure each other)."""
    hosts = timer_hosts(handle)
    if not hosts:
        raise UsageError(
            f"--ray {shown}: no node of the cluster offers the {RESOURCE} resource that "
            f"limits timing to one point per host: {RECIPE}"
        )
    crowded = {host: n for host, n in hosts.items() if n > 1}
    if crowded:
        listed = ", ".join(f"{host} ({n:g})" for host, n in crowded.items())
        raise UsageError(
            f"--ray {shown}: {RESOURCE} is offered more than once on {listed}; a host must "
            "offer it once (one Ray node per host, resources {\"" + RESOURCE + "\": 1}), so "
            "that one timing runs there at a time"
        )
    return hosts


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Environment variables set unless the user set them, for what Ray spawns, then undone."""
    added = {k: v for k, v in values.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def timer_hosts(handle: ClusterHandle) -> dict[str, float]:
    """Each live host that offers the timer resource, with the slots it offers in all (two Ray
    nodes on one machine add up). A host is a node IP, shown as its hostname (with the IP when
    two hosts share a name)."""
    ray = import_ray()
    slots: dict[str, float] = {}
    names: dict[str, str] = {}
    for node in ray.nodes():
        offered = node.get("Resources", {}).get(handle.resource, 0)
        if node.get("Alive") and offered > 0:
            ip = node.get("NodeManagerAddress") or node.get("NodeID", "?")
            slots[ip] = slots.get(ip, 0) + offered
            names.setdefault(ip, node.get("NodeManagerHostname") or ip)
    shared = {n for n in names.values() if list(names.values()).count(n) > 1}
    return {
        f"{names[ip]} ({ip})" if names[ip] in shared else names[ip]:
            int(n) if float(n).is_integer() else n
        for ip, n in slots.items()
    }


def check_gpus(handle: ClusterHandle) -> None:
    """`--device cuda` on a cluster: some host must offer a GPU, or every task would wait for
    one forever; one UsageError line."""
    ray = import_ray()
    if not ray.cluster_resources().get("GPU", 0):
        raise UsageError(
            f"--device cuda --ray {handle.address}: no node of the cluster offers a GPU "
            "(ray start --num-gpus=1 on a host with one)"
        )


def shutdown(handle: ClusterHandle) -> None:
    """Disconnect; stop the cluster if this process started it. Safe to call twice."""
    if handle.closed:
        return
    handle.closed = True
    try:
        import ray
    except ImportError:
        return
    if ray.is_initialized():
        with kept_signal_handlers():
            ray.shutdown()


def measure_point_rows(
    profile: Profile, point: GridPoint, specs: Sequence[Subject], device: str = "cpu"
) -> list[dict[str, object]]:
    """What one Ray task runs on a worker: the point's rows (`Record.row()`), measured as a
    local sweep measures them (export, count, time); `row()` runs here, so each names this host."""
    from mnv2prof.sweeps.sweep import measure_points

    return [record.row() for record in measure_points(profile, [(point, specs)], device)]


def run_points(
    handle: ClusterHandle,
    profile: Profile,
    todo: Sequence[tuple[GridPoint, Sequence[Subject]]],
    on_row: Callable[[dict[str, object]], None],
    device: str = "cpu",
    *,
    max_retries: int = 2,
    poll_s: float = 0.5,
    no_timer_grace_s: float = 30.0,
) -> RayResult:
    """Measure `todo` (grid points, each with the specs to measure) as one Ray task per point;
    call `on_row` with each row as it arrives (the point's rows in spec order, points in the
    order they finish). Returns the rows written and those missing.

    `max_retries`: Ray's re-runs of a task whose worker or node died. `poll_s`: the longest
    wait between checks of `interrupts.check()` and the watchdog. `no_timer_grace_s`: how long
    no host may offer the timer before the remaining points are given up as missing.
    """
    ray = import_ray()
    if handle.closed or not ray.is_initialized():
        raise RuntimeError("run_points needs a connected ClusterHandle")
    task = ray.remote(
        num_cpus=1,
        # --device cuda: a host with a GPU, and that GPU alone visible to the task
        num_gpus=1 if device == "cuda" else 0,
        resources={handle.resource: 1},
        max_retries=max_retries,
    )(measure_point_rows)
    run, watchdog = _Run(on_row), _Watchdog(handle, no_timer_grace_s)
    queue = [(point, list(specs)) for point, specs in todo if specs]
    queue.reverse()  # popped from the end: grid order
    profile_ref = ray.put(profile)  # once, not once a task
    pending: dict[object, tuple[GridPoint, list[Subject]]] = {}
    try:
        while queue or pending:
            interrupts.check()
            while queue and len(pending) < watchdog.window:
                point, specs = queue.pop()
                pending[task.remote(profile_ref, point, specs, device)] = (point, specs)
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=poll_s)
            interrupts.check()
            for ref in ready:
                run.collect(ray, ref, *pending.pop(ref))
            if not ready and watchdog.no_timer_left():
                _cancel(ray, pending)
                for point, specs in [*pending.values(), *reversed(queue)]:
                    run.give_up(point, specs, f"no host offers {handle.resource} any more")
                pending.clear()
                queue.clear()
    except BaseException:
        # no ray.cancel here: cancelling a running task races with its reply inside Ray (a
        # RAY_CHECK 'Tried to complete task that was not pending' ends this process with exit 1
        # and a C++ stack; ray-project/ray#54798 fixed its twin). The owner's shutdown ends this
        # job, and Ray kills the job's workers: no half-measured row comes back either way.
        raise
    return RayResult(run.written, run.missing, run.reasons)


class _Watchdog:
    """Asked when nothing finished within a poll: how many timer slots the cluster offers now
    (the submission window follows them), and whether none has been offered for `grace_s`, so
    that the remaining points can run nowhere."""

    def __init__(self, handle: ClusterHandle, grace_s: float) -> None:
        self.handle = handle
        self.grace_s = grace_s
        self.window = _window(handle)
        self.none_since: float | None = None

    def no_timer_left(self) -> bool:
        slots = sum(timer_hosts(self.handle).values())
        self.window = _window(self.handle, slots)
        now = time.monotonic()
        if slots:
            self.none_since = None
            return False
        if self.none_since is None:
            self.none_since = now
            return False
        return now - self.none_since >= self.grace_s


class _Run:
    """The rows handed on and the rows given up, each spec_hash at most once."""

    def __init__(self, on_row: Callable[[dict[str, object]], None]) -> None:
        self.on_row = on_row
        self.delivered: set[str] = set()
        self.written = 0
        self.missing: list[str] = []
        self.reasons: list[str] = []

    def collect(self, ray, ref, point: GridPoint, specs: Sequence[Subject]) -> None:
        """The rows of the finished task `ref` delivered, or given up if its worker or node
        died (Ray's retries spent); an error the measurement raised is raised here."""
        try:
            rows = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # the measurement itself failed
            raise _task_error(exc, point) from None
        except ray.exceptions.RayError as exc:  # worker or node died, retries spent
            self.give_up(point, specs, first_line(exc, with_type=True))
            return
        self.deliver(point, specs, rows)

    def deliver(
        self, point: GridPoint, specs: Sequence[Subject], rows: Sequence[dict[str, object]]
    ) -> None:
        expected = {point.row_hash(s) for s in specs}
        for row in rows:
            spec_hash = str(row.get("spec_hash", ""))
            if spec_hash not in expected:
                raise UsageError(
                    f"host {row.get('host', '?')} returned a row for spec_hash "
                    f"{spec_hash or 'none'}, which {point.label} does not have: is the same "
                    "mnv2prof version installed on every host?"
                )
            if spec_hash in self.delivered:
                continue  # never twice
            self.on_row(row)
            self.delivered.add(spec_hash)
            self.written += 1
        absent = [s for s in specs if point.row_hash(s) not in self.delivered]
        if absent:
            self.give_up(point, absent, "the task returned fewer rows than asked")

    def give_up(self, point: GridPoint, specs: Sequence[Subject], reason: str) -> None:
        hashes = [point.row_hash(s) for s in specs]
        self.missing.extend(h for h in hashes if h not in self.delivered)
        self.reasons.append(f"{point.label}: {reason}")


def _window(handle: ClusterHandle, slots: float | None = None) -> int:
    """Tasks submitted at a time: two per timer slot, so each host has its next point queued
    (the driver then waits on a short list, and an interrupt cancels little)."""
    if slots is None:
        slots = sum(handle.hosts.values())
    return max(4, 2 * int(slots))


def _cancel(ray, pending: dict) -> None:
    for ref in pending:
        with contextlib.suppress(Exception):
            ray.cancel(ref, force=True)


def _task_error(exc, point: GridPoint) -> BaseException:
    """The error a point's measurement raised on a worker, as the local sweep would raise it:
    an mnv2prof error as itself (its one line and exit code), anything else named."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, Mnv2profError | KeyboardInterrupt):
        return cause
    if isinstance(cause, BaseException):
        return RuntimeError(f"{point.label}: {first_line(cause, with_type=True)}")
    return RuntimeError(f"{point.label}: {first_line(exc)}")
