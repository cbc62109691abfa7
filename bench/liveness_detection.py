"""Node liveness in a small cluster, simulated: the real SWIM code (vipcast.proto.membership) on
a fake clock, the lab's size (3 nodes) and a rack (16), with the timers the agents use
(``Timers.lan(n)``) beside hashicorp memberlist's published LAN defaults
(``Timers.memberlist_lan()``, the same protocol code with memberlist's timers).

    python bench/liveness_detection.py [--trials 200] [--json bench/liveness_detection.json]

Per trial: a warm cluster runs idle for a random time (so the crash falls anywhere in the probe
round), one member crashes; measured is the time until each survivor declares it dead (the
moment its backends leave that survivor's Cluster-policy maps), p50 / p99 / max over all
survivor-victim pairs, and how long until every survivor has. Network: 0.3 ms + up to 0.2 ms.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from vipcast.lab.membership_sim import Network, Simulation, summarize, swim_members, warm_start
from vipcast.proto.membership import Timers


def trials(count: int, timers: Timers, n: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    pairs: list[float] = []
    everywhere: list[float] = []
    missed = 0
    for trial in range(count):
        members = swim_members(n, timers, seed=rng.getrandbits(32))
        warm_start(members)
        sim = Simulation(members, Network(), seed=trial)
        sim.start_all(announce=False)
        sim.run_until(2.0 + rng.random() * 2 * timers.probe_interval * n)
        victim = sorted(members)[rng.randrange(n)]
        at = sim.kill(victim)
        sim.run_until(at + 20 * timers.probe_interval + 10 * timers.suspicion_timeout(n))
        times = [sim.lost_sight.get((name, victim)) for name in sorted(sim.up)]
        if any(t is None for t in times):
            missed += 1
            continue
        seen = [t - at for t in times if t is not None]
        pairs.extend(seen)
        everywhere.append(max(seen))
        assert not sim.false_deaths, sim.false_deaths
    return {"pairs": summarize(pairs), "everywhere": summarize(everywhere), "missed": missed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    out: dict[str, object] = {"trials": args.trials}
    print(f"{'members':>7} {'timers':22} {'survivor sees it dead p50/p99/max':>36} "
          f"{'everywhere p99':>15}")
    for n in (3, 16):
        for label, timers in (("vipcast Timers.lan", Timers.lan(n)),
                              ("memberlist LAN", Timers.memberlist_lan())):
            result = trials(args.trials, timers, n, seed=n)
            out[f"{n} {label}"] = result
            p = result["pairs"]
            e = result["everywhere"]
            assert isinstance(p, dict) and isinstance(e, dict)
            print(f"{n:>7} {label:22} {p['p50']:>10.3f} / {p['p99']:.3f} / {p['max']:.3f} s "
                  f"{e['p99']:>13.3f} s")
        a = out[f"{n} vipcast Timers.lan"]
        b = out[f"{n} memberlist LAN"]
        assert isinstance(a, dict) and isinstance(b, dict)
        ratio = a["pairs"]["p50"] / b["pairs"]["p50"]
        print(f"{'':>7} ratio vipcast / memberlist (p50): {ratio:.3f}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
