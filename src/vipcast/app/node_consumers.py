"""The node's plan consumers besides the speaker and the data plane: what the health checker
probes (:class:`HealthTargets`), BFD sessions for the BGP peers (:class:`BfdBinding`), the L2
responder and membership (:class:`NodeL2`). Each gets the one plan and applies the difference;
none reads another part's state. Split from :mod:`vipcast.app.node`, which wires them.

The L2 runtime is imported by the first plan with L2 members: a BGP-only node's start does not
pay for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING

from vipcast.app.agent import Agent
from vipcast.core.desired import BfdPeer, HealthTarget, NodePlan
from vipcast.core.pipeline import l2_members
from vipcast.obs.registry import CollectorRegistry
from vipcast.proto.bfd.session import StateChanged
from vipcast.proto.membership import View
from vipcast.runtime.bfd.bgp import BgpBfd
from vipcast.runtime.bfd.manager import BfdManager
from vipcast.spec import Spec

if TYPE_CHECKING:
    from vipcast.runtime.health import HealthChecker
    from vipcast.runtime.l2.driver import L2Config, L2Runtime

log = logging.getLogger("vipcast.node")


class HealthTargets:
    """A plan consumer: the health checker probes exactly the plan's health targets."""

    def __init__(self, health: HealthChecker) -> None:
        self._health = health
        self._targets: tuple[HealthTarget, ...] | None = None

    async def apply(self, plan: NodePlan) -> None:
        if plan.health != self._targets:
            self._targets = plan.health
            self._health.set_targets(plan.health)


class BfdBinding:
    """A plan consumer that keeps one BFD session per BGP peer with a ``bfdProfile``.

    When BFD declares a path failure toward a peer whose BGP session is Established,
    ``on_down(name)`` drops that peer's BGP connections at once (the composition root wires it
    to the speaker), so the router loses this node's routes within the BFD detection time, not
    the hold time. The speaker reports Established in and out (:func:`observe` wires
    :meth:`BgpBfd.bgp_changed`); a BFD session the router ends or replaces without a path
    failure keeps BGP up (:mod:`vipcast.proto.bfd.client`, ``docs/bfd.md``).
    """

    def __init__(self, registry: CollectorRegistry, on_down: Callable[[str], object]) -> None:
        self._on_down = on_down
        self._peers: tuple[BfdPeer, ...] | None = None
        self.bfd = BgpBfd(BfdManager(registry=registry), on_down=self._down)

    def _down(self, name: str, change: StateChanged) -> None:
        log.warning("BFD: peer %s down (%s): dropping its BGP session", name, change.diag.name)
        self._on_down(name)

    async def apply(self, plan: NodePlan) -> None:
        if plan.bfd == self._peers and not self.bfd.failed():
            return
        self._peers = plan.bfd
        changes = self.bfd.configure(plan.bfd)
        if changes:
            log.info("BFD sessions: %s", ", ".join(changes))

    def close(self) -> None:
        self.bfd.close()

    def status(self) -> dict[str, object]:
        """BGPPeer name -> its BFD session as plain data (the ``bfd`` section of /status);
        a configured peer whose BGP session is not Established yet has no session:
        ``state`` NOT_STARTED (and ``error`` when its sockets could not be opened)."""
        sessions: dict[str, object] = {name: asdict(st) for name, st in self.bfd.status().items()}
        for peer in self._peers or ():
            if peer.name not in sessions:
                sessions[peer.name] = {
                    "peer": peer.address, "local": peer.local, "multihop": peer.multihop,
                    "state": "NOT_STARTED", "binding": "IDLE",
                    "error": self.bfd.failed().get(peer.name),
                }  # fmt: skip
        return sessions


def observe(agent: Agent, registry: CollectorRegistry, l2: NodeL2) -> BfdBinding:
    """Bind BFD to the agent's BGP peers and add the ``bfd`` and ``l2`` /status sections.

    Called once per agent: the BFD and L2 metrics live on ``registry`` from construction, so
    new plans reconfigure sessions without registering anything again.
    """
    bfd = BfdBinding(registry, agent.speaker.reset_peer)
    agent.speaker.add_session_listener(bfd.bfd.bgp_changed)
    agent.add_consumer(bfd)
    agent.add_status_section("bfd", bfd.status)
    agent.add_status_section("l2", l2.status)
    return bfd


def l2_config_of(plan: NodePlan, key: bytes, suspicion_min: float | None = None) -> L2Config:
    """The L2 runtime's membership config from the plan's members (``suspicion_min``: the
    user's suspicion floor, None for the default)."""
    from vipcast.runtime.l2.driver import L2Config
    from vipcast.runtime.membership import DEFAULT_PORT as MEMBERSHIP_PORT

    me = next((m for m in plan.l2_members if m.name == plan.node), None)
    peers = {
        m.name: (m.address, MEMBERSHIP_PORT)
        for m in plan.l2_members
        if m.name != plan.node and m.address is not None
    }
    bind = (me.address if me is not None and me.address else "0.0.0.0", MEMBERSHIP_PORT)
    return L2Config(node=plan.node, peers=peers, key=key, bind=bind, suspicion_min=suspicion_min)


def l2_config(spec: Spec, node: str, key: bytes) -> L2Config:
    """Membership of the Nodes that could own an L2 address (see
    :func:`vipcast.core.pipeline.l2_members`), each on the membership port."""
    return l2_config_of(NodePlan(node=node, l2_members=l2_members(spec, node)), key)


class NodeL2:
    """The L2 responder and membership, started by the first plan with L2 members (a config
    with L2Advertisements) — from object files or from the Kubernetes API alike.

    The member list follows every plan: a Node added to (or removed from) the config joins
    (or leaves) this node's membership view without a restart (:meth:`L2Runtime.set_peers`).
    Only a change of this node's own membership address, or peers appearing for a runtime that
    started alone (no socket), rebuilds the runtime. What the node may own follows the plan's
    ``l2_servable``.
    """

    def __init__(self, node: str, registry: CollectorRegistry, key: bytes,
                 on_view: Callable[[View], None] | None = None,
                 suspicion_min: float | None = None) -> None:
        self._node = node
        self._suspicion_min = suspicion_min
        self._registry = registry
        self._key = key
        self._on_view = on_view
        self.runtime: L2Runtime | None = None

    async def apply(self, plan: NodePlan) -> None:
        if self.runtime is not None and plan.l2_members:
            config = l2_config_of(plan, self._key, self._suspicion_min)
            current = self.runtime.config
            if config.bind != current.bind or (config.peers and not current.peers):
                log.info("l2 %s: membership address or mode changed, rebuilding the runtime",
                         plan.node)
                await self.runtime.stop(graceful=True)
                self.runtime = None
            elif config.peers != current.peers and current.peers:
                log.info("l2 %s: members now %s", plan.node, sorted(config.peers))
                self.runtime.set_peers(config.peers)
        if self.runtime is None:
            if not plan.l2_members:
                return
            from vipcast.runtime.l2.driver import L2Runtime

            config = l2_config_of(plan, self._key, self._suspicion_min)
            runtime = L2Runtime(config, self._registry, on_view=self._on_view)
            runtime.set_servable(plan.l2_servable)
            await runtime.start()
            self.runtime = runtime
        self.runtime.set_servable(plan.l2_servable)
        await self.runtime.apply(plan)

    def status(self) -> dict[str, object]:
        return self.runtime.status() if self.runtime is not None else {}

    def membership_counters(self) -> dict[str, object] | None:
        return self.runtime.membership_counters() if self.runtime is not None else None

    async def stop(self) -> None:
        if self.runtime is not None:
            await self.runtime.stop(graceful=True)


