"""HTTP backends and the bounded client across namespaces (v4 and v6, a dead backend)."""

from __future__ import annotations

import pytest

from vipcast.lab.backends import http_load, start_backend
from vipcast.lab.netns import Topology

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
