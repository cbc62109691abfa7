"""Weight updates without flapping: a hold-down on each route's link bandwidth, pure.

Pods come and go in bursts (a rollout changes a node's ready count every few seconds); each
change of a weighted route's link bandwidth community is one UPDATE to every router, and a
router re-computes its multipath weights on each. :func:`pace` lets a route's weight change
at most once per ``interval`` seconds and coalesces what happens in between:

- a route that appears, or one whose weight is unchanged, passes as it is (announcing and
  withdrawing are never delayed: pacing only ever touches the weight of a route that stays);
- a weight change after ``interval`` since the route's last weight was sent passes at once,
  and starts a hold-down of ``interval``;
- a weight change during the hold-down is held: the route keeps the weight last sent (every
  other attribute is the new one), and :func:`pace` returns the deadline at which the edge
  must call it again; the newest desired weight then goes out (the last weight always wins,
  the intermediate ones are never sent).

A weight change is never a withdrawal and re-announcement: the route stays in the plan with
one of its two weights. Time is a value passed in (the edge's Clock); the state is a value
returned.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from vipcast.core.desired import BGPRoute, NodePlan
from vipcast.proto.bgp.ext_communities import decode_link_bandwidth

#: default seconds between two weight changes of one route
DEFAULT_INTERVAL = 5.0


@dataclass(frozen=True)
class Sent:
    """What a route last carried out, and when its weight last changed."""

    route: BGPRoute
    weight_at: float


@dataclass(frozen=True)
class PacingState:
    #: prefix -> what its route last carried out
    sent: Mapping[str, Sent] = field(default_factory=dict)


def link_bandwidth(route: BGPRoute) -> int | None:
    """The route's link bandwidth extended community (the raw value), or None."""
    return next((c for c in route.extended_communities
                 if decode_link_bandwidth(c) is not None), None)


def _with_link_bandwidth(route: BGPRoute, value: int | None) -> BGPRoute:
    kept = tuple(c for c in route.extended_communities if decode_link_bandwidth(c) is None)
    return replace(route, extended_communities=kept if value is None else (*kept, value))


def pace(
    plan: NodePlan, state: PacingState, now: float, interval: float = DEFAULT_INTERVAL
) -> tuple[NodePlan, PacingState, float | None]:
    """``plan`` with held weights, the new state, and the earliest deadline at which a held
    weight is due (None: nothing held). ``plan`` itself is returned when nothing is held."""
    sent: dict[str, Sent] = {}
    routes: list[BGPRoute] = []
    deadline: float | None = None
    held = False
    for route in plan.bgp:
        before = state.sent.get(route.prefix)
        if before is None:
            sent[route.prefix] = Sent(route, now)
            routes.append(route)
            continue
        want = link_bandwidth(route)
        had = link_bandwidth(before.route)
        if want == had:
            out = before.route if before.route == route else route
            sent[route.prefix] = Sent(out, before.weight_at)
            routes.append(out)
            continue
        due = before.weight_at + interval
        if now >= due:
            sent[route.prefix] = Sent(route, now)
            routes.append(route)
            continue
        out = _with_link_bandwidth(route, had)
        if out == before.route:
            out = before.route
        sent[route.prefix] = Sent(out, before.weight_at)
        routes.append(out)
        held = True
        deadline = due if deadline is None else min(deadline, due)
    if held or any(r is not p for r, p in zip(routes, plan.bgp, strict=True)):
        plan = replace(plan, bgp=tuple(routes))
    return plan, PacingState(sent), deadline
