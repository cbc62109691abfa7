"""Node liveness for a BGP node: which other nodes are dead, so that their backends leave this
node's Cluster-policy NAT maps within the membership's detection time instead of the health
checks' (docs/membership.md, "Liveness in BGP mode").

:class:`NodeLiveness` is a plan consumer: the plan's ``liveness_members`` (every Node of the
config, from the object files or the Kubernetes API: the source of truth says who is a member)
start the SWIM membership of :mod:`vipcast.proto.membership` on its UDP port, and later plans
change its member list without a restart. What it learns goes back only as an observation:
``on_dead(nodes)`` (the announcement policy's, which hands the agent a new
:class:`~vipcast.core.pipeline.Local`; the planner leaves the dead nodes' backends out).

In L2 mode the L2 runtime's membership tells the same (``View.dead``) and this one stays off:
one membership per node, one UDP port.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping

from vipcast.core.desired import NodePlan
from vipcast.core.ports import Clock
from vipcast.proto.membership import Membership, MembershipConfig, Timers, View
from vipcast.runtime.membership import DEFAULT_PORT, MembershipAgent, new_boot

log = logging.getLogger("vipcast.liveness")

Peers = Mapping[str, tuple[str, int]]


def liveness_peers(plan: NodePlan, port: int = DEFAULT_PORT) -> tuple[Peers, tuple[str, int]]:
    """The other members' membership sockets and this node's own (bind) address."""
    me = next((m for m in plan.liveness_members if m.name == plan.node), None)
    peers = {m.name: (m.address, port) for m in plan.liveness_members
             if m.name != plan.node and m.address is not None}
    bind = (me.address if me is not None and me.address else "0.0.0.0", port)
    return peers, bind


class NodeLiveness:
    """Runs the liveness membership while the plan names other members (and a key is set)."""

    def __init__(
        self,
        node: str,
        key: bytes,
        on_dead: Callable[[frozenset[str]], None],
        *,
        enabled: bool = True,
        timers: Timers | None = None,
        suspicion_min: float | None = None,
        port: int = DEFAULT_PORT,
        clock: Clock | None = None,
    ) -> None:
        self._node = node
        self._key = key
        self._on_dead = on_dead
        self._enabled = enabled
        self._timers = timers
        self._suspicion_min = suspicion_min
        self._port = port
        self._clock = clock
        self._agent: MembershipAgent | None = None
        self._peers: Peers = {}
        self._dead: frozenset[str] = frozenset()
        self._warned = False

    @property
    def running(self) -> bool:
        return self._agent is not None

    async def apply(self, plan: NodePlan) -> None:
        peers, bind = liveness_peers(plan, self._port)
        if not peers or not self._enabled or not self._key:
            if peers and self._enabled and not self._warned:
                self._warned = True
                log.warning("no membership key: node liveness is off, a dead node's backends "
                            "leave the Cluster-policy maps only when their health checks fail")
            await self.stop(graceful=True)  # e.g. the config now has L2Advertisements
            return
        if self._agent is None:
            members = frozenset({self._node, *peers})
            timers = self._timers or Timers.lan(len(members), self._suspicion_min)
            membership = Membership(MembershipConfig(self._node, members, self._key, timers),
                                    boot=new_boot(), rng=random.Random())
            agent = MembershipAgent(membership, peers, bind, self._changed, self._clock)
            await agent.start()
            self._agent, self._peers = agent, dict(peers)
            log.info("node liveness: %d other members, probe every %.0f ms", len(peers),
                     timers.probe_interval * 1000)
        elif peers != self._peers:
            self._peers = dict(peers)
            self._agent.set_peers(peers)

    def _changed(self, view: View) -> None:
        if view.dead == self._dead:
            return
        came_back, died = self._dead - view.dead, view.dead - self._dead
        self._dead = view.dead
        if died:
            log.warning("node liveness: %s dead: their backends leave the Cluster-policy maps",
                        ", ".join(sorted(died)))
        if came_back:
            log.info("node liveness: %s alive again", ", ".join(sorted(came_back)))
        self._on_dead(view.dead)

    def counters(self) -> dict[str, object] | None:
        """The membership's plain counters (None while it does not run)."""
        return None if self._agent is None else self._agent.counters()

    def status(self) -> dict[str, object]:
        """The ``liveness`` section of /status: the membership as this node sees it."""
        if self._agent is None:
            return {}
        status = self._agent.membership.status(self._agent.now())
        status["dead"] = sorted(self._dead)
        return status

    async def stop(self, *, graceful: bool = True) -> None:
        agent, self._agent = self._agent, None
        if agent is not None:
            await agent.stop(graceful=graceful)
        if self._dead:
            self._dead = frozenset()
            self._on_dead(self._dead)
