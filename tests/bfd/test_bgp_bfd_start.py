"""A node's start against FRR 8.4 with BFD: no BGP flap, and BFD still cuts BGP on a failure.

FRR 8.4's bgpd registers a neighbour's BFD session with bfdd before the BGP session is up
(without a local address) and, once the BGP session is Established, moves the neighbour to a
new session (with the local address, a new discriminator); the old session says Down (diag 3)
as it goes, and bgpd drops its BGP session with Cease/BFD Down if that old session was Up. The
agent therefore starts its BFD session toward a BGP peer only at Established
(:mod:`vipcast.runtime.bfd.bgp`), and does not drop BGP for a Down that is not a path failure
(:mod:`vipcast.proto.bfd.client`). ``docs/bfd.md`` has the capture.

The start is made the hard way: TCP 179 is held in the router's namespace for a while, so a
BFD session that started with the agent would be Up long before BGP (before the fix: Up
after ~1 s, then one flap on both sides at Established). Then, on the same lab, the two
failures BFD is there for: the node's link cut, and the router's bfdd killed.
"""

from __future__ import annotations

import os
import shutil
import signal
import time

import pytest
from agentlab import AgentNode, write_config
from bfdecmp import NODES, TEST_INTERVAL_MS, TEST_MULT, bfdd_status, build, start_router

from vipcast.lab.frr import FrrInstance
from vipcast.lab.netns import Netns, Topology, wait_until

pytestmark = [
    pytest.mark.netns,
    pytest.mark.interop,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("/usr/lib/frr/bfdd") is None, reason="FRR not installed"),
]

N1 = NODES["n1"]
DROPPED = "detection time expired): dropping the BGP session"
HOLD = "add table inet vc_hold179; " \
       "add chain inet vc_hold179 in { type filter hook input priority 0; }; " \
       "add rule inet vc_hold179 in tcp dport 179 drop; " \
       "add rule inet vc_hold179 in tcp sport 179 drop"  # fmt: skip


def neighbor(frr: FrrInstance) -> dict[str, object]:
    return frr.neighbors().get(N1, {})


def counters(frr: FrrInstance) -> tuple[object, object]:
    record = neighbor(frr)
    return record.get("connectionsEstablished", 0), record.get("connectionsDropped", 0)


def router_session(frr: FrrInstance) -> dict[str, object]:
    """bfdd's session toward n1 that carries the local address (the one bgpd moved to)."""
    for peer in frr.bfd_peers():
        if peer.get("peer") == N1 and peer.get("local"):
            return dict(peer)
    return {}


def established_lines(node: AgentNode) -> list[str]:
    return [line for line in node.proc.log_text().splitlines()
            if "peer r (" in line and ": Established (" in line]  # fmt: skip


def hold_bgp(r: Netns) -> None:
    r.run(["nft", HOLD])


def release_bgp(r: Netns) -> None:
    r.run(["nft", "delete table inet vc_hold179"])


def test_start_without_a_flap_then_bfd_still_cuts_bgp(netlab: Topology) -> None:
    r, sw, nodes = build(netlab)
    hold_bgp(r)
    # the tests' BFD timers both ways (300 ms x 5: bfdecmp.LOADED says why): "no flap" must
    # not turn an agent unscheduled for 300 ms on a loaded machine into a failure
    frr = start_router(netlab, r, TEST_INTERVAL_MS, TEST_MULT)
    config = netlab.workdir / "objects.yaml"
    write_config(config, bfd_interval_ms=TEST_INTERVAL_MS, bfd_multiplier=TEST_MULT)
    n1 = AgentNode.start(netlab, nodes["n1"], "n1", config)
    try:
        # BGP is held long enough for a BFD session started with the agent to come Up
        # (before the fix it did, in about a second)
        wait_until(lambda: bool(n1.bfd().get("state")), timeout=60, what="agent up",
                   on_timeout=netlab.logs)  # fmt: skip
        held: set[tuple[str, str]] = set()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            held.add((str(n1.bfd().get("state")), bfdd_status(frr, N1)))
            time.sleep(0.5)
        assert n1.bgp_state() != "Established"
        release_bgp(r)

        # BGP comes up once, BFD after it; the router completes its hand-over (its session
        # toward n1 now has the local address) and nothing drops
        wait_until(lambda: n1.bgp_state() == "Established" and n1.bfd().get("state") == "UP",
                   timeout=90, what="Established with BFD Up", on_timeout=netlab.logs)  # fmt: skip
        wait_until(lambda: router_session(frr).get("status") == "up", timeout=30,
                   what="the router's BFD session (with local address) up")  # fmt: skip
        wait_until(lambda: (n1.bfd().get("uptime_s") or 0) >= 3, timeout=30,
                   what="BFD Up for 3 s")  # fmt: skip
        assert counters(frr) == (1, 0), neighbor(frr)
        assert neighbor(frr).get("bgpState") == "Established"
        assert len(established_lines(n1)) == 1, established_lines(n1)
        log = n1.proc.log_text()
        assert "session down" not in log and "dropping the BGP session" not in log, log[-4000:]
        assert n1.bfd()["binding"] == "ARMED"
        # because the agent had no BFD session toward the router while BGP was held, and
        # bfdd's session toward n1 never came up before the hand-over
        assert {agent for agent, _ in held} == {"NOT_STARTED"}, held
        assert "up" not in {router for _, router in held}, held

        # a real failure: n1's link is cut. n1's BFD expires and drops its BGP session (the
        # reason, not the hold timer), the router's bfdd sees n1 down and resets BGP for BFD
        mark = len(n1.proc.log_text())
        sw.set_link("pn1", False)
        wait_until(lambda: DROPPED in n1.proc.log_text()[mark:], timeout=15,
                   what="n1 drops BGP on BFD")  # fmt: skip
        wait_until(lambda: bfdd_status(frr, N1) == "down", timeout=15, what="bfdd: n1 down")
        wait_until(lambda: neighbor(frr).get("bgpState") != "Established", timeout=15,
                   what="the router's BGP session with n1 down")  # fmt: skip
        cut = n1.proc.log_text()[mark:]
        record = neighbor(frr)
        why = f"{record.get('lastResetDueTo', '')}: {record.get('lastNotificationReason', '')}"
        assert "bfd down" in why.lower(), why  # "BGP Notification send: Cease/BFD Down"
        assert cut.index("dropping the BGP session") < cut.index("session down"), cut[-3000:]
        assert "hold timer" not in cut.lower(), cut[-3000:]
        sw.set_link("pn1", True)
        wait_until(lambda: n1.bgp_state() == "Established" and n1.bfd().get("state") == "UP",
                   timeout=90, what="back after the cut", on_timeout=netlab.logs)  # fmt: skip
        wait_until(lambda: counters(frr) == (2, 1), timeout=30, what="router counters 2/1")

        # a real failure of the router's BFD: bfdd killed. n1's detection expires and drops
        # BGP; BGP comes back without BFD (no bfdd answers) and stays up: a peer without BFD
        # must not block the adjacency (RFC 5882 4.1)
        mark = len(n1.proc.log_text())
        os.kill(frr.processes["bfdd"].pid, signal.SIGKILL)
        wait_until(lambda: DROPPED in n1.proc.log_text()[mark:], timeout=15,
                   what="n1 drops BGP on BFD")  # fmt: skip
        wait_until(lambda: n1.bgp_state() == "Established", timeout=90,
                   what="BGP back without the router's BFD")  # fmt: skip
        wait_until(lambda: n1.bfd().get("binding") == "WAITING", timeout=30,
                   what="binding waits for BFD")  # fmt: skip
        assert n1.bfd()["state"] != "UP"
    finally:
        n1.proc.stop(timeout=10)
