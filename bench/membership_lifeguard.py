"""Lifeguard's additions (dynamic suspicion, local health), before/after in one run, simulated.

    python bench/membership_lifeguard.py [--sizes 16 1000] [--json bench/membership_lifeguard.json]

"before" is the protocol with ``Timers.swim()`` (fixed suspicion timeout, no local health: the
protocol as it was on main), "after" the same timers with Lifeguard's additions, on the same
seeds and the same simulated network (vipcast.lab.membership_sim: the real protocol code, a fake
clock). Per size and variant:

- deaths: KILLS members crash 0.3 s apart; p50/p99 of the time each dead member is known dead
  everywhere (every survivor dropped it), bytes/s sent per member over the run;
- stalls: every member's process stalls (runs nothing, its socket fills) at STALL_RATE per
  second for a uniform 0.1-0.5 s; false deaths = (observer, member) pairs where a member that
  was up left an observer's view, and how many stalls there were;
- loss: 1 % and 5 % independent loss, no stall: false deaths.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vipcast.lab.membership_sim import Network, Simulation, summarize, swim_members, warm_start
from vipcast.proto.membership import Timers

KEY = b"bench-lifeguard-key"
KILLS = 3
STALL_RATE = 0.5
STALL_MIN, STALL_MAX = 0.1, 0.5


#: the "stall-tolerant" variant: Lifeguard's additions and a suspicion floor above the longest
#: stall simulated (the price: detection; see bench/README.md)
TOLERANT_SUSPICION_MIN = 0.45
VARIANTS = ("before", "after", "tolerant")


def timers(variant: str, n: int) -> Timers:
    lan = Timers.lan(n)
    if variant == "before":
        return lan.swim()
    if variant == "tolerant":
        return replace(lan, suspicion_min=TOLERANT_SUSPICION_MIN)
    return lan


def _sim(variant: str, n: int, seed: int, loss: float = 0.0) -> Simulation:
    members = swim_members(n, timers(variant, n), seed=seed, key=KEY)
    warm_start(members)
    sim = Simulation(members, Network(loss=loss), seed=seed)  # type: ignore[arg-type]
    sim.start_all(stagger=0.1, announce=False)
    sim.run_until(1.0)
    sim.reset_traffic()
    return sim


def deaths(variant: str, n: int, seed: int = 1) -> dict[str, object]:
    started = time.process_time()
    sim = _sim(variant, n, seed)
    begin = sim.now
    sim.run_until(begin + 1.0)
    rng = random.Random(seed)
    victims = rng.sample(sorted(sim.members), KILLS)
    killed = {}
    for victim in victims:
        killed[victim] = sim.kill(victim)
        sim.run_until(sim.now + 0.3)
    sim.run_until(sim.now + 3.0)
    elapsed = sim.now - begin
    survivors = sorted(sim.up)
    everywhere, undetected = [], 0
    for victim, at in killed.items():
        times = [
            sim.lost_sight[(o, victim)] - at for o in survivors if (o, victim) in sim.lost_sight
        ]
        undetected += len(survivors) - len(times)
        if len(times) == len(survivors):
            everywhere.append(max(times))
    sent = [t.bytes / elapsed for t in sim.sent.values()]
    return {
        "variant": variant, "members": n, "test": "deaths",
        "known_dead_everywhere_s": _round(summarize(everywhere)),
        "undetected_pairs": undetected,
        "bytes_per_s_per_node": _round(summarize(sent)),
        "false_deaths": len({(o, m) for o, m, _ in sim.false_deaths}),
        "cpu_s": round(time.process_time() - started, 1),
    }


def stalls(variant: str, n: int, window: float, seed: int = 3) -> dict[str, object]:
    started = time.process_time()
    sim = _sim(variant, n, seed)
    rng = random.Random(seed)
    count = 0
    begin = sim.now
    for name in sorted(sim.members):
        at = begin + rng.expovariate(STALL_RATE)
        while at < begin + window:
            duration = rng.uniform(STALL_MIN, STALL_MAX)
            sim.stall(name, at, duration)
            count += 1
            at += duration + rng.expovariate(STALL_RATE)
    sim.run_until(begin + window + 1.0)
    return {
        "variant": variant, "members": n, "test": "stalls", "stalls": count,
        "stall_s": [STALL_MIN, STALL_MAX], "stalls_per_s_per_member": STALL_RATE,
        "simulated_s": window,
        "false_deaths": len({(o, m) for o, m, _ in sim.false_deaths}),
        "members_falsely_dead_somewhere": len({m for _, m, _ in sim.false_deaths}),
        "cpu_s": round(time.process_time() - started, 1),
    }


def loss(variant: str, n: int, rate: float, window: float, seed: int = 2) -> dict[str, object]:
    started = time.process_time()
    sim = _sim(variant, n, seed, loss=rate)
    sim.run_until(sim.now + window)
    return {
        "variant": variant, "members": n, "test": f"loss {rate:.0%}", "simulated_s": window,
        "false_deaths": len({(o, m) for o, m, _ in sim.false_deaths}),
        "members_falsely_dead_somewhere": len({m for _, m, _ in sim.false_deaths}),
        "cpu_s": round(time.process_time() - started, 1),
    }


def _round(stats: dict[str, float | None]) -> dict[str, float | None]:
    return {k: None if v is None else round(v, 4) for k, v in stats.items()}


def _ratio(after: object, before: object) -> str:
    if not isinstance(after, (int, float)) or not isinstance(before, (int, float)) or not before:
        return f"{after} vs {before}"
    return f"{after} vs {before} (x{after / before:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 1000])
    parser.add_argument("--window", type=float, default=10.0, help="simulated s of stalls/loss")
    parser.add_argument("--big-window", type=float, default=2.0,
                        help="simulated s of stalls/loss past 100 members (CPU bound)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: list[dict[str, object]] = []
    for n in args.sizes:
        window = args.window if n <= 100 else args.big_window
        for variant in VARIANTS:
            for result in (deaths(variant, n), stalls(variant, n, window),
                           loss(variant, n, 0.01, window), loss(variant, n, 0.05, window)):
                results.append(result)
                print(json.dumps(result), flush=True)
    print()
    ratios: list[str] = []
    for n in args.sizes:
        pick = {(r["variant"], r["test"]): r for r in results if r["members"] == n}
        b = pick[("before", "deaths")]
        for v in VARIANTS[1:]:
            a = pick[(v, "deaths")]
            for q in ("p50", "p99"):
                ratios.append(f"{n} members: dead known everywhere {q} {v} vs before: " + _ratio(
                    a["known_dead_everywhere_s"][q], b["known_dead_everywhere_s"][q]))  # type: ignore[index]
            ratios.append(f"{n} members: bytes/s/node mean {v} vs before: " + _ratio(
                a["bytes_per_s_per_node"]["mean"], b["bytes_per_s_per_node"]["mean"]))  # type: ignore[index]
            for test in ("stalls", "loss 1%", "loss 5%"):
                ratios.append(f"{n} members: false deaths ({test}) {v} vs before: " + _ratio(
                    pick[(v, test)]["false_deaths"], pick[("before", test)]["false_deaths"]))
    for line in ratios:
        print(line)
    if args.json:
        args.json.write_text(json.dumps({"results": results, "ratios": ratios}, indent=2) + "\n")


if __name__ == "__main__":
    main()
