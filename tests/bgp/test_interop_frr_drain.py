"""A node drain against FRR 8.4: GRACEFUL_SHUTDOWN first, the withdrawal after the grace.

Three agents announce one VIP (ECMP over three next hops). ``vipcast drain n3`` sets the Node
annotation in the object files; n3's agent re-announces with 65535:0 and FRR de-prefers that
path (it leaves the multipath, the kernel route drops the next hop) while it is still in the
RIB; after the grace n3 withdraws and reports "drained". ``vipcast undrain n3`` brings it back.
New connections under steady load through the whole drain: none fails, none is reset.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.bgp.test_interop_frr import NODES, Lab, build, write_config
from tests.bgp.test_interop_frr_weighted import add_traffic

from vipcast.lab.bgpconf import BgpPath
from vipcast.lab.netns import Netns, Process, Topology, wait_until

pytestmark = [
    pytest.mark.netns,
    pytest.mark.interop,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("/usr/lib/frr/bgpd") is None, reason="FRR not installed"),
]

VIP = "203.0.113.0/32"
GRACE = 8.0


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vipcast.cli.main", *args],
                          capture_output=True, text=True, check=True, timeout=60)


def start_with_grace(lab: Lab, name: str, grace: float = GRACE, quiet: float = 0.0) -> None:
    argv = [
        sys.executable, "-m", "vipcast.cli.main", "agent",
        "--config", str(lab.config), "--node", name,
        "--metrics-address", "127.0.0.1:9473",
        "--state-dir", str(lab.topo.workdir / f"state-{name}"),
        "--poll-interval", "0.3", "--log-level", "INFO", "--no-dataplane",
        "--drain-grace", str(grace), "--drain-quiet", str(quiet),
    ]  # fmt: skip
    lab.agents[name] = lab.topo.spawn(lab.nodes[name], argv, name=f"agent-{name}")


#: steady load: new connections at about 100/s for a bounded time, each answered by a node
LOAD = """
import collections, json, socket, sys, time
end = time.monotonic() + float(sys.argv[1])
t = {"ok": 0, "failed": 0, "resets": 0, "by_node": collections.Counter(), "errors": []}
while time.monotonic() < end:
    try:
        with socket.create_connection(("203.0.113.0", 80), timeout=3) as c:
            name = c.recv(64).decode()
        if name:
            t["ok"] += 1
            t["by_node"][name] += 1
            if t["ok"] == 1:
                print("first answer", flush=True)  # start_load() waits for it
        else:
            t["failed"] += 1
    except ConnectionResetError:
        t["resets"] += 1
    except OSError as exc:
        t["failed"] += 1
        t["errors"].append(repr(exc))
    time.sleep(0.01)
open(sys.argv[2], "w").write(json.dumps(t))
"""


def start_load(topo: Topology, client: Netns, seconds: float, result: Path) -> Process:
    """:data:`LOAD` for ``seconds`` (from its own start) in ``client``, returned once it has
    had its first answer: its interpreter's start-up takes seconds on a loaded machine, and a
    stop or drain before then would meet no traffic (``by_node["n3"] > 0`` could not hold)."""
    load = topo.spawn(client, [sys.executable, "-c", LOAD, str(seconds), str(result)],
                      name="load")
    wait_until(lambda: "first answer" in load.log_text(), timeout=60,
               what="the client load's first answer", on_timeout=load.log_text)
    return load


@dataclass(frozen=True)
class LoadedLab:
    """Three agents announcing VIP (ECMP) under the steady client load of :data:`LOAD`."""

    lab: Lab
    #: node -> its address (the BGP next hop)
    ips: dict[str, str]
    load: Process
    result: Path

    def totals(self, timeout: float) -> dict[str, Any]:
        """The load's counts, once it has finished (within ``timeout`` seconds)."""
        wait_until(lambda: self.load.popen.poll() is not None, timeout=timeout,
                   what="load finished")
        totals: dict[str, Any] = json.loads(self.result.read_text())
        return totals


def loaded_lab(topo: Topology, *, grace: float, quiet: float, seconds: float) -> LoadedLab:
    """FRR (hashing ECMP on L4 ports) and three agents with this drain grace and quiet period
    announcing VIP; once FRR has the three paths, new connections at about 100/s for
    ``seconds``, and 3 s of that steady state before this returns."""
    lab = build(topo, ["n1", "n2", "n3"])
    lab.router.sysctl("net.ipv4.fib_multipath_hash_policy", 1)  # inside the router netns only
    client = add_traffic(lab)
    write_config(lab.config, ["web"], ["n1", "n2", "n3"])
    for name in lab.nodes:
        start_with_grace(lab, name, grace=grace, quiet=quiet)
    ips = {n: NODES[n][0] for n in lab.nodes}
    lab.frr.wait_established(*ips.values(), timeout=60)
    lab.router.wait_route(VIP, gateways=sorted(ips.values()), timeout=60)
    result = topo.workdir / "load.json"
    load = start_load(topo, client, seconds, result)
    time.sleep(3)  # steady state before the drain
    return LoadedLab(lab, ips, load, result)


def test_drain_de_prefers_then_withdraws_then_undrains(netlab: Topology) -> None:
    loaded = loaded_lab(netlab, grace=GRACE, quiet=0.0, seconds=GRACE + 14)
    lab, ips = loaded.lab, loaded.ips

    cli("drain", "n3", "--config", str(lab.config))
    drained_at = time.monotonic()

    # n3's path is still in the RIB with 65535:0 but no longer used: de-preferred
    def de_preferred() -> BgpPath | None:
        paths = lab.frr.route(VIP)
        mine = [p for p in paths if p.nexthop == ips["n3"]]
        if len(paths) != 3 or not mine:
            return None
        path = mine[0]
        gshut = any(c in ("graceful-shutdown", "65535:0") for c in path.communities)
        return path if gshut and not path.best and not path.multipath else None

    path = wait_until(de_preferred, timeout=GRACE, what="n3's path de-preferred in FRR's RIB",
                      on_timeout=lambda: f"paths: {lab.frr.route(VIP)}")
    print("de-preferred path:", path)
    # the kernel route drops n3's next hop before the withdrawal
    lab.router.wait_route(VIP, gateways=sorted([ips["n1"], ips["n2"]]), timeout=GRACE)
    assert len(lab.frr.route(VIP)) == 3, "withdrawn too early"

    # after the grace: withdrawn, and the agent reports drained
    lab.frr.wait_paths(VIP, 2, timeout=GRACE + 30)
    assert time.monotonic() - drained_at >= GRACE - 1.0
    wait_until(lambda: lab.status("n3").get("drain") == "drained", timeout=30,
               what="n3 reports drained")

    # the steady load across the whole drain: no failed new connection, no reset
    totals = loaded.totals(timeout=GRACE + 60)
    print("load during the drain:", totals)
    assert totals["failed"] == 0 and totals["resets"] == 0, totals
    assert totals["by_node"].get("n3", 0) > 0  # n3 served before the drain
    assert totals["ok"] > 300

    # undrain: health verified (no data plane: nothing gates), announced plainly again
    cli("undrain", "n3", "--config", str(lab.config))
    lab.frr.wait_paths(VIP, 3, timeout=30)
    lab.router.wait_route(VIP, gateways=sorted(ips.values()), timeout=30)
    wait_until(lambda: lab.status("n3").get("drain") == "serving", timeout=30,
               what="n3 serving again")
    assert not any("65535:0" in p.communities or "graceful-shutdown" in p.communities
                   for p in lab.frr.route(VIP))


def test_drain_ends_early_once_the_routers_moved(netlab: Topology) -> None:
    """A long grace (120 s) and a quiet period of 3 s: n3's nftables counter of new
    connections to the VIP stops once FRR de-prefers its path, and n3 withdraws then, long
    before the grace; still no failed or reset new connection."""
    grace, quiet = 120.0, 3.0
    loaded = loaded_lab(netlab, grace=grace, quiet=quiet, seconds=16)
    lab, ips = loaded.lab, loaded.ips

    cli("drain", "n3", "--config", str(lab.config))
    drained_at = time.monotonic()
    # de-preferred first (the kernel route drops n3 while its path is in the RIB) ...
    lab.router.wait_route(VIP, gateways=sorted([ips["n1"], ips["n2"]]), timeout=30)
    assert len(lab.frr.route(VIP)) == 3, "withdrawn before the routers moved"
    # ... then withdrawn once the counter was quiet, long before the grace
    lab.frr.wait_paths(VIP, 2, timeout=60)
    took = time.monotonic() - drained_at
    wait_until(lambda: lab.status("n3").get("drain") == "drained", timeout=30,
               what="n3 reports drained")
    log = lab.agents["n3"].log_text()
    assert "routers moved" in log, log[-2000:]
    print(f"withdrawn {took:.1f}s after the drain (grace {grace:g}s):",
          next(line for line in log.splitlines() if "routers moved" in line))
    assert took < grace / 2

    totals = loaded.totals(timeout=60)
    print("load during the drain:", totals)
    assert totals["failed"] == 0 and totals["resets"] == 0, totals
    assert totals["by_node"].get("n3", 0) > 0 and totals["ok"] > 300
    # the counter's table is gone with the phase
    out = lab.nodes["n3"].run(["nft", "list", "tables"], check=True).stdout
    assert "vipcast_drain" not in out
