"""Client-seen failover in the lab: BGP + BFD without and with node liveness, BGP hold timer
only, L2 owner SIGKILL, L2 owner link down — 10 trials each (``--trials``).

BGP (FRR router, 3 nodes, hold time 3 s, graceful restart on): a node loses power (agent
SIGKILLed, LAN cable pulled) while two clients send one new connection every 10 ms (timeout
0.2 s): one to the Cluster service ``web`` (backends on every node; those on the dead node
leave the others' NAT maps when the node membership declares the node dead, or, with
``bfd-no-liveness``, only when their health checks fail), one to the Local service ``web-local``
(backends on n1 and n2 only: routing alone). Measured: the time from the failure until the
router's kernel route lost the node's next hop, and until each client recovered (start of
the first successful request after the last failed one). The victim alternates n1/n2; it is
brought back before the next trial.

L2 (3 nodes, no router BGP): the owner of the ``web`` VIP (the node whose MAC the router has
in its neighbour table) is SIGKILLed, or its cable pulled with the agent left running.
Measured: until the router's neighbour entry for the VIP names another MAC, and the client's
recovery.

    sudo .venv/bin/python bench/lab_failover.py [--trials 10] [--json bench/lab_failover.json]

Everything runs in namespaces vc-<pid>-lf*, removed afterwards. Prints a table (median, max).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vipcast.app.lab.demo import power_off, recovery_time, send, watch_next_hop_gone
from vipcast.app.lab.topology import (
    LabOptions,
    LabState,
    build,
    node_v4,
    router_of,
    start_agent,
    wait_sessions,
)
from vipcast.lab.netns import Netns, Topology, wait_until
from vipcast.lab.workload import ClientLoad, Sample

WEB, LOCAL = "192.0.2.3", "192.0.2.4"
INTERVAL, TIMEOUT = 0.01, 0.2


@dataclass
class Figures:
    """Seconds per trial for one scenario (None: did not happen within the trial)."""

    router: list[float | None] = field(default_factory=list)
    client: list[float | None] = field(default_factory=list)
    client_local: list[float | None] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    #: trials done again because a client was not sending before the failure
    discarded: int = 0


#: seconds a client must have been sending before the failure for a trial to count
LEAD = 0.5


def _sending_before(samples: list[Sample], at: float) -> bool:
    return any(s.t <= at - LEAD for s in samples)


def lab(opts: LabOptions) -> tuple[Topology, LabState]:
    topo, state = build(opts)
    if opts.mode == "bgp":
        wait_sessions(router_of(topo, state), opts.nodes, timeout=60)
    return topo, state


def bring_back(topo: Topology, state: LabState, opts: LabOptions, node: str,
               restart_agent: bool) -> None:
    """Plug the node's cable back in and start its agent again if it was killed."""
    topo["lan"].set_link(f"p{node[1:]}", True)
    if restart_agent:
        state.pids[f"{node}-agent"] = start_agent(topo, topo[node], opts, node).pid


def settle(client: Netns, url: str) -> None:
    """Wait until 30 requests in a row succeed (health checks have re-added every backend)."""
    wait_until(lambda: all(s.ok for s in send(client, url, 30, timeout=0.5)) or None,
               timeout=60, interval=0.5, what=f"{url} answers again")
    time.sleep(1.0)


def bgp_trials(bfd: bool, trials: int, workdir: Path, liveness: bool = True) -> Figures:
    tag = ("b" if bfd else "h") + ("" if liveness else "n")
    opts = LabOptions(nodes=3, bfd=bfd, prefix=f"vc-{os.getpid()}-lf{tag}",
                      workdir=workdir, hold_time=3, liveness=liveness)
    topo, state = lab(opts)
    figures = Figures()
    duration = 5.0 if bfd else 9.0
    with topo:
        router, client = topo["router"], topo["client"]
        trial = 0
        for attempt in range(3 * trials):
            if trial == trials:
                break
            victim = f"n{1 + attempt % 2}"
            router.wait_route(f"{WEB}/32", count=3, timeout=60)
            router.wait_route(f"{LOCAL}/32", count=2, timeout=60)
            settle(client, f"http://{WEB}/")
            web = ClientLoad(client, f"http://{WEB}/", duration=duration, interval=INTERVAL,
                             timeout=TIMEOUT)
            local = ClientLoad(client, f"http://{LOCAL}/", duration=duration,
                               interval=INTERVAL, timeout=TIMEOUT)
            time.sleep(2.0)
            kill_at = power_off(topo, state, victim, web.now)
            router_s = watch_next_hop_gone(
                router, f"{WEB}/32", node_v4(int(victim[1:])), since=kill_at, clock=web.now,
                until=duration)
            web_samples, local_samples = web.samples(), local.samples()
            shift = local.t0 - web.t0  # both loaders count from their own t0
            bring_back(topo, state, opts, victim, restart_agent=True)
            # on a loaded machine a loader's Python may start after the failure: such a trial
            # saw nothing of it (it would count as "recovered at once") and is done again
            if not (_sending_before(web_samples, kill_at)
                    and _sending_before(local_samples, kill_at - shift)):
                figures.discarded += 1
                print(f"  trial discarded: a client was not sending {LEAD} s before the "
                      "failure", file=sys.stderr)
                continue
            trial += 1
            figures.router.append(router_s)
            rec, failed = recovery_time(web_samples, kill_at)
            figures.client.append(rec)
            figures.failed.append(failed)
            figures.client_local.append(recovery_time(local_samples, kill_at - shift)[0])
            print(f"  {'bfd' if bfd else 'hold'}{'' if liveness else ' (no liveness)'} "
                  f"trial {trial}: {victim} router "
                  f"{fmt(figures.router[-1])} client {fmt(rec)} local "
                  f"{fmt(figures.client_local[-1])}", file=sys.stderr)
    return figures


def l2_owner(topo: Topology) -> tuple[str, str]:
    """(node, MAC) of the node the router resolves the web VIP to."""
    def owner() -> tuple[str, str] | None:
        neigh = topo["router"].ip_json("neigh", "show", WEB)
        macs = [n.get("lladdr") for n in neigh if n.get("lladdr")]
        for i in range(1, 4):
            mac = topo[f"n{i}"].ip_json("link", "show", "eth0")[0]["address"]
            if mac in macs:
                return f"n{i}", str(mac)
        return None
    found: tuple[str, str] = wait_until(owner, timeout=30, what="the router knows the owner")
    return found


def l2_trials(kind: str, trials: int, workdir: Path) -> Figures:
    opts = LabOptions(nodes=3, mode="l2", bfd=False, workdir=workdir,
                      prefix=f"vc-{os.getpid()}-lf{kind[0]}")
    topo, state = lab(opts)
    figures = Figures()
    with topo:
        router, client = topo["router"], topo["client"]
        for trial in range(trials):
            settle(client, f"http://{WEB}/")
            victim, mac = l2_owner(topo)
            load = ClientLoad(client, f"http://{WEB}/", duration=4.0, interval=INTERVAL,
                              timeout=TIMEOUT)
            time.sleep(1.0)
            kill_at = load.now()
            if kind == "sigkill":
                os.killpg(state.pids[f"{victim}-agent"], signal.SIGKILL)
            else:
                topo["lan"].set_link(f"p{victim[1:]}", False)
            figures.router.append(_neigh_moved(router, mac, kill_at, load.now, 4.0))
            rec, failed = recovery_time(load.samples(), kill_at)
            figures.client.append(rec)
            figures.failed.append(failed)
            bring_back(topo, state, opts, victim, restart_agent=kind == "sigkill")
            print(f"  l2 {kind} trial {trial + 1}: {victim} router "
                  f"{fmt(figures.router[-1])} client {fmt(rec)}", file=sys.stderr)
    return figures


def _neigh_moved(router: Netns, old_mac: str, since: float, clock: Callable[[], float],
                 until: float) -> float | None:
    while clock() < until:
        neigh = router.ip_json("neigh", "show", WEB)
        macs = {n.get("lladdr") for n in neigh if n.get("lladdr")}
        if macs and old_mac not in macs:
            return clock() - since
        time.sleep(0.01)
    return None


def _median(values: list[float | None]) -> float | None:
    ok = [v for v in values if v is not None]
    return statistics.median(ok) if ok else None


def fmt(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f} ms"


def stats(values: list[float | None]) -> tuple[str, str, int]:
    ok = [v for v in values if v is not None]
    if not ok:
        return "-", "-", len(values)
    return fmt(statistics.median(ok)), fmt(max(ok)), len(values) - len(ok)


LABELS = {
    "bfd-no-liveness": "(a0) BGP + BFD, no node liveness",
    "bfd": "(a) BGP + BFD 100 ms x 3",
    "hold": "(b) BGP hold timer 3 s",
    "sigkill": "(c) L2 owner SIGKILL",
    "linkdown": "(d) L2 owner link down",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--only", choices=list(LABELS), nargs="*")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    trials = min(args.trials, 50)
    wanted = args.only or list(LABELS)
    results: dict[str, Figures] = {}
    for name in wanted:
        workdir = Path(tempfile.mkdtemp(prefix="vc-bench-lf-"))
        workdir.chmod(0o755)
        try:
            if name in ("bfd", "bfd-no-liveness", "hold"):
                results[name] = bgp_trials(name != "hold", trials, workdir,
                                           liveness=name != "bfd-no-liveness")
            else:
                results[name] = l2_trials(name, trials, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"{'scenario':34} {'router (med/max)':>20} {'client Cluster (med/max)':>26} "
          f"{'client Local (med/max)':>24} {'missed':>6}")
    for name, f in results.items():
        r, c, lo = stats(f.router), stats(f.client), stats(f.client_local)
        local = f"{lo[0]} / {lo[1]}" if f.client_local else "n/a"
        print(f"{LABELS[name]:34} {r[0] + ' / ' + r[1]:>20} {c[0] + ' / ' + c[1]:>26} "
              f"{local:>24} {r[2] + c[2]:>6}")
    print("router: BGP = next hop gone from the router's kernel route; L2 = router's ARP "
          "entry for the VIP names another MAC. client: first success after the last failure.")
    ratios = {}
    if "bfd" in results and "bfd-no-liveness" in results:
        for what in ("client", "client_local", "router"):
            before = _median(getattr(results["bfd-no-liveness"], what))
            after = _median(getattr(results["bfd"], what))
            if before and after:
                ratios[what] = after / before
        print("node liveness, after / before (medians): " + ", ".join(
            f"{k} {v:.2f}" for k, v in ratios.items()))
    if args.json:
        args.json.write_text(json.dumps(
            {"trials": trials, "request_interval_s": INTERVAL, "request_timeout_s": TIMEOUT,
             "liveness_after_over_before": ratios,
             "results": {k: {"router_s": f.router, "client_cluster_s": f.client,
                             "client_local_s": f.client_local, "failed_requests": f.failed,
                             "discarded_trials": f.discarded}
                         for k, f in results.items()}}, indent=2) + "\n")


if __name__ == "__main__":
    main()
