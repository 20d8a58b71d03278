"""`--ray ADDRESS`'s one check (sweeps/ray_address.py): the form, "local", and the probe of a
running cluster's port, against listeners made here (no Ray cluster is started)."""

import socket
import sys
import threading
import time

import pytest

from mnv2prof.errors import UsageError
from mnv2prof.sweeps.ray_address import MISSING_EXTRA, check_ray_address

FORM = ("give the head node's GCS address (`ray start --head` prints it, e.g. 10.0.0.5:6379), "
        "auto or local")


@pytest.mark.parametrize(("address", "problem"), [
    ("head", "no port"),
    (":6379", "no host"),
    ("my head:6379", "the host 'my head' has a space"),
    ("head:abc", "the port 'abc' is not a number from 1 to 65535"),
    ("head:0", "the port '0' is not a number from 1 to 65535"),
    ("head:65536", "the port '65536' is not a number from 1 to 65535"),
    ("::1:6379", "an IPv6 host goes in brackets, [::1]:6379"),
])
def test_a_malformed_address_is_one_line_without_ray(monkeypatch, address, problem):
    monkeypatch.setitem(sys.modules, "ray", None)  # the form needs no Ray
    with pytest.raises(UsageError) as caught:
        check_ray_address(f" {address} ")
    assert str(caught.value) == f"--ray {address}: not HOST:PORT ({problem}): {FORM}"


@pytest.mark.parametrize(("address", "message"), [
    ("  ", "--ray needs an address: auto, local or HOST:PORT of the head node"),
    ("ray://head:10001", (
        "--ray ray://head:10001: Ray Client addresses (ray://) are not supported; give the head "
        "node's GCS address HOST:PORT (ray start --head prints it), auto or local"
    )),
])
def test_no_address_and_ray_client_addresses_are_refused(monkeypatch, address, message):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(UsageError) as caught:
        check_ray_address(address)
    assert str(caught.value) == message


def test_local_is_itself_and_needs_nothing_running(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # connect imports Ray, not the check
    assert check_ray_address(" local ") == "local"


def test_a_running_clusters_address_needs_ray(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(UsageError) as caught:
        check_ray_address("10.0.0.5:6379")
    assert str(caught.value) == MISSING_EXTRA


def free_port() -> int:
    with socket.socket() as probe:  # a port nothing listens on, once closed
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_dead_address_is_one_line_in_seconds():
    pytest.importorskip("ray")
    port = free_port()
    started = time.monotonic()
    with pytest.raises(UsageError) as caught:
        check_ray_address(f"127.0.0.1:{port}", timeout_s=1)
    assert time.monotonic() - started < 5
    message = str(caught.value)  # Ray names this host by its address, not as 127.0.0.1
    assert message.startswith(f"--ray 127.0.0.1:{port}: no Ray cluster answers at ")
    assert message.endswith(f":{port} within 1 s (Connection refused); is the head node "
                            "running (`ray status`)?")  # the bound, stated


@pytest.fixture
def listener():
    """A TCP server on every interface that answers each connection with `reply` (set by the
    test), then holds it open."""
    server = socket.create_server(("", 0))
    state = {"reply": b"", "held": []}

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.sendall(state["reply"])
            state["held"].append(conn)

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1], state
    server.close()
    for conn in state["held"]:
        conn.close()


def test_a_port_that_is_no_grpc_server_is_refused_within_the_bound(listener):
    pytest.importorskip("ray")
    port, state = listener
    state["reply"] = b"SSH-2.0-OpenSSH_9.6\r\n"
    started = time.monotonic()
    with pytest.raises(UsageError) as caught:
        check_ray_address(f"127.0.0.1:{port}", timeout_s=1)
    assert time.monotonic() - started < 3
    message = str(caught.value)
    assert message.startswith(f"--ray 127.0.0.1:{port}: something listens at ")
    assert message.endswith(f":{port} but gave no gRPC answer within 1 s: it is not a Ray "
                            "head's GCS port (`ray start --head` prints it)")


def test_a_port_that_answers_http2_settings_passes_as_ray_resolves_it(listener):
    pytest.importorskip("ray")
    from ray._private.services import canonicalize_bootstrap_address

    port, state = listener
    state["reply"] = bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])  # an empty SETTINGS frame, as gRPC sends
    address = f"127.0.0.1:{port}"
    assert check_ray_address(address, timeout_s=1) == canonicalize_bootstrap_address(address)


def test_sweep_checks_the_address_before_the_profile(run_cli, tmp_path):
    code, _, err = run_cli("sweep", "no-such-profile", "--ray", "head:99999", "--out",
                           tmp_path / "o.csv")
    problem = "the port '99999' is not a number from 1 to 65535"
    expected = f"mnv2prof: error: --ray head:99999: not HOST:PORT ({problem}): {FORM}"
    assert (code, err.strip().splitlines()) == (2, [expected])
