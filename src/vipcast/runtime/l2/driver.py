"""The L2 runtime: consumes :class:`~vipcast.core.desired.NodePlan` (its ``l2`` ownerships),
keeps the LAN membership view, and answers ARP/NDP for exactly the VIPs this node owns.

Ownership of one VIP = the first of its candidates alive in the membership view that says it
can serve the VIP, and nothing at all while this node's view has no quorum (see
:mod:`vipcast.core.l2owner`). Every plan, view and servability change recomputes it; a VIP
taken is announced at once, a VIP lost stops being answered at once.

What this node can serve is declared with :meth:`L2Runtime.set_servable` (the node agent passes
the VIPs with a healthy backend that were verified through its own data plane). Until it is
called, every VIP of the plan counts as servable (the standalone responder without a data plane).
A change is sent to the peers at once (an extra heartbeat), not at the next interval.

The VIP is never added to the interface as an address: the kernel would answer ARP/NDP for it
on every node. The data plane accepts VIP traffic with nftables or a ``local`` route; if it
uses a local route (or an address on ``lo``), the L2 interfaces need ``arp_ignore=1`` so the
kernel does not answer for it (IPv6 NDP only answers for addresses on the interface itself).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from ipaddress import ip_address

from vipcast.core.desired import L2Ownership, NodePlan
from vipcast.core.l2owner import (
    Releasing,
    announce_again,
    canonical_ip,
    owned_by_peers,
    owned_here,
    owner_of,
)
from vipcast.obs.l2_metrics import L2Metrics
from vipcast.obs.registry import CollectorRegistry
from vipcast.proto.l2 import format_mac
from vipcast.proto.membership import Membership, MembershipConfig, Timers, View
from vipcast.runtime.l2.packet_socket import open_packet_socket
from vipcast.runtime.l2.responder import AnnounceSchedule, InterfaceResponder, IPAddress
from vipcast.runtime.membership import DEFAULT_PORT, MembershipAgent, new_boot

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class L2Config:
    node: str
    #: the other members: node name -> (address, UDP port) of its membership socket
    peers: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    key: bytes = b""
    bind: tuple[str, int] = ("0.0.0.0", DEFAULT_PORT)
    #: membership timers; None: :meth:`Timers.lan` for the member count
    timers: Timers | None = None
    #: the suspicion floor (seconds) of :meth:`Timers.lan` when ``timers`` is None; None: its
    #: default (0.12 s up to 16 members, 0.2 s beyond; docs/membership.md)
    suspicion_min: float | None = None
    schedule: AnnounceSchedule = field(default_factory=AnnounceSchedule)
    #: interfaces for ownerships that name none
    default_interfaces: tuple[str, ...] = ()
    #: a VIP a plan change gives to another live node is answered until that node's claim is
    #: seen on the wire, at most this long (seconds)
    release_timeout: float = 3.0


class L2Runtime:
    """Build, ``await start()``, feed ``await apply(plan)``, ``await stop()``."""

    def __init__(
        self,
        config: L2Config,
        registry: CollectorRegistry,
        *,
        boot: int | None = None,
        on_ownership: Callable[[frozenset[str]], None] | None = None,
        on_view: Callable[[View], None] | None = None,
    ) -> None:
        self.config = config
        self.metrics = L2Metrics(registry)
        members = frozenset({config.node, *config.peers})
        timers = config.timers or Timers.lan(len(members), config.suspicion_min)
        self.membership = Membership(
            MembershipConfig(config.node, members, config.key or b"single-node", timers),
            boot=new_boot() if boot is None else boot,
            rng=random.Random(),
        )
        self._agent: MembershipAgent | None = None
        if config.peers:
            if not config.key:
                raise ValueError("a membership key is required when there are peers")
            self._agent = MembershipAgent(
                self.membership,
                config.peers,
                config.bind,
                self._on_view,
            )
        self._ownerships: tuple[L2Ownership, ...] = ()
        self._responders: dict[str, InterfaceResponder] = {}
        self._interface_errors: dict[str, str] = {}
        self._owned: frozenset[str] = frozenset()
        #: the last membership view handed to :meth:`_on_view`
        self._view = self.membership.view
        self._releasing = Releasing()
        self._release_timer: asyncio.TimerHandle | None = None
        self._on_ownership = on_ownership
        #: every membership view change (the node's liveness: ``View.dead``)
        self._on_view_change = on_view
        #: the VIPs declared servable; None: every VIP of the plan
        self._servable: frozenset[str] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._started = False

    async def start(self) -> None:
        if self._agent is not None:
            await self._agent.start()
        self._started = True
        self._reconcile()

    async def apply(self, plan: NodePlan) -> None:
        """Adopt the plan's L2 ownerships (the agent's composition root calls this)."""
        if plan.node != self.config.node:
            raise ValueError(
                f"plan for {plan.node!r} given to the L2 runtime of {self.config.node!r}"
            )
        self._ownerships = plan.l2
        self._declare()
        if self._started:
            self._reconcile(hand_over=True)

    def membership_counters(self) -> dict[str, object] | None:
        """The membership's plain counters (None without peers), for the metrics collector."""
        return None if self._agent is None else self._agent.counters()

    def set_peers(self, peers: Mapping[str, tuple[str, int]]) -> None:
        """The other members changed (a node joined or left): seen without a restart."""
        if self._agent is None:
            raise ValueError("set_peers on an L2 runtime started without peers")
        self.config = replace(self.config, peers=dict(peers))
        self._agent.set_peers(peers)

    def set_servable(self, ips: frozenset[str] | None) -> None:
        """Declare the VIPs this node can serve now (None: all of the plan's); the peers hear
        it at once and every node recomputes the owners."""
        servable = None if ips is None else frozenset(canonical_ip(ip) for ip in ips)
        if servable == self._servable:
            return
        self._servable = servable
        if self._declare() and self._agent is not None and self._agent.running:
            self._agent.send_now()
        if self._started:
            self._reconcile(hand_over=True)

    def _declare(self) -> bool:
        """Put the servable VIPs of the plan into the membership; True if that changed them."""
        planned = frozenset(canonical_ip(o.ip) for o in self._ownerships)
        serving = planned if self._servable is None else planned & self._servable
        if serving == self.membership.serving:
            return False
        self.membership.set_serving(serving, self._now())
        return True

    def _now(self) -> float:
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:
            return 0.0

    async def stop(self, *, graceful: bool = True) -> None:
        """Stop answering at once; if ``graceful``, tell the peers so they take over now."""
        self._started = False
        self._releasing = Releasing()
        if self._release_timer is not None:
            self._release_timer.cancel()
        for responder in self._responders.values():
            responder.set_owned(frozenset())
        if self._agent is not None:
            await self._agent.stop(graceful=graceful)
        responders, self._responders = list(self._responders.values()), {}
        await asyncio.gather(*(r.close() for r in responders), *self._closing)
        self._set_owned(frozenset())

    # -- reconciliation ------------------------------------------------------------------------
    def _on_view(self, view: View) -> None:
        self.metrics.members_alive.set(len(view.alive))
        self.metrics.quorum.set(1 if view.quorum else 0)
        before, self._view = self._view, view
        if self._started:
            self._reconcile()
            again = announce_again(before, view, self._owned)
            if again:
                # this node refuted its own suspicion or death: another node may have taken
                # and announced its VIPs meanwhile; it gives them back on our refutation, the
                # LAN's caches come back only with our announcement
                log.info("l2 %s: refuted a suspicion of itself (incarnation %d), announcing %s "
                         "again", self.config.node, view.incarnation, sorted(again))
                self.metrics.ownership_changes.labels("announced_again").inc(len(again))
                wanted = {ip_address(ip) for ip in again}
                for responder in self._responders.values():
                    responder.announce_again(frozenset(wanted & responder.owned))
        if self._on_view_change is not None:
            self._on_view_change(view)

    def _interfaces(self, ownership: L2Ownership) -> tuple[str, ...]:
        return ownership.interfaces or self.config.default_interfaces

    def _reconcile(self, *, hand_over: bool = False) -> None:
        """Answer for what this node owns now. With ``hand_over`` (a plan or servability change
        made here), a VIP another live node takes is released, not dropped; a view change (a
        node died, came back, or a peer's servability changed) drops it at once: the peer
        already owns it in its own view and announced it."""
        view = self.membership.view
        owned = owned_here(self._ownerships, self.config.node, view)
        owned_ips = frozenset(o.ip for o in owned)
        peer_owned = owned_by_peers(self._ownerships, self.config.node, view)
        lost = (self._owned - owned_ips) & peer_owned if hand_over else frozenset()
        now = self._now()
        timeout = self.config.release_timeout
        claimed = frozenset(
            ip
            for ip in self._releasing.ips  # a claim counts from the start of the release
            for r in self._responders.values()
            if r.claims.get(ip_address(ip), float("-inf")) > now - timeout
        )
        self._releasing = self._releasing.step(
            lost_to_peer=lost, peer_owned=peer_owned, claimed=claimed, now=now, timeout=timeout
        )
        if lost - self._releasing.ips:
            log.info("l2 %s: %s already claimed by the new owner", self.config.node, sorted(lost))
        wanted: dict[str, set[IPAddress]] = {}
        releasing: dict[str, set[IPAddress]] = {}
        for ownership in self._ownerships:
            for ifname in self._interfaces(ownership):
                wanted.setdefault(ifname, set())
                releasing.setdefault(ifname, set())
                if ownership in owned:
                    wanted[ifname].add(ip_address(ownership.ip))
                elif ownership.ip in self._releasing.ips:
                    releasing[ifname].add(ip_address(ownership.ip))
        for ifname in list(self._responders):
            if ifname not in wanted:
                unused = self._responders.pop(ifname)
                unused.set_owned(frozenset())
                closing = asyncio.get_running_loop().create_task(unused.close())
                self._closing.add(closing)
                closing.add_done_callback(self._closing.discard)
        for ifname, ips in wanted.items():
            active = self._responder(ifname)
            if active is not None:
                active.set_owned(frozenset(ips), frozenset(releasing[ifname]))
        for ownership in self._ownerships:
            self.metrics.vip_owned.labels(ownership.ip).set(1 if ownership in owned else 0)
        self._set_owned(owned_ips)
        self._arm_release_timer()

    def _arm_release_timer(self) -> None:
        if self._release_timer is not None:
            self._release_timer.cancel()
            self._release_timer = None
        deadline = self._releasing.next_deadline()
        if deadline is not None:
            self._release_timer = asyncio.get_running_loop().call_at(deadline, self._on_release_due)

    def _on_release_due(self) -> None:
        self._release_timer = None
        if self._started:
            self._reconcile()

    def _on_claim(self, ip: IPAddress) -> None:
        """Another MAC announced a VIP we are releasing: the new owner answers, we stop."""
        log.info(
            "l2 %s: %s claimed by its new owner, no longer answered here", self.config.node, ip
        )
        if self._started:
            self._reconcile()

    def _set_owned(self, owned: frozenset[str]) -> None:
        taken, released = owned - self._owned, self._owned - owned
        if not taken and not released:
            return
        self.metrics.ownership_changes.labels("taken").inc(len(taken))
        self.metrics.ownership_changes.labels("released").inc(len(released))
        log.info(
            "l2 %s: owns %s (taken %s, released %s)",
            self.config.node,
            sorted(owned),
            sorted(taken),
            sorted(released),
        )
        self._owned = owned
        if self._on_ownership is not None:
            self._on_ownership(owned)

    def _responder(self, ifname: str) -> InterfaceResponder | None:
        responder = self._responders.get(ifname)
        if responder is not None:
            return responder
        try:
            sock, mac = open_packet_socket(ifname)
        except OSError as exc:
            # retried on the next plan or view change
            self._interface_errors[ifname] = str(exc)
            log.warning("l2 %s: cannot open %s: %s", self.config.node, ifname, exc)
            return None
        self._interface_errors.pop(ifname, None)
        responder = InterfaceResponder(
            ifname, sock, mac, self.config.schedule, self.metrics, self._on_claim
        )
        self._responders[ifname] = responder
        return responder

    # -- status --------------------------------------------------------------------------------
    def status(self) -> dict[str, object]:
        """Plain data: the membership view, who owns each VIP in this view, what we answer."""
        view = self.membership.view
        now = asyncio.get_running_loop().time()
        vips = []
        for ownership in self._ownerships:
            owner = owner_of(ownership, view)
            vips.append(
                {
                    "ip": ownership.ip,
                    "owner": owner,
                    "candidates": list(ownership.candidates),
                    "interfaces": list(self._interfaces(ownership)),
                    "answering_here": ownership.ip in self._owned,
                    "releasing_here": ownership.ip in self._releasing.ips,
                    "servable_here": canonical_ip(ownership.ip) in self.membership.serving,
                }
            )
        return {
            "node": self.config.node,
            "membership": self.membership.status(now),
            "vips": vips,
            "interfaces": {
                name: {"mac": format_mac(r.mac), "owned": sorted(str(ip) for ip in r.owned)}
                for name, r in sorted(self._responders.items())
            },
            "interface_errors": dict(self._interface_errors),
        }
