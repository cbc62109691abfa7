"""Small clusters of the real membership protocol on the simulator's fake clock and network."""

from __future__ import annotations

import random

from vipcast.lab.membership_sim import Network, Simulation
from vipcast.proto.membership import Membership, MembershipConfig, Timers

KEY = b"test-key"


def member(name: str, names: frozenset[str], boot: int, seed: int = 0,
           key: bytes = KEY, timers: Timers | None = None) -> Membership:
    config = MembershipConfig(name, names | {name}, key, timers or Timers.lan(len(names)))
    return Membership(config, boot=boot, rng=random.Random(f"{seed}-{name}-{boot}"))


def cluster(count: int = 3, seed: int = 1, loss: float = 0.0,
            timers: Timers | None = None) -> Simulation:
    """``count`` members n0.. started at t = 0 and run until every one sees all alive."""
    names = frozenset(f"n{i}" for i in range(count))
    members = {
        name: member(name, names, boot=1000 + i, seed=seed, timers=timers)
        for i, name in enumerate(sorted(names))
    }
    sim = Simulation(members, Network(loss=loss), seed=seed)  # type: ignore[arg-type]
    sim.start_all(stagger=0.01)
    for _ in range(100):
        sim.run_until(sim.now + 0.1)
        if all(m.view.quorum and len(m.view.alive) == count for m in members.values()):
            return sim
    raise AssertionError(f"{count} members did not converge by t={sim.now:.1f}")


def swim(sim: Simulation, name: str) -> Membership:
    m = sim.members[name]
    assert isinstance(m, Membership)
    return m
