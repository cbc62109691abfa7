"""The namespace library against the real kernel: links, bridges, routes, processes, cleanup."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from vipcast.lab.netns import (
    Topology,
    default_prefix,
    leftovers,
    list_netns,
    parse_routes,
    wait_until,
)

pytestmark = pytest.mark.netns


def test_parse_routes_normalises_default_host_and_ecmp() -> None:
    raw: list[dict[str, Any]] = [
        {"dst": "default", "gateway": "10.0.0.1", "dev": "eth0"},
        {"dst": "192.0.2.10", "dev": "eth0", "protocol": "bgp", "metric": 20},
        {
            "dst": "203.0.113.0/24",
            "nexthops": [
                {"gateway": "10.0.0.2", "dev": "eth1", "weight": 1},
                {"gateway": "10.0.0.6", "dev": "eth2", "weight": 1},
            ],
        },
    ]
    routes = parse_routes(raw, 4)
    assert [r.dst for r in routes] == ["0.0.0.0/0", "192.0.2.10/32", "203.0.113.0/24"]
    assert routes[1].protocol == "bgp" and routes[1].metric == 20
    assert routes[2].gateways == ("10.0.0.2", "10.0.0.6")
    assert parse_routes([{"dst": "default", "gateway": "fd00::1"}], 6)[0].dst == "::/0"


def test_bridge_lan_veth_routes_and_cable_cut(netlab: Topology) -> None:
    lan = netlab.add_netns("lan")
    router = netlab.add_netns("router", router=True)
    node = netlab.add_netns("node")
    client = netlab.add_netns("client")
    lan.add_bridge("br0")
    netlab.attach_to_bridge(lan, "br0", "p-router", router, "eth0")
    netlab.attach_to_bridge(lan, "br0", "p-node", node, "eth0")
    netlab.veth(router, "eth1", client, "eth0")
    router.add_address("eth0", "192.0.2.1/24")
    router.add_address("eth0", "2001:db8::1/64")
    node.add_address("eth0", "192.0.2.11/24")
    node.add_address("eth0", "2001:db8::11/64")
    router.add_address("eth1", "10.0.0.1/30")
    client.add_address("eth0", "10.0.0.2/30")
    client.add_default_route("10.0.0.1")
    node.add_default_route("192.0.2.1")
    assert router.read_sysctl("net.ipv4.ip_forward") == "1"
    assert "192.0.2.11/24" in node.addresses("eth0")

    assert client.run(["ping", "-c1", "-W3", "192.0.2.11"]).returncode == 0
    assert node.run(["ping", "-6", "-c1", "-W3", "2001:db8::1"]).returncode == 0

    router.add_route("198.51.100.0/24", via=["192.0.2.11", "10.0.0.2"])
    ecmp = router.route("198.51.100.0/24")
    assert ecmp is not None and ecmp.gateways == ("10.0.0.2", "192.0.2.11")

    # cable cut: the bridge side goes down, the node becomes unreachable
    lan.set_link("p-node", False)
    assert not lan.link_is_up("p-node")
    assert client.run(["ping", "-c1", "-W1", "192.0.2.11"], check=False).returncode != 0
    lan.set_link("p-node", True)
    wait_until(
        lambda: client.run(["ping", "-c1", "-W1", "192.0.2.11"], check=False).returncode == 0,
        timeout=15,
        what="node reachable again",
    )


def test_close_stops_processes_and_deletes_namespaces() -> None:
    with Topology() as topo:
        ns = topo.add_netns("a")
        proc = ns.spawn(["sleep", "300"], name="sleeper")
        # a grandchild in the same namespace (not tracked) is killed too
        ns.spawn(["sh", "-c", "sleep 301 & wait"], name="shell")
        wait_until(lambda: len(ns.pids()) >= 3, timeout=30, what="processes started")
        assert proc.alive()
        names = [n.name for n in topo]
    assert not proc.alive()
    assert not set(names) & set(list_netns())
    assert leftovers(topo.prefix) == []
    assert not topo.workdir.exists()


def test_interface_name_limit(netlab: Topology) -> None:
    a = netlab.add_netns("a")
    b = netlab.add_netns("b")
    with pytest.raises(ValueError):
        netlab.veth(a, "x" * 16, b, "eth0")


def test_wait_until_reports_what_timed_out() -> None:
    with pytest.raises(TimeoutError, match="the impossible"):
        wait_until(lambda: False, timeout=0.3, interval=0.05, what="the impossible")


def test_module_topology_is_shared_part_one(netlab_module: Topology) -> None:
    ns = netlab_module.add_netns("shared")
    assert ns.name.startswith(netlab_module.prefix + "-")
    assert netlab_module.prefix.startswith(default_prefix() + "-m")


def test_module_topology_is_shared_part_two(netlab_module: Topology) -> None:
    assert netlab_module["shared"].name in list_netns()


def test_sigterm_inside_a_topology_block_still_cleans_up(tmp_path: Path) -> None:
    marker = tmp_path / "prefix"
    script = (
        "import sys, time\n"
        "from vipcast.lab.netns import Topology\n"
        "with Topology() as t:\n"
        "    t.add_netns('a').spawn(['sleep', '300'], name='s')\n"
        f"    open({str(marker)!r}, 'w').write(t.prefix)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        wait_until(lambda: marker.exists() and marker.read_text(), timeout=60, what="lab up")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    assert leftovers(marker.read_text()) == []
