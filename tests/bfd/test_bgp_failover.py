"""End to end: vipcast nodes announce a VIP over BGP with BFD to FRR; a node is cut behind the
bridge and the router's kernel route loses its nexthop within BFD time (here 300 ms x 5, the
tests' timers for a loaded machine, see bfdecmp.LOADED; bench/bfd_failover.py measures at
100 ms x 3), long before the 9 s hold timer; the node's own BFD tells its speaker to drop the
session, and the other node's session is not disturbed."""

from __future__ import annotations

import re
import time

import pytest
from bfdecmp import (
    LOADED,
    NODES,
    ROUTER,
    TEST_INTERVAL_MS,
    TEST_MULT,
    VipcastNode,
    bfdd_status,
    build,
    nexthops,
    start_router,
    trial,
)

from vipcast.lab.netns import Topology, wait_until

pytestmark = [pytest.mark.netns, pytest.mark.interop, pytest.mark.slow]


def test_router_drops_cut_node_nexthop(netlab: Topology) -> None:
    r, sw, nodes = build(netlab)
    frr = start_router(netlab, r, TEST_INTERVAL_MS, TEST_MULT)
    started: list[VipcastNode] = []
    try:
        for short, ns in nodes.items():
            started.append(VipcastNode.start(ns, NODES[short], LOADED))
        wait_until(lambda: nexthops(r) == set(NODES.values()), timeout=60, what="ECMP route")
        wait_until(lambda: all(bfdd_status(frr, a) == "up" for a in NODES.values()),
                   timeout=30, what="BFD up on the router")  # fmt: skip
        n1 = started[0]
        reasons: dict[str, str] = {}
        # cut, measure, restore, wait; the link stays cut until n1's own BFD has dropped too
        # (n1 and the router detect independently: a loaded n1 may come after the router)
        got = trial(r, sw, frr, "n1", reasons=reasons, also=lambda: bool(n1.drops))
        # behaviour, not speed (bench/bfd_failover.py has the figures): bfdd declared n1 down
        # and the router dropped its next hop while the link was cut (15 s deadline), and it
        # was BFD that reset the BGP session, not the 9 s hold timer
        assert "route" in got and "bfdd" in got, got
        assert "bfd down" in reasons["bgp"].lower(), (reasons, got)  # Cease/BFD Down sent
        # the node's BFD also saw the router vanish and made its speaker drop the session
        assert "also" in got, got
        assert n1.drops == ["r"]
        assert started[1].drops == []
        # trial() waited for the ROUTER's bfdd to say up; n1's own session reaches Up on its
        # own loop, a moment later (the three-way handshake's last packet): wait for it
        wait_until(lambda: n1.ns.call(lambda: n1.bfd.status()["r"].state) == "UP", timeout=30,
                   what="n1's BFD session Up again")  # fmt: skip
        assert n1.drops == ["r"] and started[1].drops == []
    finally:
        for node in started:
            node.stop()


_TCP = re.compile(r"^(\d+\.\d+) IP (\S+)\.(\d+) > (\S+)\.(\d+): Flags \[([^\]]*)\]")


def refused_router_syns(text: str, node: str, since: float) -> tuple[int, list[int]]:
    """From ``tcpdump -tt`` text: how many connections the router opened toward ``node``
    port 179 after ``since``, and the source ports of those the node answered with RST."""
    syns: set[int] = set()
    refused: list[int] = []
    for line in text.splitlines():
        found = _TCP.match(line)
        if found is None or float(found.group(1)) < since:
            continue
        src, sport, dst, dport, flags = found.group(2, 3, 4, 5, 6)
        if src == ROUTER and dst == node and dport == "179" and flags == "S":
            syns.add(int(sport))
        elif src == node and sport == "179" and dst == ROUTER and flags.startswith("R"):
            refused += [int(dport)] if int(dport) in syns else []
    return len(syns), refused


def test_bfd_drop_reconnects_at_once_and_a_flapping_peer_is_damped(netlab: Topology) -> None:
    """After a BFD Down the node's session restarts at once (no idle hold: RFC 4271 §8.1.1
    damps oscillations, not the first drop), so the router's connections after the link comes
    back are taken, not refused with RST as during the old fixed 5 s idle hold (FRR 8.4 retries
    every second and does not wait for its BFD session). Dropped again and again before the
    session is stable, the node waits its idle hold, twice as long each time, before it
    connects (order, not speed: each return comes no earlier than its hold)."""
    r, sw, nodes = build(netlab)
    frr = start_router(netlab, r, TEST_INTERVAL_MS, TEST_MULT)
    hold = 2.0
    n1 = VipcastNode.start(nodes["n1"], NODES["n1"], LOADED, idle_hold_time=hold,
                           stable_time=120.0)
    started = [n1]
    try:
        started.append(VipcastNode.start(nodes["n2"], NODES["n2"], LOADED))
        wait_until(lambda: nexthops(r) == set(NODES.values()), timeout=60, what="ECMP route")
        wait_until(lambda: all(bfdd_status(frr, a) == "up" for a in NODES.values()),
                   timeout=30, what="BFD up on the router")  # fmt: skip
        dump = r.spawn(["tcpdump", "-i", "eth0", "-n", "-tt", "-l", "--immediate-mode",
                        f"tcp port 179 and host {NODES['n1']}"], name="tcpdump")  # fmt: skip
        wait_until(lambda: "listening on" in dump.log_text(), timeout=20, what="tcpdump")
        since = time.time()
        # cut until the router and n1's own BFD dropped, restore, both next hops back
        got = trial(r, sw, frr, "n1", also=lambda: bool(n1.drops))
        assert "also" in got, got
        assert n1.drops == ["r"]
        first = n1.after_drops[0]
        # the first drop restarts at once: no idle hold, out of Idle in the same call
        assert first.drops_in_a_row == 1 and first.restart_in in (None, 0.0), first
        wait_until(lambda: n1.peer().state == "Established", timeout=30, what="n1 back")
        time.sleep(0.5)  # the capture's last lines
        syns, refused = refused_router_syns(dump.log_text(), NODES["n1"], since)
        assert refused == [], (syns, refused, dump.log_text()[-3000:])

        def armed() -> bool:
            status = n1.bfd.status().get("r")
            return status is not None and status.binding == "ARMED"

        # flapping: dropped twice more before the session is stable (stable_time 120 s)
        for k in (2, 3):
            # armed again: BGP Established and n1's own BFD session Up
            wait_until(lambda: n1.ns.call(armed), timeout=30, what="n1's binding armed")
            got = trial(r, sw, frr, "n1", back_timeout=120,
                        also=lambda k=k: len(n1.drops) >= k)  # fmt: skip
            assert "also" in got, got
            wait_until(lambda: n1.peer().state == "Established", timeout=60, what="n1 back")
            status = n1.after_drops[k - 1]
            wanted = hold * 2 ** (k - 2)  # 2 s, then 4 s
            assert status.drops_in_a_row == k, status
            assert status.restart_in is not None
            assert wanted - 0.5 < status.restart_in <= wanted, status
            # the session came back no earlier than its hold allowed
            assert len(n1.up_times) >= k + 1
            assert n1.up_times[k] - n1.drop_times[k - 1] >= wanted - 0.01, (
                n1.drop_times, n1.up_times)  # fmt: skip
        assert n1.drops == ["r", "r", "r"]
    finally:
        for node in started:
            node.stop()
