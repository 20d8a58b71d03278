"""`--ray ADDRESS`, checked in one place (`check_ray_address`): its form, and for a running
cluster a probe of its port, so that an absent, dead or wrong address is one line in seconds.

Why the probe is written here: Ray has no public call that says whether an address is a Ray
head's GCS. `ray.init` tries for about 20 s, then waits on the GCS for minutes. The only check Ray
ships, the hidden `ray health-check` ("NOT a public API"), builds a `ray._raylet.GcsClient`.
Measured with Ray 2.60, that client took 40 s to give up on a closed port and wrote its C++
warnings to file descriptor 2. With its connect timeouts shortened
(RAY_gcs_rpc_server_connect_timeout_s and _reconnect_timeout_s = 1), its C++ code ended the
process ("The program will terminate"). So a TCP connect bounded by `timeout_s` tells an absent
head, and an HTTP/2 preface tells a gRPC server (a GCS is one) from anything else listening.
What Ray does provide is used: `canonicalize_bootstrap_address` finds the cluster for "auto"
($RAY_ADDRESS, or the one `ray start` started here) and resolves a host as Ray will.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Iterator

from mnv2prof.errors import UsageError, first_line

MISSING_EXTRA = "--ray needs Ray: pip install -e '.[ray]'"
PROBE_TIMEOUT_S = 3.0  # how long an address's port may take to answer
LOCAL, AUTO = "local", "auto"  # start a cluster here; find the one running here


def import_ray():
    """The `ray` module, or one UsageError line naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise UsageError(MISSING_EXTRA) from None
    return ray


def check_ray_address(text: str, *, timeout_s: float = PROBE_TIMEOUT_S) -> str:
    """The address `--ray` names, checked, or one UsageError line.

    "local" (start a cluster here) is returned as it is; nothing runs yet. "auto" and HOST:PORT
    (the head's GCS; an IPv6 host in brackets) need Ray and a running cluster. Their port is
    probed for `timeout_s`: it must answer, and answer as a gRPC server. "auto" is returned as
    itself, because `ray.init("auto")` sends this machine's token to the cluster it finds, as it
    never does for an explicit address (RAY_AUTH_MODE=token asks for that). HOST:PORT is returned
    as the GCS address Ray resolves it to."""
    address = str(text).strip()
    if not address:
        raise UsageError("--ray needs an address: auto, local or HOST:PORT of the head node")
    if "://" in address:
        raise UsageError(
            f"--ray {address}: Ray Client addresses (ray://) are not supported; give the head "
            "node's GCS address HOST:PORT (ray start --head prints it), auto or local"
        )
    if address == LOCAL:
        return address
    if address != AUTO:
        _check_form(address)
    import_ray()
    resolved = _probe(address, timeout_s)
    return address if address == AUTO else resolved


def _check_form(address: str) -> None:
    """HOST:PORT with a host and a port 1..65535, or one UsageError line: Ray would log a
    traceback for it, or try to connect."""
    host, colon, port = address.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    problem = None
    if not colon:
        problem = "no port"
    elif not host.strip() or any(c.isspace() for c in host):
        problem = "no host" if not host.strip() else f"the host {host!r} has a space"
    elif not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
        problem = f"the port {port!r} is not a number from 1 to 65535"
    elif ":" in host and not address.startswith("["):
        problem = "an IPv6 host goes in brackets, [::1]:6379"
    if problem:
        raise UsageError(
            f"--ray {address}: not HOST:PORT ({problem}): give the head node's GCS address "
            "(`ray start --head` prints it, e.g. 10.0.0.5:6379), auto or local"
        )


@contextlib.contextmanager
def quiet_ray() -> Iterator[None]:
    """Ray's Python loggers and its C++ lines on file descriptor 2, silenced for the duration."""
    from mnv2prof.quiet import quiet_stderr

    ray_logger = logging.getLogger("ray")
    level = ray_logger.level
    ray_logger.setLevel(logging.CRITICAL)
    try:
        with quiet_stderr():
            yield
    finally:
        ray_logger.setLevel(level)


def _probe(address: str, timeout_s: float) -> str:
    """The GCS address `address` stands for, if a gRPC server listens there; else one line."""
    from ray._private.services import canonicalize_bootstrap_address

    try:
        with quiet_ray():
            resolved = canonicalize_bootstrap_address(address)
    except ConnectionError:
        raise UsageError(
            f"--ray {address}: no running Ray cluster found on this machine ($RAY_ADDRESS is "
            "unset and none was started with `ray start`): start one, give its HOST:PORT, or "
            "use --ray local"
        ) from None
    except (ValueError, OSError) as exc:  # a malformed address, a name that does not resolve
        raise UsageError(f"--ray {address}: not a Ray address ({first_line(exc)})") from None
    if resolved is None:
        raise UsageError(f"--ray {address}: no Ray cluster address found")
    host, _, port = resolved.rpartition(":")
    deadline = time.monotonic() + timeout_s
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s) as conn:
            grpc = _answers_http2(conn, deadline)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise UsageError(
            f"--ray {address}: no Ray cluster answers at {resolved} within {timeout_s:g} s "
            f"({reason}); is the head node running (`ray status`)?"
        ) from None
    if not grpc:  # ray.init would wait for minutes, then Ray's C++ would end the process
        raise UsageError(
            f"--ray {address}: something listens at {resolved} but gave no gRPC answer within "
            f"{timeout_s:g} s: it is not a Ray head's GCS port (`ray start --head` prints it)"
        )
    return resolved


# An HTTP/2 client's preface and an empty SETTINGS frame (RFC 9113, section 3.4): a gRPC server,
# as a Ray GCS is, answers with a SETTINGS frame of its own.
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_SETTINGS_FRAME = 4


def _answers_http2(conn: socket.socket, deadline: float) -> bool:
    """Whether the server on `conn` answers an HTTP/2 preface with SETTINGS by `deadline`."""
    header = b""
    try:
        conn.sendall(_HTTP2_PREFACE)
        while len(header) < 9:  # a frame header: length (3), type (1), flags (1), stream (4)
            conn.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = conn.recv(9 - len(header))
            if not chunk:
                break
            header += chunk
    except OSError:  # a timeout, a reset
        return False
    return len(header) == 9 and header[3] == _SETTINGS_FRAME
