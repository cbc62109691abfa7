"""Why a Service has its addresses, and why each node does or does not announce it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from vipcast.alloc import AllocationResult
from vipcast.core.desired import NodePlan
from vipcast.core.plan import plan_all
from vipcast.core.plan_context import PlanContext
from vipcast.core.weights import route_weight, weighted
from vipcast.spec import EndpointSlice, Node, Spec


@dataclass(frozen=True)
class NodeVerdict:
    node: str
    announces: bool
    #: what the node does for the service (one line per route / L2 duty)
    how: tuple[str, ...] = ()
    #: why it does not (one line per advertisement that could have applied)
    why_not: tuple[str, ...] = ()


@dataclass(frozen=True)
class Explanation:
    service: str
    ips: tuple[str, ...]
    pool: str | None
    reason: str
    message: str
    ready_endpoints: int
    nodes: tuple[NodeVerdict, ...]
    #: service-wide facts (not announced at all, no advertisement for the pool, ...)
    notes: tuple[str, ...] = ()
    #: addresses it held before and lost in this run, each with why
    invalidated: tuple[tuple[str, str], ...] = ()


def _duties(plan: NodePlan, key: str) -> tuple[str, ...]:
    out = []
    for route in plan.bgp:
        if key in route.services:
            weight = route_weight(route)
            extra = f" with weight {weight:g} (RFC 10005 link bandwidth)" if weight else ""
            out.append(f"BGP: announces {route.prefix} to {', '.join(route.peers)}{extra}")
    for own in plan.l2:
        if key in own.services:
            where = ", ".join(own.interfaces) or "all interfaces"
            if own.owner == plan.node:
                out.append(f"L2: owner of {own.ip} on {where}")
            else:
                rank = own.candidates.index(plan.node) + 1
                out.append(f"L2: standby #{rank} for {own.ip} (owner {own.owner})")
    return tuple(out)


def _why_not(ctx: PlanContext, key: str, node: str) -> tuple[str, ...]:
    service = ctx.services[key]
    local = service.spec.external_traffic_policy == "Local"
    out: list[str] = []
    for ip in ctx.assignments.get(key, ()):
        anns = ctx.announcements(key, ip)
        if not anns:
            out.append(f"{ip}: no BGPAdvertisement or L2Advertisement covers its pool")
        for ann in anns:
            what = f"{ip} ({ann.kind}Advertisement {ann.advertisement})"
            if node not in ctx.ready_nodes:
                out.append(f"{what}: node is not Ready")
            elif node not in ctx.adv_nodes[(ann.kind, ann.advertisement)]:
                out.append(f"{what}: node not selected by nodeSelectors")
            elif local and node not in ctx.local_nodes(key):
                out.append(f"{what}: externalTrafficPolicy Local and no ready endpoint here")
            elif ann.kind == "BGP":
                out.append(f"{what}: no BGPPeer of the advertisement selects this node")
            else:  # eligible for this service, but not for another one sharing the address
                out.append(
                    f"{what}: a service sharing the address is not eligible on this node "
                    "(sharers answer from the nodes eligible for all of them)"
                )
    return tuple(dict.fromkeys(out))


def explain(
    spec: Spec,
    result: AllocationResult,
    key: str,
    *,
    endpoint_slices: Iterable[EndpointSlice] | None = None,
    nodes: Iterable[Node] | None = None,
) -> Explanation | None:
    """The story of one service (``namespace/name``); None if it is not in the spec."""
    assignment = result.assignments.get(key)
    if assignment is None:
        return None
    # only the service and those sharing an address with it bear on its announcements
    mine = set(assignment.ips)
    assignments = {k: v for k, v in result.current().items() if mine & set(v)}
    ctx = PlanContext(spec, assignments, endpoint_slices, nodes)
    plans = weighted(
        spec, plan_all(spec, assignments, endpoint_slices=endpoint_slices, nodes=nodes)
    )
    ready = len(ctx.endpoints.get(key, ()))
    notes: list[str] = []
    if not assignment.ips:
        notes.append("no address: nothing to announce")
    elif ready == 0:
        notes.append("no ready endpoint: the service is not announced at all")
    if not ctx.nodes:
        notes.append("no Node objects in the input: no node can announce")
    verdicts = []
    for name, plan in plans.items():
        how = _duties(plan, key)
        if how:
            verdicts.append(NodeVerdict(name, True, how))
        elif assignment.ips and ready:
            verdicts.append(NodeVerdict(name, False, (), _why_not(ctx, key, name)))
        else:
            verdicts.append(NodeVerdict(name, False, (), tuple(notes[:1])))
    return Explanation(
        service=key,
        ips=assignment.ips,
        pool=assignment.pool,
        reason=assignment.reason.value,
        message=assignment.message,
        ready_endpoints=ready,
        nodes=tuple(verdicts),
        notes=tuple(notes),
        invalidated=assignment.invalidated,
    )
