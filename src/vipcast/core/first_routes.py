"""One node's BGP routes alone, ahead of the rest of its plan.

A node's first plan (:func:`vipcast.core.plan.plan_node`) is its routes and the rest: NAT
rules with their backends (about half of the planning CPU on 10,000 Services), L2 duties,
local VIPs. A starting agent has nothing to announce until its routes are planned, and
everything else can wait until they are out (docs/pipeline.md, "Start-up"). :func:`node_routes`
walks the same announced Services, addresses, advertisements and peer groups as the plan
(:class:`~vipcast.core.plan_context.PlanContext`) and builds only the routes: the very route
values, in the very order, that ``plan_node(spec, assignments, node).bgp`` holds (a property
test compares them over generated configs). Where two advertisements announce one prefix
(their attributes are merged, see :mod:`vipcast.core.plan`) it gives None and the caller
plans the whole node first.

:func:`first_routes` adds the node's BGP sessions as the first plan of a start carries them
(:func:`vipcast.core.pipeline.first_routes`). Pure: values in, values out.
"""

from __future__ import annotations

from vipcast.core.desired import BGPRoute, BgpSession, NodeIdentity, NodePlan
from vipcast.core.pipeline import first_routes as pipeline_first_routes
from vipcast.core.plan import aggregate
from vipcast.core.plan_context import Assignments, PlanContext
from vipcast.spec import BGPAdvertisement, Spec

#: (prefix, peers, standard communities, large communities, localPref): one route's attributes
RouteKey = tuple[str, tuple[str, ...], tuple[int, ...], tuple[tuple[int, int, int], ...],
                 int | None]


def node_routes(spec: Spec, assignments: Assignments, node: str) -> tuple[BGPRoute, ...] | None:
    """``plan_node(spec, assignments, node).bgp`` without the rest of the plan; None where
    two advertisements announce one prefix (the plan merges their attributes: plan it whole)."""
    ctx = PlanContext(spec, assignments)
    if node not in ctx.nodes:
        return ()
    target = frozenset({node})
    advertised_by: dict[str, str] = {}  # prefix -> the one advertisement announcing it
    services: dict[RouteKey, list[str]] = {}  # the node's routes -> their services, in order
    for key, _service, ips in ctx.announced_services():
        allowed = ctx.allowed(key)
        for ip in sorted(ips) if len(ips) > 1 else ips:
            family, value = addr = ctx.address(ip)
            pools = ctx.pool_index.pools_of(*addr)
            if not pools:
                continue
            for _kind, adv, eligible in ctx.advertised_in(pools[0], allowed):
                if not isinstance(adv, BGPAdvertisement):
                    continue
                prefix = aggregate(family, value, adv)
                if advertised_by.setdefault(prefix, adv.name) != adv.name:
                    return None  # two advertisements of one prefix: merged by the plan
                if node not in eligible:
                    continue
                std, large = ctx.communities(adv)
                for peers, peer_nodes in ctx.peer_groups(adv):
                    if not target & peer_nodes:
                        continue
                    rk: RouteKey = (prefix, peers, std, large, adv.spec.local_pref)
                    listed = services.get(rk)
                    if listed is None:
                        services[rk] = [key]
                    elif listed[-1] != key:
                        listed.append(key)
    return tuple(BGPRoute(*rk, services=tuple(sorted(set(keys))))
                 for rk, keys in sorted(services.items(), key=lambda item: _order(item[0])))


def first_routes(spec: Spec, assignments: Assignments, identity: NodeIdentity
                 ) -> tuple[tuple[BGPRoute, ...], tuple[BgpSession, ...]] | None:
    """The routes and BGP sessions of the first plan of a start (that of
    :func:`vipcast.core.pipeline.first_routes`) from the allocation alone, before the node's
    duties are planned; None where :func:`node_routes` or that function gives none."""
    routes = node_routes(spec, assignments, identity.node)
    if routes is None:
        return None
    return pipeline_first_routes(spec, NodePlan(node=identity.node, bgp=routes), identity)


def _order(rk: RouteKey) -> tuple[object, ...]:
    """The plan's order of route keys (an unset localPref before any value)."""
    return (*rk[:4], rk[4] is not None, rk[4] or 0)
