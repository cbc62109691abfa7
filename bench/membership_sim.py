"""Membership at scale, simulated: the real SWIM code (vipcast.proto.membership) for N members
in one process on a fake clock and a network model, beside the all-to-all heartbeat it replaced
and beside the same protocol run with hashicorp memberlist's published LAN defaults.

    python bench/membership_sim.py [--sizes 1000] [--loss-window 5] [--json bench/membership.json]

Per run: the members start from a converged table (lab.membership_sim.warm_start), run idle,
then one member's serving set changes and KILLS members crash one after the other. Measured:
per dead member the time until each survivor stops seeing it (p50 / p99 over all survivor-victim
pairs, and the time it is known dead everywhere), the time each member sees the new serving set,
datagrams and bytes (UDP payload + 28 bytes of headers) each member sends per second over the
whole run, and false deaths (a member that is up dropped from someone's view). Separate runs with
1 % and 5 % loss count false deaths. The all-to-all heartbeat is simulated at ALLTOALL_N members
(N² datagrams per interval); its per-node cost at larger N is exact arithmetic, printed as such.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from membership_alltoall import AllToAll

from vipcast.lab.membership_sim import (
    Member,
    Network,
    Simulation,
    summarize,
    swim_members,
    warm_start,
)
from vipcast.proto.membership import Timers

KEY = b"bench-membership-key"
KILLS = 3
ALLTOALL_N = 50
#: the old protocol's constants (runtime/l2/driver.py before the change)
ALLTOALL_INTERVAL = 0.1
#: a heartbeat's bytes: 4 magic + 2 + name + 16 counters + 2 count + 32 HMAC, + 5 per IPv4 VIP
ALLTOALL_BASE = 4 + 2 + 6 + 16 + 2 + 32
UDP_IP = 28


def members_of(kind: str, n: int, seed: int) -> tuple[dict[str, Member], float]:
    """The members and how long they need to settle."""
    if kind == "alltoall":
        names = frozenset(f"n{i:05d}" for i in range(n))
        return {
            name: AllToAll(name, names, KEY, incarnation=i + 1)  # type: ignore[misc]
            for i, name in enumerate(sorted(names))
        }, 1.0
    timers = Timers.memberlist_lan() if kind == "memberlist" else Timers.lan(n)
    members = swim_members(n, timers, seed=seed, key=KEY)
    warm_start(members)
    return members, 2.0 if kind == "memberlist" else 1.0


def run(kind: str, n: int, *, seed: int = 1, loss: float = 0.0, idle: float = 1.0,
        kills: int = KILLS, spacing: float = 0.3, horizon: float = 1.5) -> dict[str, object]:
    started = time.process_time()
    members, settle = members_of(kind, n, seed)
    sim = Simulation(members, Network(loss=loss), seed=seed)
    sim.start_all(stagger=0.1, announce=kind == "alltoall")
    sim.run_until(settle)
    sim.reset_traffic()
    begin = sim.now
    sim.run_until(begin + idle)
    idle_bytes = [t.bytes / idle for t in sim.sent.values()]
    idle_packets = [t.packets / idle for t in sim.sent.values()]
    rng = random.Random(seed)
    names = sorted(members)
    owner, *victims = rng.sample(names, kills + 1)
    changed_at = sim.set_serving(owner, ["198.51.100.7"])
    killed: dict[str, float] = {}
    for victim in victims:
        killed[victim] = sim.kill(victim)
        sim.run_until(sim.now + spacing)
    sim.run_until(sim.now + horizon)
    elapsed = sim.now - begin
    survivors = sorted(sim.up)
    pairs: list[float] = []
    everywhere: list[float] = []
    undetected = 0
    for victim, at in killed.items():
        times = [
            sim.lost_sight[(o, victim)] - at for o in survivors if (o, victim) in sim.lost_sight
        ]
        undetected += len(survivors) - len(times)
        pairs.extend(times)
        if len(times) == len(survivors):
            everywhere.append(max(times))
    seen = [
        t - changed_at
        for (o, who), t in sim.serving_seen.items()
        if who == owner and o != owner and o in sim.up
    ]
    sent_bytes = [t.bytes / elapsed for t in sim.sent.values()]
    sent_packets = [t.packets / elapsed for t in sim.sent.values()]
    return {
        "kind": kind,
        "members": n,
        "loss": loss,
        "simulated_s": round(elapsed, 2),
        "detection_s": _round(summarize(pairs)),
        "known_dead_everywhere_s": _round(summarize(everywhere)),
        "undetected_pairs": undetected,
        "serving_change_s": _round(summarize(seen)),
        "serving_seen_by": f"{len(seen)}/{len(survivors) - 1}",
        "idle_bytes_per_s_per_node": _round(summarize(idle_bytes)),
        "idle_packets_per_s_per_node": _round(summarize(idle_packets)),
        "bytes_per_s_per_node": _round(summarize(sent_bytes)),
        "packets_per_s_per_node": _round(summarize(sent_packets)),
        "events": f"{kills} deaths and 1 serving change in {elapsed:.1f} s",
        "false_deaths": len({(o, m) for o, m, _ in sim.false_deaths}),
        "cpu_s": round(time.process_time() - started, 1),
    }


def false_deaths(kind: str, n: int, loss: float, window: float, seed: int = 2) -> dict[str, object]:
    started = time.process_time()
    members, settle = members_of(kind, n, seed)
    sim = Simulation(members, Network(loss=loss), seed=seed)
    sim.start_all(stagger=0.1, announce=False)
    sim.run_until(settle + window)
    return {
        "kind": kind, "members": n, "loss": loss, "simulated_s": window,
        "false_deaths": len({(o, m) for o, m, _ in sim.false_deaths}),
        "members_falsely_dead_somewhere": len({m for _, m, _ in sim.false_deaths}),
        "cpu_s": round(time.process_time() - started, 1),
    }


def alltoall_model(n: int, vips_per_node: int) -> dict[str, float]:
    """Per-node cost of the all-to-all heartbeat at ``n`` members (exact arithmetic)."""
    size = ALLTOALL_BASE + 5 * vips_per_node + UDP_IP
    packets = (n - 1) / ALLTOALL_INTERVAL
    return {"packets_per_s_per_node": packets, "bytes_per_s_per_node": packets * size,
            "datagram_bytes": size}


def _round(stats: dict[str, float | None]) -> dict[str, float | None]:
    return {k: None if v is None else round(v, 4) for k, v in stats.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000])
    parser.add_argument("--loss-window", type=float, default=3.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--part", choices=["all", "events", "loss"], default="all",
                        help="events: detection/propagation/traffic runs; loss: false deaths")
    args = parser.parse_args()
    report: dict[str, object] = {"runs": [], "loss_runs": [], "alltoall_model": {}}
    runs: list[dict[str, object]] = report["runs"]  # type: ignore[assignment]
    losses: list[dict[str, object]] = report["loss_runs"]  # type: ignore[assignment]

    def show(result: dict[str, object]) -> None:
        print(json.dumps(result), flush=True)

    events, loss_part = args.part in ("all", "events"), args.part in ("all", "loss")
    if events:
        runs.append(run("alltoall", ALLTOALL_N, idle=0.5, horizon=1.0))
        show(runs[-1])
    for n in args.sizes:
        if events:
            runs.append(run("swim", n))
            show(runs[-1])
            runs.append(run("memberlist", n, idle=2.0, spacing=1.0, horizon=20.0))
            show(runs[-1])
        if loss_part:
            for loss in (0.01, 0.05):
                losses.append(false_deaths("swim", n, loss, args.loss_window))
                show(losses[-1])
        report["alltoall_model"][str(n)] = {  # type: ignore[index]
            "vips_per_node_0": alltoall_model(n, 0), "vips_per_node_100": alltoall_model(n, 100),
        }
    report["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print()
    for n in args.sizes if events else ():
        swim = next(r for r in runs if r["kind"] == "swim" and r["members"] == n)
        ml = next(r for r in runs if r["kind"] == "memberlist" and r["members"] == n)
        model = report["alltoall_model"][str(n)]["vips_per_node_0"]  # type: ignore[index]
        sb = swim["idle_bytes_per_s_per_node"]["mean"]  # type: ignore[index]
        print(f"{n} members: dead known everywhere p99 swim "
              f"{swim['known_dead_everywhere_s']['p99']} s, memberlist-defaults "  # type: ignore[index]
              f"{ml['known_dead_everywhere_s']['p99']} s; idle bytes/s/node swim {sb:.0f}, "  # type: ignore[index]
              f"all-to-all {model['bytes_per_s_per_node']:.0f} "
              f"(x{model['bytes_per_s_per_node'] / sb:.0f})")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
