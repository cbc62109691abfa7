"""HTTP backends and the bounded client across namespaces (v4 and v6, a dead backend)."""

from __future__ import annotations

import signal

import pytest

from vipcast.lab.backends import http_load, start_backend
from vipcast.lab.netns import Topology
from vipcast.lab.workload import ClientLoad, wait_all_started

pytestmark = pytest.mark.netns


def test_backends_answer_with_identity_and_client_address(netlab: Topology) -> None:
    client = netlab.add_netns("client")
    server = netlab.add_netns("server")
    netlab.veth(client, "eth0", server, "eth0")
    client.add_address("eth0", "203.0.113.10/24")
    server.add_address("eth0", "203.0.113.20/24")
    client.add_address("eth0", "2001:db8::10/64")
    server.add_address("eth0", "2001:db8::20/64")
    b1 = start_backend(server, "b1", node="n1", port=8080)
    b2 = start_backend(server, "b2", node="n1", port=8081)

    r = http_load(client, b1.url("203.0.113.20"), count=20, deadline=20)
    assert r.sent == 20 and r.ok == 20 and r.failed == 0
    assert r.backends == {"b1": 20} and r.nodes == {"n1": 20}
    assert r.clients == ("203.0.113.10",)

    r6 = http_load(client, b2.url("2001:db8::20"), count=5, deadline=20)
    assert r6.backends == {"b2": 5} and r6.clients == ("2001:db8::10",)

    b2.stop()
    dead = http_load(client, b2.url("203.0.113.20"), count=3, deadline=10, timeout=1)
    assert dead.ok == 0 and dead.failed == 3 and dead.errors


def test_load_is_bounded_by_deadline(netlab: Topology) -> None:
    client = netlab.add_netns("client")
    other = netlab.add_netns("other")
    netlab.veth(client, "eth0", other, "eth0")
    client.add_address("eth0", "198.18.0.1/24")
    # nobody owns .99: ARP never resolves, every request hangs until its own timeout
    r = http_load(client, "http://198.18.0.99:80/", count=1000, deadline=1.5, timeout=0.5)
    assert 0 < r.sent < 1000 and r.ok == 0 and r.failed == r.sent


def test_wait_all_started_knows_traffic_flows_or_says_which_load_did_not(
        netlab: Topology) -> None:
    """The demos change nothing before their client loads are known to send: wait_all_started
    returns once each finished a request, and names the load that did not in time."""
    client = netlab.add_netns("client")
    server = netlab.add_netns("server")
    netlab.veth(client, "eth0", server, "eth0")
    client.add_address("eth0", "203.0.113.10/24")
    server.add_address("eth0", "203.0.113.20/24")
    b1 = start_backend(server, "b1", node="n1", port=8080)
    loads = [ClientLoad(client, b1.url("203.0.113.20"), duration=3.0, interval=0.05)
             for _ in range(2)]
    wait_all_started(loads, timeout=60.0)
    samples = [load.samples() for load in loads]
    assert all(s and s[0].ok for s in samples)
    # a deadline no interpreter meets: the load is named and stopped, not left running
    late = ClientLoad(client, b1.url("203.0.113.20"), duration=30.0, interval=0.05)
    with pytest.raises(RuntimeError, match=r"of http://203\.0\.113\.20:8080/ finished no"):
        wait_all_started([late], timeout=0.0)
    # stopped: it ends now (SIGTERM), not after its 30 s
    assert late._proc.wait(timeout=10) == -signal.SIGTERM
    late.samples()  # its output read and its pipe closed
