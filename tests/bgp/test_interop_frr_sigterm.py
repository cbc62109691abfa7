"""SIGTERM of an agent against FRR 8.4: withdraw, then NOTIFICATION Cease, then exit.

Three agents announce one VIP; under steady load (new connections through the router),
n3's agent gets SIGTERM. FRR's own log (``debug bgp updates in``) shows the withdrawal of
the VIP from n3 *before* the session goes down on the Cease (not on the hold timer, no BFD
here): the path leaves by the UPDATE. The other nodes keep serving: no failed new request.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import time

import pytest
from tests.bgp.test_interop_frr import NODES, build, write_config
from tests.bgp.test_interop_frr_drain import start_load
from tests.bgp.test_interop_frr_weighted import add_traffic

from vipcast.lab.netns import Topology, wait_until

pytestmark = [
    pytest.mark.netns,
    pytest.mark.interop,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("/usr/lib/frr/bgpd") is None, reason="FRR not installed"),
]

VIP = "203.0.113.0/32"


def test_sigterm_withdraws_then_ceases_under_load(netlab: Topology) -> None:
    lab = build(netlab, ["n1", "n2", "n3"])
    lab.router.sysctl("net.ipv4.fib_multipath_hash_policy", 1)  # inside the router netns only
    client = add_traffic(lab)
    write_config(lab.config, ["web"], ["n1", "n2", "n3"])
    for name in lab.nodes:
        lab.start_agent(name)
    ips = {n: NODES[n][0] for n in lab.nodes}
    lab.frr.wait_established(*ips.values(), timeout=60)
    lab.router.wait_route(VIP, gateways=sorted(ips.values()), timeout=60)
    # FRR logs every UPDATE it reads (debug level, on its own stdout log)
    lab.frr.configure("log stdout debugging")
    lab.frr.vtysh("debug bgp updates in")

    result = lab.topo.workdir / "load.json"
    load = start_load(lab.topo, client, 10, result)  # returns at its first answer
    time.sleep(3)  # steady state before the stop

    agent = lab.agents["n3"]
    agent.signal(signal.SIGTERM)
    wait_until(lambda: not agent.alive(), timeout=30, what="n3's agent exits on SIGTERM")
    assert agent.popen.returncode == 0
    lab.router.wait_route(VIP, gateways=sorted([ips["n1"], ips["n2"]]), timeout=30)
    lab.frr.wait_paths(VIP, 2, timeout=30)

    # FRR's log: the withdrawal from n3 first, then the session down on the Cease. The agent
    # exited once its Cease was written; bgpd may read it after the test saw the paths
    # change (the withdrawal came first), so the session's end is waited for, bounded
    n3 = re.escape(ips["n3"])
    down_line = rf"neighbor {n3}.*Down BGP Notification received"
    wait_until(lambda: re.search(down_line, lab.frr.processes["bgpd"].log_text()), timeout=30,
               what="FRR logs n3's session down",
               on_timeout=lambda: lab.frr.processes["bgpd"].log_text()[-3000:])  # fmt: skip
    log = lab.frr.processes["bgpd"].log_text()
    withdrawn = re.search(rf"{n3}.*rcvd UPDATE about {re.escape(VIP)}.*withdrawn", log)
    cease = re.search(rf"NOTIFICATION: received from neighbor {n3} 6/2 .*", log)
    down = re.search(down_line, log)
    assert withdrawn is not None, log[-3000:]
    assert cease is not None and down is not None, log[-3000:]
    assert withdrawn.start() < cease.start() < down.start(), log[-3000:]
    assert "hold timer" not in log.lower() and "bfd" not in log[withdrawn.start():].lower()
    print("FRR:", withdrawn.group(0).strip(), "|", cease.group(0).strip())
    agent_log = agent.log_text()
    assert agent_log.index("withdrawing 1 route") < agent_log.index("Cease")

    # the load across the stop: the other nodes serve, no new request fails
    wait_until(lambda: load.popen.poll() is not None, timeout=60, what="load finished")
    totals = json.loads(result.read_text())
    print("load across the SIGTERM:", totals)
    assert totals["failed"] == 0 and totals["resets"] == 0, totals
    assert totals["by_node"].get("n3", 0) > 0 and totals["ok"] > 200
