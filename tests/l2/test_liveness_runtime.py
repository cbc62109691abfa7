"""NodeLiveness over real UDP sockets on loopback, on a manual clock (no sleeping for timers):
the plan's members start the membership, a member that goes silent is reported dead through
``on_dead`` (the announcement policy's observation), a plan without other members stops it."""

from __future__ import annotations

import asyncio
import errno
import socket

from vipcast.app.liveness import NodeLiveness
from vipcast.core.desired import L2Member, NodePlan
from vipcast.proto.membership import Timers
from vipcast.runtime.clock import ManualClock

KEY = b"liveness-test-key"
#: slower than the agents' (a real datagram may take a step or two of the manual clock to
#: arrive on a loaded machine: far below these timeouts)
TIMERS = Timers(probe_interval=0.2, probe_timeout=0.1, indirect_checks=1, suspicion_min=0.4,
                gossip_interval=0.05, settle_after=0.3, request_timeout=0.3)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _plan(node: str, names: tuple[str, ...]) -> NodePlan:
    return NodePlan(node=node, liveness_members=tuple(
        L2Member(n, f"127.0.0.{i + 1}") for i, n in enumerate(names)))


async def _advance(clock: ManualClock, seconds: float, step: float = 0.02) -> None:
    """Move time in small steps, letting loopback datagrams arrive between them."""
    for _ in range(round(seconds / step)):
        await clock.advance(step)
        await asyncio.sleep(0.001)


def test_a_silent_member_is_reported_dead_and_back_when_it_returns() -> None:
    async def main(port: int) -> None:
        clock = ManualClock()
        names = ("a", "b", "c")
        seen: dict[str, list[frozenset[str]]] = {n: [] for n in names}
        nodes = {n: NodeLiveness(n, KEY, seen[n].append, port=port, clock=clock,
                                 timers=TIMERS)
                 for n in names}
        for n in names:
            await nodes[n].apply(_plan(n, names))
        try:
            await _advance(clock, 2.0)
            assert all(set(nodes[n].status()["alive"]) == set(names) for n in names)
            assert all(not seen[n] for n in names)  # nobody dead, nothing reported
            await nodes["c"].stop(graceful=False)  # a crash: no LEAVE
            await _advance(clock, 3.0)
            assert seen["a"] == [frozenset({"c"})] and seen["b"] == [frozenset({"c"})]
            assert nodes["a"].status()["dead"] == ["c"]
            # c comes back (a new boot): alive again, reported as no longer dead
            nodes["c"] = NodeLiveness("c", KEY, seen["c"].append, port=port, clock=clock,
                                      timers=TIMERS)
            await nodes["c"].apply(_plan("c", names))
            await _advance(clock, 3.0)
            assert seen["a"][-1] == frozenset() and seen["b"][-1] == frozenset()
            # a plan without other members (e.g. the config now has L2Advertisements) stops it
            await nodes["a"].apply(_plan("a", ("a",)))
            assert not nodes["a"].running
        finally:
            for node in nodes.values():
                await node.stop(graceful=False)

    # every node binds its own 127.0.0.x at one port, chosen free on 127.0.0.1 and then
    # released: another process may bind it in between (an ephemeral UDP port of anyone's).
    # Only that -- EADDRINUSE from a node's bind -- starts the test again on a fresh port.
    for attempt in range(3):
        try:
            asyncio.run(main(_free_port()))
            return
        except OSError as error:
            if error.errno != errno.EADDRINUSE or attempt == 2:
                raise


def test_without_a_key_liveness_stays_off() -> None:
    async def main() -> None:
        reported: list[frozenset[str]] = []
        node = NodeLiveness("a", b"", reported.append, port=_free_port())
        await node.apply(_plan("a", ("a", "b")))
        assert not node.running and node.status() == {} and node.counters() is None
        off = NodeLiveness("a", KEY, reported.append, enabled=False, port=_free_port())
        await off.apply(_plan("a", ("a", "b")))
        assert not off.running and reported == []

    asyncio.run(main())
