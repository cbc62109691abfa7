"""Membership at scale, simulated: the real SWIM code (vipcast.proto.membership) for N members
in one process on a fake clock and a network model, beside the all-to-all heartbeat it replaced
and beside the same protocol run with hashicorp memberlist's published LAN defaults.

    python bench/membership_sim.py [--sizes 1000 5000] [--loss-window 3] [--max-rss-gb 6] \
        [--json bench/membership.json]

Per run: the members start from a converged table (lab.membership_sim.warm_start), run idle,
then one member's serving set changes and KILLS members crash one after the other. Measured:
per dead member the time until each survivor stops seeing it (p50 / p99 over all survivor-victim
pairs, and the time it is known dead everywhere), the time each member sees the new serving set,
datagrams and bytes (UDP payload + 28 bytes of headers) each member sends per second over the
whole run, and false deaths (a member that is up dropped from someone's view). Separate runs with
1 % and 5 % loss count false deaths. The all-to-all heartbeat is simulated at ALLTOALL_N members
(N² datagrams per interval); its per-node cost at larger N is exact arithmetic, printed as such.

Each run is a child process of its own (a fresh interpreter: its peak RSS is its own, and the
memory of one run is never the next one's), which reports its wall time, CPU time and peak RSS,
and stops itself with a clear message when its RSS passes ``--max-rss-gb`` (a watchdog thread;
the address space is capped a little above as a backstop). ``--json`` merges into the file:
runs of other sizes and other keys stay.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import threading
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
#: exit status of a child stopped by the memory guard
OVER_MEMORY = 3
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


def guard_memory(limit_gb: float, period: float = 0.5) -> None:
    """Stop this process, with a message saying why, once its RSS passes ``limit_gb`` (checked
    every ``period`` s by a thread); cap its address space at 1.25 x that + 1 GB as a backstop (a
    MemoryError then, reported the same way)."""
    limit = int(limit_gb * 2**30)
    cap = int(limit * 1.25) + 2**30  # room for what is mapped but not resident (libraries, stacks)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    page = os.sysconf("SC_PAGE_SIZE")

    def watch() -> None:
        with open("/proc/self/statm") as statm:
            while True:
                statm.seek(0)
                rss = int(statm.read().split()[1]) * page
                if rss > limit:
                    print(f"membership_sim: stopped by the memory guard: RSS {rss / 2**30:.2f} GB "
                          f"passed --max-rss-gb {limit_gb} (see bench/README.md, memory)",
                          file=sys.stderr, flush=True)
                    os._exit(OVER_MEMORY)
                time.sleep(period)

    threading.Thread(target=watch, name="memory-guard", daemon=True).start()


def child(spec: dict[str, object], limit_gb: float) -> None:
    """One run in this process (the parent's ``--child``): its result on stdout as JSON, with
    this process's wall time, CPU time and peak RSS."""
    guard_memory(limit_gb)
    wall, cpu = time.monotonic(), time.process_time()
    what = spec.pop("what")
    try:
        result = run(**spec) if what == "run" else false_deaths(**spec)  # type: ignore[arg-type]
    except MemoryError:
        print(f"membership_sim: stopped by the memory guard: address space above "
              f"{limit_gb * 1.25 + 1:.1f} GB (MemoryError)", file=sys.stderr, flush=True)
        sys.exit(OVER_MEMORY)
    result["wall_s"] = round(time.monotonic() - wall, 1)
    result["process_cpu_s"] = round(time.process_time() - cpu, 1)
    result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(json.dumps(result), flush=True)


def in_child(spec: dict[str, object], limit_gb: float) -> dict[str, object]:
    load = round(os.getloadavg()[0], 1)
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec), "--max-rss-gb", str(limit_gb)],
        stdout=subprocess.PIPE, text=True, check=False,
    )
    if proc.returncode != 0:
        reason = "memory guard" if proc.returncode == OVER_MEMORY else f"exit {proc.returncode}"
        return {"kind": spec["kind"], "members": spec["n"], "loss": spec.get("loss", 0.0),
                "simulated_s": spec.get("window"), "aborted": reason, "spec": spec,
                "load_average_1min": load}
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["load_average_1min"] = load
    return result


def merge(path: Path, report: dict[str, object]) -> dict[str, object]:
    """The file's report with these runs in place of the same ones (kind, members and loss;
    for loss runs also the span); other runs and keys kept."""
    old: dict[str, object] = json.loads(path.read_text()) if path.exists() else {}
    for part, fields in (("runs", ("kind", "members", "loss")),
                         ("loss_runs", ("kind", "members", "loss", "simulated_s"))):
        new: list[dict[str, object]] = report[part]  # type: ignore[assignment]
        keys = {tuple(r.get(f) for f in fields) for r in new}
        kept = [r for r in old.get(part, [])  # type: ignore[attr-defined]
                if tuple(r.get(f) for f in fields) not in keys]
        old[part] = sorted(kept + new, key=lambda r: (r["members"], str(r["kind"]), r["loss"]))
    model: dict[str, object] = old.setdefault("alltoall_model", {})  # type: ignore[assignment]
    model.update(report["alltoall_model"])  # type: ignore[call-overload]
    old["max_rss_mb"] = report["max_rss_mb"]
    return old


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000])
    parser.add_argument("--loss-window", type=float, default=3.0)
    parser.add_argument("--losses", type=float, nargs="+", default=[0.01, 0.05])
    parser.add_argument("--memberlist-horizon", type=float, default=20.0,
                        help="simulated s after the last death with memberlist's timers")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--part", choices=["all", "events", "loss"], default="all",
                        help="events: detection/propagation/traffic runs; loss: false deaths")
    parser.add_argument("--no-alltoall", action="store_true",
                        help="skip the all-to-all simulation (its 50 members)")
    parser.add_argument("--max-rss-gb", type=float, default=6.0,
                        help="a run whose RSS passes this is stopped (memory guard)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child), args.max_rss_gb)
        return
    report: dict[str, object] = {"runs": [], "loss_runs": [], "alltoall_model": {}}
    runs: list[dict[str, object]] = report["runs"]  # type: ignore[assignment]
    losses: list[dict[str, object]] = report["loss_runs"]  # type: ignore[assignment]

    def show(result: dict[str, object]) -> None:
        print(json.dumps(result), flush=True)

    events, loss_part = args.part in ("all", "events"), args.part in ("all", "loss")
    if events and not args.no_alltoall:
        runs.append(in_child({"what": "run", "kind": "alltoall", "n": ALLTOALL_N, "idle": 0.5,
                              "horizon": 1.0}, args.max_rss_gb))
        show(runs[-1])
    for n in args.sizes:
        if events:
            runs.append(in_child({"what": "run", "kind": "swim", "n": n}, args.max_rss_gb))
            show(runs[-1])
            runs.append(in_child({"what": "run", "kind": "memberlist", "n": n, "idle": 2.0,
                                  "spacing": 1.0, "horizon": args.memberlist_horizon},
                                 args.max_rss_gb))
            show(runs[-1])
        if loss_part:
            for loss in args.losses:
                losses.append(in_child({"what": "loss", "kind": "swim", "n": n, "loss": loss,
                                        "window": args.loss_window}, args.max_rss_gb))
                show(losses[-1])
        report["alltoall_model"][str(n)] = {  # type: ignore[index]
            "vips_per_node_0": alltoall_model(n, 0), "vips_per_node_100": alltoall_model(n, 100),
        }
    peaks = [int(r.get("max_rss_mb", 0)) for r in runs + losses]  # type: ignore[call-overload]
    report["max_rss_mb"] = max(peaks, default=0)
    print()
    for n in args.sizes if events else ():
        swim = next(r for r in runs if r["kind"] == "swim" and r["members"] == n)
        ml = next(r for r in runs if r["kind"] == "memberlist" and r["members"] == n)
        if "aborted" in swim or "aborted" in ml:
            print(f"{n} members: a run was stopped ({swim.get('aborted') or ml.get('aborted')})")
            continue
        model = report["alltoall_model"][str(n)]["vips_per_node_0"]  # type: ignore[index]
        sb = swim["idle_bytes_per_s_per_node"]["mean"]  # type: ignore[index]
        print(f"{n} members: dead known everywhere p99 swim "
              f"{swim['known_dead_everywhere_s']['p99']} s, memberlist-defaults "  # type: ignore[index]
              f"{ml['known_dead_everywhere_s']['p99']} s; idle bytes/s/node swim {sb:.0f}, "  # type: ignore[index]
              f"all-to-all {model['bytes_per_s_per_node']:.0f} "
              f"(x{model['bytes_per_s_per_node'] / sb:.0f}); peak RSS swim "
              f"{swim['max_rss_mb']} MB")
    if args.json:
        args.json.write_text(json.dumps(merge(args.json, report), indent=2) + "\n")


if __name__ == "__main__":
    main()
