"""The real ``vipcast agent`` with BFD and L2 against FRR in namespaces (see :mod:`agentlab`).

One lab, in order: BFD comes up with the BGP session; ``vipcast status`` (JSON and tables) shows
the BFD session and the L2 owner and membership; ``/metrics`` carries BGP, BFD and L2 series and
still does after a reload (nothing registered twice); n1's link is cut behind the bridge: the
router's BGP session to n1 drops and its kernel route loses n1's nexthop within BFD time, n1's
agent drops its BGP session on BFD down, n2's membership sees n1 dead; the link comes back and
everything returns.
"""

from __future__ import annotations

import re
import shutil
from typing import Any

import pytest
from agentlab import L2_VIP, AgentNode, wait_agents_up, write_config
from bfdecmp import (
    NODES,
    TEST_INTERVAL_MS,
    TEST_MULT,
    bfdd_status,
    build,
    nexthops,
    start_router,
    trial,
)

from vipcast.lab.netns import Topology, wait_until

pytestmark = [
    pytest.mark.netns,
    pytest.mark.interop,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("/usr/lib/frr/bfdd") is None, reason="FRR not installed"),
]


def metric(text: str, name: str, labels: str = "") -> float | None:
    """The value of one sample of the prometheus text, or None."""
    pattern = re.escape(name) + (re.escape("{" + labels + "}") if labels else r"(?:\{\})?")
    found = re.search(rf"^{pattern} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def test_agent_bfd_status_metrics_and_node_cut(netlab: Topology) -> None:
    r, sw, nodes = build(netlab)
    # the tests' BFD timers both ways (300 ms x 5: bfdecmp.LOADED says why), not the benches'
    frr = start_router(netlab, r, TEST_INTERVAL_MS, TEST_MULT)
    config = netlab.workdir / "objects.yaml"
    write_config(config, bfd_interval_ms=TEST_INTERVAL_MS, bfd_multiplier=TEST_MULT)
    agents = [AgentNode.start(netlab, ns, short, config) for short, ns in nodes.items()]
    n1, n2 = agents
    try:
        # BFD is brought up with the BGP session, on both sides
        wait_agents_up(agents)
        wait_until(lambda: nexthops(r) == set(NODES.values()), timeout=60, what="ECMP route",
                   on_timeout=netlab.logs)  # fmt: skip
        wait_until(lambda: all(bfdd_status(frr, a) == "up" for a in NODES.values()),
                   timeout=30, what="BFD up on the router")  # fmt: skip

        # JSON status: the negotiated session and the L2 view. The 300 ms intervals follow Up
        # through Poll Sequences (RFC 5880 §6.8.3: 1 s while not Up): bfdd's "up" does not
        # say that the agent has taken bfdd's Final yet (CI once read tx 1000 here), so wait,
        # bounded, for n1's Poll Sequence to be done, then check the values exactly
        def negotiated() -> dict[str, Any] | None:
            bfd: dict[str, Any] = n1.status()["bfd"]["r"]
            return bfd if bfd["state"] == "UP" and bfd["polling"] is False else None

        def last_seen() -> str:
            return f"{n1.bfd()}\n{n1.proc.log_text()[-3000:]}"

        bfd = wait_until(negotiated, timeout=30, what="n1's BFD Up, Poll Sequence done",
                         on_timeout=last_seen)  # fmt: skip
        assert bfd["state"] == "UP" and bfd["peer"] == "192.0.2.1"
        interval, detection = TEST_INTERVAL_MS, TEST_INTERVAL_MS * TEST_MULT
        assert bfd["tx_interval_ms"] == interval and bfd["rx_interval_ms"] == interval
        assert bfd["detect_mult"] == TEST_MULT and bfd["remote_detect_mult"] == TEST_MULT
        assert bfd["detection_time_ms"] == detection and bfd["uptime_s"] is not None
        wait_until(lambda: n1.status()["l2"]["membership"]["quorum"], timeout=30,
                   what="L2 quorum on n1")  # fmt: skip
        l2 = n1.status()["l2"]
        assert l2["membership"]["alive"] == ["n1", "n2"]
        (vip,) = l2["vips"]
        assert vip["ip"] == L2_VIP and vip["owner"] in ("n1", "n2")
        owner = vip["owner"]
        assert (n1 if owner == "n1" else n2).status()["l2"]["vips"][0]["answering_here"]
        assert n2.status()["l2"]["vips"][0]["owner"] == owner  # both views agree

        # the CLI renders the same as tables, and --json passes the document through
        text = n1.cli("status", "--address", "127.0.0.1:9473")
        for needle in ("BGP sessions of n1", "BFD sessions of n1", "192.0.2.1", "UP",
                       "L2 VIPs", L2_VIP, "2/2 alive, quorum", "n2"):  # fmt: skip
            assert needle in text, (needle, text)
        assert '"bfd"' in n1.cli("status", "--json", "--address", "127.0.0.1:9473")

        # /metrics carries BGP, BFD and L2 series; a reload registers nothing twice
        def metrics_ok() -> bool:
            text = n1.get("/metrics")
            return (
                metric(text, "vipcast_bfd_session_up", 'peer="192.0.2.1"') == 1.0
                and metric(text, "vipcast_l2_members_alive") == 2.0
                and metric(text, "vipcast_l2_quorum") == 1.0
                and "vipcast_bgp" in text
            )

        wait_until(metrics_ok, timeout=20, what="metrics")
        uptime = n1.status()["bfd"]["r"]["uptime_s"]
        # one more service: both agents reload and re-plan
        write_config(config, extra=1, bfd_interval_ms=TEST_INTERVAL_MS, bfd_multiplier=TEST_MULT)
        wait_until(lambda: n1.status()["peers"][0]["prefixes_advertised"] == 2, timeout=60,
                   what="reload picked up")  # fmt: skip
        wait_until(metrics_ok, timeout=20, what="metrics after reload")
        after = n1.status()["bfd"]["r"]
        assert after["state"] == "UP" and after["uptime_s"] >= uptime  # not restarted
        assert n1.proc.alive() and n2.proc.alive()
        assert "Duplicated timeseries" not in n1.proc.log_text()

        # cut n1 behind the bridge: the router drops n1 within BFD time, not the hold time.
        # What the cut does is judged from here on (a start without a BGP flap is
        # test_bgp_bfd_start.py's question)
        before = {a.name: len(a.proc.log_text()) for a in agents}
        router = frr.neighbors()
        dropped = router[NODES["n1"]].get("connectionsDropped", 0)
        dropped_n2 = router[NODES["n2"]].get("connectionsDropped", 0)
        n2_bfd = n2.bfd()
        assert n2_bfd["state"] == "UP", n2_bfd
        reasons: dict[str, str] = {}
        # the link stays cut until n1's own BFD saw the router vanish too (n1 and the router
        # detect independently; a loaded n1 may come after the router); then restored, and
        # trial waits for both next hops
        got = trial(r, sw, frr, "n1", reasons=reasons,
                    also=lambda: "BFD: peer r down" in n1.proc.log_text()[before["n1"]:])
        # behaviour, not speed (bench/bfd_failover.py has the figures): bfdd declared n1 down
        # and the router dropped its next hop while the link was cut (15 s deadline), and it
        # was BFD that reset the BGP session, not the 9 s hold timer
        assert "route" in got and "bfdd" in got, got
        assert "bfd down" in reasons["bgp"].lower(), (reasons, got)  # Cease/BFD Down sent
        # n1's own BFD saw the router vanish and made its speaker drop the BGP session
        log = n1.proc.log_text()[before["n1"] :]
        assert "BFD: peer r down" in log, log[-3000:]
        # n2 was not disturbed by the cut: no BFD down in its log since, the same BFD session
        # Up throughout (uptime kept counting, last diagnostic unchanged), and the router did
        # not reset its BGP session
        log = n2.proc.log_text()[before["n2"] :]
        assert "BFD: peer" not in log and "session down" not in log, log[-3000:]
        wait_agents_up(agents, timeout=60)
        # n1's BFD session was closed with its BGP session and a new one started at the
        # next Established
        log = n1.proc.log_text()[before["n1"] :]
        steps = ("dropping the BGP session", "BGP left Established: session closed",
                 "BGP Established: added r")  # fmt: skip
        assert all(step in log for step in steps), log[-3000:]
        assert [log.index(step) for step in steps] == sorted(log.index(step) for step in steps)
        after_n2 = n2.bfd()
        assert after_n2["state"] == "UP" and after_n2["last_diag"] == n2_bfd["last_diag"]
        assert after_n2["uptime_s"] >= n2_bfd["uptime_s"] + got["bfdd"], (n2_bfd, after_n2)
        router = frr.neighbors()
        assert router[NODES["n2"]].get("connectionsDropped", 0) == dropped_n2, router
        # the router's BGP session with n1 went down and came back (FRR counts drops)
        assert router[NODES["n1"]].get("connectionsDropped", 0) > dropped
    finally:
        for agent in agents:
            agent.proc.stop(timeout=10)


def test_membership_sees_a_cut_node_dead(netlab: Topology) -> None:
    """L2 status on the surviving node while n1 is cut: n1 dead, no quorum (2 members, the
    documented split-brain rule), rendered in the table."""
    _router, sw, nodes = build(netlab)
    config = netlab.workdir / "objects.yaml"
    write_config(config)
    agents = [AgentNode.start(netlab, ns, short, config) for short, ns in nodes.items()]
    n2 = agents[1]
    try:
        wait_until(lambda: n2.try_status().get("l2", {}).get("membership", {}).get("quorum"),
                   timeout=60, what="quorum", on_timeout=netlab.logs)  # fmt: skip
        sw.set_link("pn1", False)
        # a generous deadline; how fast membership detects is bench/l2_failover.py's figure
        wait_until(lambda: n2.status()["l2"]["membership"]["peers"]["n1"]["state"] == "dead",
                   timeout=10, interval=0.05, what="n1 dead in n2's view")  # fmt: skip
        text = n2.cli("status", "--address", "127.0.0.1:9473")
        assert "NO QUORUM" in text and "dead" in text, text
        assert n2.status()["l2"]["vips"][0]["owner"] is None
        sw.set_link("pn1", True)
        wait_until(lambda: n2.status()["l2"]["membership"]["quorum"], timeout=20,
                   what="quorum back")  # fmt: skip
    finally:
        for agent in agents:
            agent.proc.stop(timeout=10)
