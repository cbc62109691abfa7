"""A falsely dead L2 owner that comes back, on a real (namespaced) LAN with a real client.

The owner n1's agent is frozen (SIGSTOP) for longer than the stall tolerance: n2 and n3 declare
it dead, n2 takes the VIPs and announces them (gratuitous ARP, unsolicited NA), and the
client's kernel neighbour table moves to n2's MAC. When n1 runs again it refutes its death;
ownership returns to it (the owner choice is deterministic) and n2 stops answering. n1 never
lost the VIPs in its own view, so unless it announces them again the client goes on sending to
n2 — which no longer answers ARP/NDP for them — until its neighbour entry ages out (STALE,
DELAY, failed unicast probes: tens of seconds) or until n1's periodic announcement
(``--announce-period``, default 5 s) happens to come round.

The periodic announcement is set to 60 s here, so only n1's reaction to its refuted death can
move the client back within the test's bound: the test checks the product's reaction, not the
phase of a timer. (Before the re-announcement on refutation, this test failed: the client's
entries stayed at n2's MAC for the whole bound; see docs/l2.md, "A falsely dead owner".)
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from l2_lan import VIP4, VIP6, L2Lan, answers

from vipcast.lab.netns import wait_until

pytestmark = [pytest.mark.netns, pytest.mark.slow]

#: how long n1 stays frozen: well past the stall tolerance (0.17 s with Timers.lan(3)) and past
#: n2's announcement burst (3 x 0.2 s after it took the VIPs)
FROZEN = 1.5
#: the bound on the client's relearning after n1 runs again (generous: a loaded 2-core machine;
#: the figures are in bench/l2_false_death.py)
RELEARN_BOUND = 4.0


def neighbour(lan: L2Lan, vip: str) -> str | None:
    """The MAC in the client's kernel neighbour table for ``vip`` (None: no usable entry)."""
    family = "-6" if ":" in vip else "-4"
    for entry in lan.client.ip_json(family, "neigh", "show", "to", vip, "dev", "eth0"):
        if entry.get("lladdr") and "FAILED" not in entry.get("state", []):
            return str(entry["lladdr"])
    return None


def test_a_falsely_dead_owner_that_comes_back_wins_the_client_back(lan: L2Lan) -> None:
    lan.agent_args = ("--announce-period", "60")
    lan.start_all()
    n1, n2 = lan.macs["n1"], lan.macs["n2"]
    # the client talks to both VIPs all along (one UDP request every 20 ms each), so its
    # neighbour entries stay in use and are never flushed by the test
    probes = [lan.start_probe(vip, period=0.02, duration=30.0) for vip in (VIP4, VIP6)]
    for vip in (VIP4, VIP6):
        wait_until(lambda vip=vip: neighbour(lan, vip) == n1, timeout=10, interval=0.05,
                   what=f"client resolves {vip} to n1")
    capture, pcap = lan.start_capture()

    agent = lan.agents["n1"]
    stopped = time.time()
    os.killpg(agent.pid, signal.SIGSTOP)
    try:
        # n1 still reports owning (it is frozen): wait for n2's own report only
        wait_until(lambda: sorted(lan.owned("n2") or []) == sorted([VIP4, VIP6]), timeout=20,
                   interval=0.05, what="n2 owns the VIPs", on_timeout=lan.topo.logs)
        for vip in (VIP4, VIP6):
            wait_until(lambda vip=vip: neighbour(lan, vip) == n2, timeout=10, interval=0.05,
                       what=f"client follows {vip} to n2")
        time.sleep(max(0.0, stopped + FROZEN - time.time()))
    finally:
        thawed = time.time()
        os.killpg(agent.pid, signal.SIGCONT)

    # n1 refutes its death; the VIPs are its again everywhere, and n2 answers nothing
    lan.wait_owner("n1", timeout=20)
    relearned: dict[str, float] = {}
    deadline = thawed + RELEARN_BOUND
    while time.time() < deadline and len(relearned) < 2:
        for vip in (VIP4, VIP6):
            if vip not in relearned and neighbour(lan, vip) == n1:
                relearned[vip] = time.time() - thawed
        time.sleep(0.02)
    seen_at_end = {vip: neighbour(lan, vip) for vip in (VIP4, VIP6)}
    capture.stop()  # drained first: every frame the bridge carried is in the file
    for probe in probes:
        os.killpg(probe.pid, signal.SIGTERM)
        probe.popen.wait(10)

    assert set(relearned) == {VIP4, VIP6}, (
        f"after n1 ran again the client's neighbour entries stayed at {seen_at_end} "
        f"(n1 {n1}, n2 {n2}) for {RELEARN_BOUND} s"
    )
    print(f"client relearned n1 after the thaw: {relearned}")

    seen = answers(pcap)
    for vip in (VIP4, VIP6):
        frames = [a for a in seen if a.ip == vip]
        # while n1 was frozen n2 claimed the VIP (that is what moved the client)
        assert any(a.mac == n2 and stopped < a.time < thawed for a in frames), vip
        # the last word on the wire is n1's: after n2's last answer or announcement, n1
        # announced the VIP again
        last_n2 = max(a.time for a in frames if a.mac == n2)
        assert any(a.mac == n1 and a.gratuitous and a.time > last_n2 for a in frames), vip
        # n2 stops once it has read n1's refutation: two answerers only in that window
        # (bounded generously here; measured in bench/l2_false_death.py)
        assert last_n2 < thawed + RELEARN_BOUND, (vip, last_n2 - thawed)
        assert {a.mac for a in frames if a.time > thawed + RELEARN_BOUND} <= {n1}, vip
