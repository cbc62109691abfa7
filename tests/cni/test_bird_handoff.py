"""The BIRD include-file hand-off against a real BIRD 2 (the node's "CNI") and FRR (the router).

"rtr" runs FRR (AS 65000, 192.0.2.1); "node" runs BIRD (AS 64512, 192.0.2.11) with one eBGP
session to the router, a pod block of its own, and ``include`` of the file vipcast writes. The
consumer (:class:`vipcast.runtime.handoff.bird.BirdHandOff`) gets plans, writes the file and
runs ``birdc configure``; the router must learn exactly the handed-off prefixes with their
attributes, beside the pod block, over the one session -- which never flaps.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from vipcast.cli.agent_cmds import handoff_table
from vipcast.core.desired import BGPRoute, HandOffNeighbor, HandOffTarget, NatRule, NodePlan
from vipcast.core.handoff import bird_include, handed_routes
from vipcast.lab.bgpconf import Neighbor
from vipcast.lab.bird import BirdConfig, start_bird
from vipcast.lab.frr import FrrConfig, FrrInstance, start_frr
from vipcast.lab.netns import Netns, Topology, wait_until
from vipcast.runtime.handoff.bird import BirdHandOff

R4, N4 = "192.0.2.1", "192.0.2.11"


def link(topo: Topology) -> tuple[Netns, Netns]:
    """``rtr`` (R4) and ``node`` (N4) joined by one veth."""
    rtr, node = topo.add_netns("rtr", router=True), topo.add_netns("node")
    topo.veth(rtr, "eth0", node, "eth0")
    rtr.add_address("eth0", f"{R4}/24")
    node.add_address("eth0", f"{N4}/24")
    return rtr, node

pytestmark = [
    pytest.mark.netns,
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("bird") is None, reason="BIRD 2 not installed"),
    pytest.mark.skipif(shutil.which("bgpd") is None and not Path("/usr/lib/frr/bgpd").exists(),
                       reason="FRR not installed"),
]

POD = "10.244.1.0/24"


def target(path: Path, socket: Path) -> HandOffTarget:
    return HandOffTarget(
        cni="calico", asn=64512, kind="birdInclude",
        neighbors=(HandOffNeighbor(name="tor", address=R4, my_asn=64512, peer_asn=65000),),
        path=str(path), control_socket=str(socket))


def plan(t: HandOffTarget, *routes: BGPRoute) -> NodePlan:
    nat = tuple(NatRule(service=r.services[0], vip=r.prefix.split("/")[0], port=80,
                        protocol="TCP", backends=()) for r in routes)
    return NodePlan(node="n1", bgp=routes, nat=nat, hand_off=(t,))


def route(prefix: str, *peers: str, **attrs: object) -> BGPRoute:
    return BGPRoute(prefix=prefix, peers=peers, services=(f"ns/{prefix}",), **attrs)  # type: ignore[arg-type]


def session_counters(frr: FrrInstance) -> tuple[int, int]:
    return frr.session_counts()[N4]


def frr_prefixes(frr: FrrInstance) -> set[str]:
    return set(frr.routes())


def test_bird_hand_off_reaches_the_router_without_a_flap(netlab: Topology) -> None:
    rtr, node = link(netlab)
    frr = start_frr(rtr, FrrConfig(asn=65000, router_id=R4,
                                   neighbors=(Neighbor(N4, 64512, hold_time=9),)),
                    netlab.workdir / "frr")
    include = netlab.workdir / "handoff" / "vipcast.conf"
    include.parent.mkdir(parents=True)
    # the file exists before BIRD starts (an empty protocol per family)
    placeholder = target(include, Path("/nonexistent"))
    include.write_text(bird_include("n1", placeholder, ()))
    bird = start_bird(node, BirdConfig(asn=64512, router_id=N4, neighbors=(
        Neighbor(R4, 65000, hold_time=9),), networks=(POD,), kernel_export=False,
        extra=f'include "{include}";'), netlab.workdir / "bird")
    t = target(include, bird.socket)
    frr.wait_established(N4, timeout=60)
    wait_until(lambda: POD in frr_prefixes(frr), timeout=30, what="pod block at the router")
    before = session_counters(frr)
    consumer = BirdHandOff()

    async def steps() -> None:
        # 1: two VIPs, one with a community and a large community
        await consumer.apply(plan(t, route("198.51.100.10/32", "tor", communities=(
            65000 << 16 | 100,), large_communities=((64512, 1, 2),)),
            route("198.51.100.11/32", "tor")))
        await asyncio.to_thread(wait_until, lambda: {"198.51.100.10/32", "198.51.100.11/32"}
                                <= frr_prefixes(frr), timeout=30, what="VIPs at the router")
        # 2: one withdrawn, one added, and a route for another peer is not handed off
        await consumer.apply(plan(t, route("198.51.100.10/32", "tor", communities=(
            65000 << 16 | 100,), large_communities=((64512, 1, 2),)),
            route("198.51.100.12/32", "tor"), route("198.51.100.99/32", "other")))
        await asyncio.to_thread(
            wait_until, lambda: "198.51.100.12/32" in frr_prefixes(frr)
            and "198.51.100.11/32" not in frr_prefixes(frr), timeout=30, what="the change")
        # 3: the same plan again: nothing to reload
        reloads = consumer.reloads
        await consumer.apply(plan(t, route("198.51.100.10/32", "tor", communities=(
            65000 << 16 | 100,), large_communities=((64512, 1, 2),)),
            route("198.51.100.12/32", "tor"), route("198.51.100.99/32", "other")))
        assert consumer.reloads == reloads
        await consumer.stop()

    asyncio.run(steps())
    prefixes = frr_prefixes(frr)
    assert prefixes == {POD, "198.51.100.10/32", "198.51.100.12/32"}
    (path,) = frr.route("198.51.100.10/32")
    assert "65000:100" in path.communities and "64512:1:2" in path.large_communities
    assert path.as_path == (64512,)
    assert consumer.reloads == 2
    (row,) = consumer.status()  # the agent's /status "handoff" section
    assert (row["path"], row["loaded_routes"], row["pending"], row["failures"]) == (
        str(include), 2, False, 0)
    table = handoff_table({"node": "n1", "handoff": consumer.status()})
    assert table is not None and table.row_count == 1
    # the router's one session to the node's BIRD never went down
    assert session_counters(frr) == before
    assert before[1] == 0


def test_a_bird_that_answers_late_gets_the_file_by_retry(netlab: Topology) -> None:
    """The first reload fails (BIRD is not running yet); the consumer keeps retrying on its
    own, without a new plan, until BIRD answers ``configure``."""
    node = netlab.add_netns("node")
    include = netlab.workdir / "late" / "vipcast.conf"
    include.parent.mkdir(parents=True)
    socket = netlab.workdir / "bird" / "bird.ctl"
    t = target(include, socket)
    consumer = BirdHandOff(retry=0.2)

    async def steps() -> None:
        await consumer.apply(plan(t, route("198.51.100.10/32", "tor")))
        assert consumer.reloads == 0 and consumer.failures >= 1
        failures = consumer.failures
        # still trying, on its own (retry every 0.2 s; one attempt may take long under load)
        deadline = asyncio.get_running_loop().time() + 30
        while consumer.failures <= failures and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
        assert consumer.failures > failures, (consumer.failures, consumer.status())
        bird = await asyncio.to_thread(start_bird, node, BirdConfig(
            asn=64512, router_id=N4, kernel_export=False, extra=f'include "{include}";'),
            netlab.workdir / "bird")
        assert bird.socket == socket
        deadline = asyncio.get_running_loop().time() + 30
        while consumer.reloads == 0 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
        await consumer.stop()
        assert consumer.reloads == 1
        out = await asyncio.to_thread(bird.birdc, "show", "route", "protocol",
                                      "vipcast_handoff")
        assert "198.51.100.10/32" in out

    asyncio.run(steps())


async def _apply_without_bird(tmp: Path) -> BirdHandOff:
    consumer = BirdHandOff(retry=0.05)
    t = target(tmp / "vipcast.conf", tmp / "no-bird.ctl")
    await consumer.apply(plan(t, route("198.51.100.10/32", "tor")))
    await asyncio.sleep(0.3)  # a few retries, each failing
    await consumer.stop()
    return consumer


def test_a_failed_reload_is_retried_and_not_counted(tmp_path: Path) -> None:
    consumer = asyncio.run(_apply_without_bird(tmp_path))
    assert consumer.reloads == 0
    # the file is written all the same (BIRD reads it when it starts)
    assert "route 198.51.100.10/32 blackhole;" in (tmp_path / "vipcast.conf").read_text()


def test_the_include_file_parses_in_bird(tmp_path: Path) -> None:
    """What the consumer writes is a valid BIRD 2 config (``bird -p``): both families, a
    prefix handed to two neighbors with different attributes (merged to one route), every
    attribute kind, and the empty file of a node that hands nothing."""
    t = target(tmp_path / "vipcast.conf", tmp_path / "bird.ctl")
    t2 = HandOffTarget(cni="calico", asn=64512, kind="birdInclude", neighbors=(
        *t.neighbors, HandOffNeighbor(name="tor6", address="2001:db8::1", my_asn=64512,
                                      peer_asn=65000)), path=t.path,
        control_socket=t.control_socket)
    routes = (
        route("198.51.100.0/28", "tor", communities=(65000 << 16 | 1,), local_pref=100),
        route("198.51.100.0/28", "tor6", communities=(0xFFFF0000,), local_pref=200,
              large_communities=((4200000000, 1, 2),)),
        route("2001:db8:5::10/128", "tor6"),
    )
    handed = handed_routes(plan(t2, *routes), t2)
    assert len(handed) == 3
    for text in (bird_include("n1", t2, handed), bird_include("n1", t2, ())):
        (tmp_path / "vipcast.conf").write_text(text)
        conf = tmp_path / "bird.conf"
        conf.write_text(f'router id 192.0.2.11;\ninclude "{tmp_path / "vipcast.conf"}";\n')
        check = subprocess.run(["bird", "-p", "-c", str(conf)], capture_output=True, text=True,
                               check=False)
        assert check.returncode == 0, (check.stderr, text)
    text = bird_include("n1", t2, handed)
    assert text.count("route 198.51.100.0/28 blackhole") == 1
    assert "bgp_community.add((65535,0));" in text and "bgp_local_pref = 200;" in text
    assert "bgp_large_community.add((4200000000,1,2));" in text
    assert "protocol static vipcast_handoff_v6 {\n  ipv6;\n  route 2001:db8:5::10/128" in text
