"""A falsely dead L2 owner that comes back: time until the LAN's client points at it again, and
how long two nodes answer for the VIP; before (the reference code, which did not announce
again after a refutation) and after, side by side in one run.

Per trial, on the namespaced LAN of tests/l2 (three ``vipcast.app.l2_standalone`` agents, a
bridge, a client sending a UDP request to each VIP every 20 ms), the owner n1 is frozen
(SIGSTOP) for FROZEN seconds: n2 takes the VIPs and announces them, the client's kernel
neighbour entries move to n2's MAC. Then SIGCONT. Each trial waits a random 0-5 s first
(seeded, the same for both variants), so that the freeze falls at a random phase of n1's
periodic announcement. Measured:

- relearn: from SIGCONT until the client's neighbour entries for both VIPs hold n1's MAC
  again (``ip -j neigh``, polled every 10 ms; None: not within RELEARN_LIMIT);
- double answers: a second client-like namespace ("asker", not the client: its answers must
  not teach the client) sends a broadcast ARP request for the IPv4 VIP every 20 ms, each from
  its own sender address; counted are the requests sent after SIGCONT that both n1 and n2
  answered, and the last such request's time after SIGCONT.

The announcement period is the default (5 s): before, the client came back only at n1's next
periodic announcement (or at once, when that fell due while n1 was frozen) — the timing is
the period's phase. The reference is the ``src`` tree of ``--reference`` (default: main just
before the change, 4a700f2) extracted with ``git archive``.

    sudo .venv/bin/python bench/l2_false_death.py [--trials 8] [--json bench/l2_false_death.json]
    sudo .venv/bin/python bench/l2_false_death.py --agents [--json bench/l2_false_death_agents.json]

``--agents`` runs the same freeze with full ``vipcast agent``s (data plane, health checks; one
IPv4 VIP, an HTTP client every 50 ms) and measures the relearn only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "l2"))

from agent_lan import VIP as AGENT_VIP
from agent_lan import AgentLan
from l2_lan import PYTHON, VIP4, VIP6, L2Lan
from test_handover import ARP_PROBER, arp_exchanges

from vipcast.lab.netns import Topology, wait_until

ROOT = Path(__file__).resolve().parent.parent
FROZEN = 1.5
RELEARN_LIMIT = 8.0
REFERENCE = "4a700f2"


def neighbours(lan: L2Lan) -> dict[str, str]:
    found: dict[str, str] = {}
    for family in ("-4", "-6"):
        for entry in lan.client.ip_json(family, "neigh", "show", "dev", "eth0"):
            if entry.get("dst") in (VIP4, VIP6) and entry.get("lladdr") and (
                "FAILED" not in entry.get("state", [])
            ):
                found[entry["dst"]] = str(entry["lladdr"])
    return found


def trial(lan: L2Lan, asker_mac: str, phase: float) -> dict[str, Any]:
    n1, n2 = lan.macs["n1"], lan.macs["n2"]
    wait_until(lambda: neighbours(lan) == {VIP4: n1, VIP6: n1}, timeout=15, interval=0.05,
               what="client at n1")
    capture, pcap = lan.start_capture()
    asker = lan.topo["asker"].spawn(
        [PYTHON, "-c", ARP_PROBER, VIP4, "10.100.0.0", "0.02",
         str(phase + FROZEN + RELEARN_LIMIT + 30)],
        name=f"asker{len(lan.topo.processes)}",
    )
    # n1's periodic announcement (every 5 s) is what brought the client back before: freeze
    # at a random phase of it, or back-to-back trials of equal length lock onto one phase
    time.sleep(0.5 + phase)
    agent = lan.agents["n1"]
    stopped = time.time()
    os.killpg(agent.pid, signal.SIGSTOP)
    try:
        wait_until(lambda: sorted(lan.owned("n2") or []) == sorted([VIP4, VIP6]), timeout=20,
                   interval=0.02, what="n2 owns")
        wait_until(lambda: neighbours(lan) == {VIP4: n2, VIP6: n2}, timeout=10, interval=0.02,
                   what="client at n2")
        time.sleep(max(0.0, stopped + FROZEN - time.time()))
    finally:
        thawed = time.time()
        os.killpg(agent.pid, signal.SIGCONT)
    relearn = None
    while time.time() < thawed + RELEARN_LIMIT:
        if neighbours(lan) == {VIP4: n1, VIP6: n1}:
            relearn = time.time() - thawed
            break
        time.sleep(0.01)
    lan.wait_owner("n1", timeout=20)
    time.sleep(1.0)
    os.killpg(asker.pid, signal.SIGTERM)
    asker.popen.wait(10)
    capture.stop()  # drained first (tests/l2/l2_lan.Capture)
    after = [(t, macs) for t, macs, _ in arp_exchanges(pcap, asker_mac) if t > thawed]
    doubles = [t for t, macs in after if macs == {n1, n2}]
    return {
        "phase_s": round(phase, 3),
        "relearn_s": None if relearn is None else round(relearn, 3),
        "double_answered_requests": len(doubles),
        "last_double_after_sigcont_s": round(doubles[-1] - thawed, 3) if doubles else None,
        "requests_after_sigcont": len(after),
        "unanswered_after_sigcont": sum(1 for _, macs in after[:-1] if not macs),
    }


def variant(name: str, src: Path, trials: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    with Topology(f"vc-{os.getpid()}-fd{name[0]}") as topo:
        lan = L2Lan(topo)
        lan.agent_env = env
        lan.build()
        asker = topo.add_netns("asker")
        topo.attach_to_bridge(lan.lan, "br0", "p-asker", asker, "eth0")
        asker_mac = asker.ip_json("link", "show", "dev", "eth0")[0]["address"]
        lan.start_all()
        for vip in (VIP4, VIP6):
            lan.start_probe(vip, period=0.02, duration=trials * 40.0)
        samples = []
        phases = random.Random(f"l2-false-death-{trials}")  # the same phases for both variants
        for number in range(trials):
            sample = trial(lan, asker_mac, phases.uniform(0.0, 5.0))
            print(f"{name} trial {number + 1}: {sample}", flush=True)
            samples.append(sample)
    relearned = [s["relearn_s"] for s in samples if s["relearn_s"] is not None]
    return {
        "src": str(src),
        "samples": samples,
        "relearn_median_s": round(statistics.median(relearned), 3) if relearned else None,
        "relearn_max_s": max(relearned) if relearned else None,
        "not_relearned_within_limit": len(samples) - len(relearned),
        "double_answered_requests_median": statistics.median(
            s["double_answered_requests"] for s in samples),
        "double_answered_requests_max": max(s["double_answered_requests"] for s in samples),
    }


def agent_variant(name: str, src: Path, trials: int) -> dict[str, Any]:
    """The same freeze with full ``vipcast agent``s (tests/l2/agent_lan.py: data plane, health
    checks, one IPv4 VIP, HTTP client every 50 ms); relearn only."""
    with Topology(f"vc-{os.getpid()}-fa{name[0]}") as topo:
        lan = AgentLan(topo).build()
        saved = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = str(src)  # the agents' code (they inherit the environment)
        try:
            lan.start_all()
        finally:
            if saved is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = saved
        owner, taker = lan.candidates()[:2]
        lan.wait_sole_owner(owner)
        lan.start_probe(period=0.05, duration=trials * 40.0)

        def client_at() -> str | None:
            for entry in lan.client.ip_json("-4", "neigh", "show", "dev", "eth0"):
                if entry.get("dst") == AGENT_VIP and entry.get("lladdr") and (
                    "FAILED" not in entry.get("state", [])
                ):
                    return str(entry["lladdr"])
            return None

        phases = random.Random(f"l2-false-death-agents-{trials}")
        samples: list[dict[str, Any]] = []
        for number in range(trials):
            wait_until(lambda: client_at() == lan.macs[owner], timeout=20, interval=0.05,
                       what="client at the owner")
            phase = phases.uniform(0.0, 5.0)
            time.sleep(0.5 + phase)
            pid = lan.agents[owner].pid
            stopped = time.time()
            os.killpg(pid, signal.SIGSTOP)
            try:
                wait_until(lambda: client_at() == lan.macs[taker], timeout=20, interval=0.02,
                           what="client at the taker")
                time.sleep(max(0.0, stopped + FROZEN - time.time()))
            finally:
                thawed = time.time()
                os.killpg(pid, signal.SIGCONT)
            relearn = None
            while time.time() < thawed + RELEARN_LIMIT:
                if client_at() == lan.macs[owner]:
                    relearn = time.time() - thawed
                    break
                time.sleep(0.01)
            lan.wait_sole_owner(owner)
            sample = {"phase_s": round(phase, 3),
                      "relearn_s": None if relearn is None else round(relearn, 3)}
            print(f"agents {name} trial {number + 1}: {sample}", flush=True)
            samples.append(sample)
    relearned = [s["relearn_s"] for s in samples if s["relearn_s"] is not None]
    return {
        "samples": samples,
        "relearn_median_s": round(statistics.median(relearned), 3) if relearned else None,
        "relearn_max_s": max(relearned) if relearned else None,
        "not_relearned_within_limit": len(samples) - len(relearned),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--reference", default=REFERENCE)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--agents", action="store_true",
                        help="full vipcast agents (tests/l2/agent_lan.py) instead of the "
                        "standalone responder")
    args = parser.parse_args()
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_1min_start": os.getloadavg()[0],
        "frozen_s": FROZEN,
        "relearn_limit_s": RELEARN_LIMIT,
        "announce_period_s": 5.0,
        "reference": args.reference,
        "head": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                               capture_output=True, text=True, check=True).stdout.strip(),
    }
    with tempfile.TemporaryDirectory(prefix="vc-fd-ref-") as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.reference, "src"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        run = agent_variant if args.agents else variant
        report["mode"] = "vipcast agent" if args.agents else "vipcast.app.l2_standalone"
        report["before"] = run("before", Path(tmp) / "src", args.trials)
    report["after"] = run("after", ROOT / "src", args.trials)
    report["load_1min_end"] = os.getloadavg()[0]
    before, after = report["before"], report["after"]
    if before["relearn_median_s"] and after["relearn_median_s"]:
        report["relearn_median_ratio_after_over_before"] = round(
            after["relearn_median_s"] / before["relearn_median_s"], 4)
    text = json.dumps(report, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
