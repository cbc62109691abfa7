"""The node pipeline's pure planner: (snapshot, local observations, membership, node) -> Plan.

::

    source ──> Snapshot ──> plan(snapshot, local) ──> NodePlan ──> consumers apply the diff

A :class:`Snapshot` is one whole, validated config together with everything derived from the
config alone for this node: its duties (routes, L2 owners, NAT rules, local VIPs, from
:mod:`vipcast.core.plan`), its BGP and BFD sessions and its health-check targets. It is built
once per config change (:func:`snapshot`).

:func:`plan` completes a snapshot with what the node observes now (:class:`Local`): which
services it can serve (healthy and verified: only their routes are announced and only their L2
VIPs may be owned), which backends fail their checks, which nodes the membership view says are
dead (their backends leave the NAT maps). It does no more than filter, so a health flip or a
membership change re-plans in milliseconds from memory, and the unchanged parts of the plan are
the very same objects as before: consumers diff by identity cheaply.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

from vipcast.core.desired import (
    BackendKey,
    BGPRoute,
    BgpSession,
    HealthTarget,
    L2Member,
    NatRule,
    NodePlan,
    RouteDelta,
)
from vipcast.core.desired import NodeIdentity as NodeIdentity  # its home before (the tests')
from vipcast.core.gateway import translate
from vipcast.core.gateway.address import proxied
from vipcast.core.gateway.model import ProxyModel
from vipcast.core.handoff import hand_off_targets
from vipcast.core.health import ANNOTATION, health_targets, parse_health_check
from vipcast.core.sessions import bfd_peers, bgp_sessions
from vipcast.core.weights import with_weights
from vipcast.spec import Service, Spec, annotation
from vipcast.spec.health import HealthCheckConfig


@dataclass(frozen=True)
class Local:
    """What the node observes now: the planner's inputs besides the config."""

    #: services with a healthy backend and a verified VIP path; None: not gated (no data plane)
    servable: frozenset[str] | None = None
    #: backends failing their health checks
    down: frozenset[BackendKey] = frozenset()
    #: nodes the membership view says are dead: their backends leave Cluster-policy maps
    dead_nodes: frozenset[str] = frozenset()
    #: the node's Envoy is ready and ACKed the current configuration: the Gateways' VIPs may
    #: be announced (their stand-in Services join ``servable``)
    proxy_ready: bool = False


@dataclass(frozen=True)
class Snapshot:
    """One whole config and what it alone asks of the node (frozen; see :func:`snapshot`)."""

    spec: Spec
    duties: NodePlan
    plan_base: NodePlan
    #: services with a health-check annotation that could not be parsed, with why
    health_problems: tuple[tuple[str, str], ...] = ()
    #: per service, its health-check config (annotated services only)
    health_configs: Mapping[str, HealthCheckConfig] = field(default_factory=dict)
    #: the Gateways' stand-in Services (announced only while ``Local.proxy_ready``)
    proxied: frozenset[str] = frozenset()
    #: the last servable filter applied to it (see :func:`plan`); not part of the value
    filter: _Filter | None = field(default=None, compare=False, repr=False)
    #: the backends of the last set of dead nodes, by rule (see :func:`_on_dead_nodes`)
    dead_index: _DeadIndex | None = field(default=None, compare=False, repr=False)


def health_configs(services: Iterable[Service]
                   ) -> tuple[dict[str, HealthCheckConfig], list[tuple[str, str]]]:
    """Per-service health-check configs from the annotation, and the refused annotations."""
    out: dict[str, HealthCheckConfig] = {}
    problems: list[tuple[str, str]] = []
    for service in services:
        if not service.metadata.annotations:
            continue
        text = annotation(service.metadata, ANNOTATION)
        if text:
            parsed = parse_health_check(text)
            if isinstance(parsed, str):
                problems.append((service.key, f"ignoring health check {text!r}: {parsed}"))
            else:
                out[service.key] = parsed
    return out, problems


def _usable(rule: NatRule) -> Iterable[BackendKey]:
    """Backends of a rule that may get traffic, health aside (ready, VIP's family, policy)."""
    v6 = ":" in rule.vip
    for b in rule.backends:
        if b.ready and (":" in b.ip) == v6 and (rule.traffic_policy == "Cluster" or b.local):
            yield (b.ip, b.port)


def l2_members(spec: Spec, node: str) -> tuple[L2Member, ...]:
    """The Nodes that could own an L2 address: Ready and selected by some L2Advertisement's
    nodeSelectors (none: every node), each at its first InternalIP; ``node`` itself always
    (a node without a speaker there would count against quorum without ever answering).
    Empty when the config has no L2Advertisement."""
    if not spec.l2_advertisements:
        return ()
    selectors = [a.spec.node_selectors for a in spec.l2_advertisements]
    me = spec.node(node)
    members = [L2Member(node, me.addresses_of()[0] if me and me.addresses_of() else None)]
    members.extend(
        L2Member(n.metadata.name, n.addresses_of()[0])
        for n in spec.nodes
        if n.metadata.name != node and n.addresses_of() and n.ready
        and any(not sel or any(s.matches(n.metadata.labels) for s in sel) for sel in selectors)
    )
    return tuple(sorted(members))


def liveness_members(spec: Spec, node: str) -> tuple[L2Member, ...]:
    """The membership that tells a BGP node which nodes are dead: every Node with an
    InternalIP (at its first one), Ready or not (a node's death is what the membership is
    for), and ``node`` itself. Empty with an L2Advertisement (the L2 membership runs and
    tells it, over its own members) or without a BGPAdvertisement (no VIP traffic arrives).
    In Kubernetes the Node objects say who is a member; the membership only says who is
    alive, faster than the Node's conditions or the health checks."""
    if spec.l2_advertisements or not spec.bgp_advertisements:
        return ()
    me = spec.node(node)
    members = [L2Member(node, me.addresses_of()[0] if me and me.addresses_of() else None)]
    members.extend(
        L2Member(n.metadata.name, n.addresses_of()[0])
        for n in spec.nodes
        if n.metadata.name != node and n.addresses_of()
    )
    return tuple(sorted(members))


def _proxy(spec: Spec, node: str, addresses: Mapping[str, tuple[str, ...]] | None
           ) -> ProxyModel | None:
    """The node's L7 proxy model (None without Gateways and Ingresses)."""
    if not (spec.gateways or spec.ingresses):
        return None
    return translate(spec, node, addresses).model


def snapshot(
    spec: Spec,
    duties: NodePlan,
    identity: NodeIdentity,
    previous: Snapshot | None = None,
    changed: Mapping[str, Service | None] | None = None,
    gateway_addresses: Mapping[str, tuple[str, ...]] | None = None,
) -> Snapshot:
    """The snapshot of ``spec`` for this node, given its duties (``plan_node``'s result).

    With ``previous`` and ``changed`` (the Services that differ from the previous config, by
    key; None: removed; every other object of the config the same), only their part is
    computed again; the result is the same as without. ``gateway_addresses``: Gateway key ->
    the addresses allocated to it (its stand-in Service's, :mod:`vipcast.core.gateway.address`).
    """
    proxied_keys = proxied(spec) if spec.gateways or spec.ingresses else frozenset()
    if previous is None or changed is None or previous.plan_base.node != identity.node:
        peers = bgp_sessions(spec, identity.node, router_id=identity.router_id,
                             restarting=identity.restarting)
        configs, problems = health_configs(spec.services)
        base = replace(
            duties,
            peers=peers,
            bfd=bfd_peers(spec, [p.name for p in peers]),
            hand_off=hand_off_targets(spec, identity.node),
            health=health_targets(duties.nat, configs, _usable),
            l2_members=l2_members(spec, identity.node),
            liveness_members=liveness_members(spec, identity.node),
            proxy=_proxy(spec, identity.node, gateway_addresses),
        )
        base = with_weights(spec, base, previous.plan_base if previous is not None else None)
        return Snapshot(spec, duties, base, tuple(problems), configs, proxied_keys)
    old = previous.plan_base
    keys = set(changed)
    configs = {k: v for k, v in previous.health_configs.items() if k not in keys}
    fresh, fresh_problems = health_configs(s for s in changed.values() if s is not None)
    configs.update(fresh)
    problems = [*(p for p in previous.health_problems if p[0] not in keys), *fresh_problems]
    # the health targets: the old ones without the changed services, plus their new ones;
    # the NAT rules are sorted by service, the targets by (ip, port): found by bisection
    adding: dict[BackendKey, set[str]] = {}
    touched: set[BackendKey] = set()
    for rule in _rules_of(previous.duties.nat, keys):
        if rule.protocol == "TCP":
            touched.update(_usable(rule))
    for rule in _rules_of(duties.nat, keys):
        if rule.protocol == "TCP":
            for key in _usable(rule):
                adding.setdefault(key, set()).add(rule.service)
    default = HealthCheckConfig()
    targets = list(old.health)
    for key in sorted(touched | adding.keys()):
        at = bisect.bisect_left(targets, key, key=_target_key)
        target = targets[at] if at < len(targets) and _target_key(targets[at]) == key else None
        names = (set(target.services) - keys if target else set()) | adding.get(key, set())
        if names:
            ordered = tuple(sorted(names))
            config = next((configs[n] for n in ordered if n in configs), default)
            fresh_target = HealthTarget(key[0], key[1], ordered, config)
            if target is None:
                targets.insert(at, fresh_target)
            else:
                targets[at] = fresh_target
        elif target is not None:
            del targets[at]
    health = tuple(targets)
    base = replace(duties, peers=old.peers, bfd=old.bfd, hand_off=old.hand_off, health=health,
                   l2_members=old.l2_members, liveness_members=old.liveness_members,
                   proxy=_proxy(spec, identity.node, gateway_addresses))
    base = with_weights(spec, base, old)
    return Snapshot(spec, duties, base, tuple(sorted(problems)), configs, proxied_keys)


def first_routes(spec: Spec, duties: NodePlan, identity: NodeIdentity
                 ) -> tuple[tuple[BGPRoute, ...], tuple[BgpSession, ...]] | None:
    """The routes and BGP sessions of the first plan of ``spec`` on a node that observes
    nothing yet (:func:`plan` with ``Local()`` of the :func:`snapshot` of ``duties`` with no
    previous one), from the duties alone: ahead of the rest of the snapshot (health targets,
    BFD, L2 and liveness members, the proxy model), and the very route tuple that plan
    carries. None where the routes carry weights (those are made with the whole snapshot)."""
    peers = bgp_sessions(spec, identity.node, router_id=identity.router_id,
                         restarting=identity.restarting)
    base = replace(duties, peers=peers)
    if with_weights(spec, base) is not base:
        return None
    return duties.bgp, peers


def _target_key(target: HealthTarget) -> BackendKey:
    return (target.ip, target.port)


def _rules_of(nat: Sequence[NatRule], keys: Iterable[str]) -> Iterator[NatRule]:
    """The rules of the services ``keys`` (``nat`` is sorted by service: each one block)."""
    for key in keys:
        start = bisect.bisect_left(nat, key, key=_service_of)
        end = bisect.bisect_right(nat, key, lo=start, key=_service_of)
        yield from nat[start:end]


def _service_of(rule: NatRule) -> str:
    return rule.service


def _route_for(route: BGPRoute, servable: frozenset[str]) -> BGPRoute | None:
    """The route as announced while only ``servable`` services can be served (None: not)."""
    services = route.services
    if len(services) == 1:
        return route if services[0] in servable else None
    kept = tuple(s for s in services if s in servable)
    if len(kept) == len(services):
        return route  # the same object: consumers see it unchanged
    return replace(route, services=kept) if kept else None


class _Filter:
    """The last servable filter of one snapshot, kept with it: a new servable set looks again
    only at the routes and L2 VIPs of the services that changed (the same result)."""

    def __init__(self, base: NodePlan) -> None:
        self.servable: frozenset[str] | None = None
        self.routes: list[BGPRoute | None] = []
        self.bgp: tuple[BGPRoute, ...] = ()
        self.l2: set[str] = set()
        self.l2_servable: frozenset[str] = frozenset()
        self.route_at: dict[str, list[int]] = {}
        for i, route in enumerate(base.bgp):
            for service in route.services:
                self.route_at.setdefault(service, []).append(i)
        self.l2_of: dict[str, list[int]] = {}
        for i, own in enumerate(base.l2):
            for service in own.services:
                self.l2_of.setdefault(service, []).append(i)

    def apply(self, base: NodePlan, servable: frozenset[str]
              ) -> tuple[tuple[BGPRoute, ...], frozenset[str], RouteDelta | None]:
        """The routes and L2 VIPs for ``servable``, and how the routes differ from the last
        call's (None: looked at everything, or nothing changed)."""
        last = self.servable
        removed: list[BGPRoute] = []
        added: list[BGPRoute] = []
        incremental = False
        if last is None or len(servable ^ last) * 8 > len(base.bgp) + len(base.l2):
            self.routes = [_route_for(r, servable) for r in base.bgp]
            self.l2 = {o.ip for o in base.l2 if any(s in servable for s in o.services)}
        else:
            incremental = True
            delta = servable ^ last
            for i in {i for s in delta for i in self.route_at.get(s, ())}:
                before, after = self.routes[i], _route_for(base.bgp[i], servable)
                if before is not after:
                    if before is not None:
                        removed.append(before)
                    if after is not None:
                        added.append(after)
                self.routes[i] = after
            for i in {i for s in delta for i in self.l2_of.get(s, ())}:
                own = base.l2[i]
                if any(s in servable for s in own.services):
                    self.l2.add(own.ip)
                else:
                    self.l2.discard(own.ip)
        changed: RouteDelta | None = None
        if last != servable or self.servable is None:
            previous = self.bgp
            # filter(None, ...) drops the Nones in C (a BGPRoute is always true)
            self.bgp = tuple(filter(None, self.routes))
            self.l2_servable = frozenset(self.l2)
            if incremental:
                changed = RouteDelta(previous, self.bgp, tuple(removed), tuple(added))
        self.servable = servable
        return self.bgp, self.l2_servable, changed


def healthy_services(rules: Iterable[NatRule], down: frozenset[BackendKey]) -> frozenset[str]:
    """Services with some backend that may get traffic and is not down."""
    return frozenset(
        r.service for r in rules if any(k not in down for k in _usable(r))
    )


@dataclass(frozen=True)
class _DeadIndex:
    """Per Cluster-policy rule with a backend on a dead node: those backends, and the rule's
    other usable backends (computed once per set of dead nodes and snapshot)."""

    dead: frozenset[str]
    rules: tuple[tuple[tuple[BackendKey, ...], tuple[BackendKey, ...]], ...]


def _dead_index(base: NodePlan, dead: frozenset[str]) -> _DeadIndex:
    rules = []
    for rule in base.nat:
        if rule.traffic_policy != "Cluster":
            continue  # Local: only this node's own endpoints, never on another node
        v6 = ":" in rule.vip
        gone: list[BackendKey] = []
        others: list[BackendKey] = []
        for b in rule.backends:
            if b.ready and (":" in b.ip) == v6:
                (gone if b.node in dead else others).append((b.ip, b.port))
        if gone:
            rules.append((tuple(gone), tuple(others)))
    return _DeadIndex(dead, tuple(rules))


def _on_dead_nodes(snap: Snapshot, dead: frozenset[str], down: frozenset[BackendKey]
                   ) -> frozenset[BackendKey]:
    """The backends on dead nodes to leave out of the NAT maps: all of them, except those of a
    rule that would keep no backend at all without them (it keeps them: if the node is dead
    they fail either way, and if only its agent died -- the membership sees agents, not
    machines -- they still serve; the health checks decide)."""
    index = snap.dead_index
    if index is None or index.dead != dead:
        index = _dead_index(snap.plan_base, dead)
        object.__setattr__(snap, "dead_index", index)  # a memo: the result is the same
    out: set[BackendKey] = set()
    keep: set[BackendKey] = set()
    for gone, others in index.rules:
        if any(k not in down for k in others):
            out.update(gone)
        else:
            keep.update(gone)
    return frozenset(out - keep)



def servable_now(snap: Snapshot, local: Local) -> frozenset[str] | None:
    """The services the plan may announce: the verified ones, and the Gateways' stand-in
    Services while the node's proxy is ready (None: not gated, no data plane)."""
    if local.servable is None:
        return None
    if local.proxy_ready and snap.proxied:
        return local.servable | snap.proxied
    return local.servable

def plan(snap: Snapshot, local: Local) -> NodePlan:
    """The node's one plan: the snapshot's, with what it observes now applied (pure, cheap)."""
    base = snap.plan_base
    down = local.down
    if local.dead_nodes:
        down = down | _on_dead_nodes(snap, local.dead_nodes, down)
    if local.servable is None:
        return replace(base, down=down) if down != base.down else base
    if snap.filter is None:
        object.__setattr__(snap, "filter", _Filter(base))  # a memo: the result is the same
    assert snap.filter is not None
    servable = servable_now(snap, local)
    assert servable is not None
    bgp, l2_servable, delta = snap.filter.apply(base, servable)
    return replace(base, bgp=bgp, down=down, l2_servable=l2_servable, bgp_delta=delta)
