"""Node drains that lose no request (RFC 8326 GRACEFUL_SHUTDOWN): the state machine and its
effect on the plan, both pure.

The sequence of a drain, as a literal transition table (:data:`TRANSITIONS`):

::

    SERVING --drain--> DRAINING --routers-moved | grace-expired--> DRAINED
       ^                  |                                           |
       |               undrain                                     undrain
       |                  v                                           v
       +----------------- SERVING  <--health-verified-- UNDRAINING (still withdrawn)

What each state does to the node's plan (:data:`PHASE_OF`, :func:`apply_drain`):

- ``SERVING``: the plan as it is.
- ``DRAINING``: every route is still announced, with the GRACEFUL_SHUTDOWN community 65535:0
  added and LOCAL_PREF 0 (sent to iBGP peers only; eBGP routers that honour RFC 8326 set it
  themselves), so the routers move traffic to the other nodes *before* anything is withdrawn.
- ``DRAINED`` / ``UNDRAINING``: no BGP route is announced. L2 duties are kept as they are
  (a hand-over to the next candidate before this node stops answering is not built yet:
  dropping them here would leave the VIP unanswered).

Timers (the grace period) live at the edge with the injectable Clock; this module only says
which deadline a state wants (:func:`deadline_of`). Undrain re-announces only after the edge
saw local health verified (the ``health-verified`` event).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace

from vipcast.core.desired import NodePlan
from vipcast.proto.bgp.ext_communities import GRACEFUL_SHUTDOWN
from vipcast.spec import Issue, Node, Spec

#: Node annotation of the object files (standalone) and of Kubernetes: "true" drains
DRAIN_ANNOTATION = "vipcast.io/drain"
#: Node labels that drain a node by default (any value but "false"); configurable
DEFAULT_DRAIN_LABELS = (
    "node.kubernetes.io/exclude-from-external-load-balancers",
    "vipcast.io/drain",
)
#: Node taints (by key, any value and effect) that drain a node by default; configurable.
#: The cluster autoscaler's taint on a node it is about to delete, and our own key. Cordon
#: (``node.kubernetes.io/unschedulable``) is deliberately not one: cordon is not shutdown.
DEFAULT_DRAIN_TAINTS = (
    "ToBeDeletedByClusterAutoscaler",
    "vipcast.io/drain",
)
#: Node annotation the agent reports its drain state in ("draining", "drained")
DRAIN_STATE_ANNOTATION = "vipcast.io/drain-state"
#: default grace between GRACEFUL_SHUTDOWN and the withdrawal, seconds
DEFAULT_GRACE = 30.0
#: default quiet period: no new connection to the node's VIPs for this long while DRAINING
#: means the routers moved away (the wait ends early)
DEFAULT_QUIET = 5.0


class DrainState(enum.Enum):
    SERVING = "serving"
    DRAINING = "draining"
    DRAINED = "drained"
    UNDRAINING = "undraining"


class DrainEvent(enum.Enum):
    DRAIN = "drain"
    UNDRAIN = "undrain"
    #: the routers no longer prefer this node (observed), or nothing shows they still do
    ROUTERS_MOVED = "routers-moved"
    GRACE_EXPIRED = "grace-expired"
    HEALTH_VERIFIED = "health-verified"


class Phase(enum.Enum):
    """What the plan looks like in a state."""

    ANNOUNCE = "announce"
    GRACEFUL_SHUTDOWN = "graceful-shutdown"
    WITHDRAWN = "withdrawn"


S, E = DrainState, DrainEvent
#: (state, event) -> next state; a pair not listed leaves the state as it is
TRANSITIONS: Mapping[tuple[DrainState, DrainEvent], DrainState] = {
    (S.SERVING, E.DRAIN): S.DRAINING,
    (S.DRAINING, E.ROUTERS_MOVED): S.DRAINED,
    (S.DRAINING, E.GRACE_EXPIRED): S.DRAINED,
    (S.DRAINING, E.UNDRAIN): S.SERVING,  # nothing was withdrawn: announce plainly again
    (S.DRAINED, E.UNDRAIN): S.UNDRAINING,
    (S.UNDRAINING, E.HEALTH_VERIFIED): S.SERVING,
    (S.UNDRAINING, E.DRAIN): S.DRAINED,
}

PHASE_OF: Mapping[DrainState, Phase] = {
    S.SERVING: Phase.ANNOUNCE,
    S.DRAINING: Phase.GRACEFUL_SHUTDOWN,
    S.DRAINED: Phase.WITHDRAWN,
    S.UNDRAINING: Phase.WITHDRAWN,
}


def step(state: DrainState, event: DrainEvent) -> DrainState:
    """The state after ``event`` (the same state when the table has no such transition)."""
    return TRANSITIONS.get((state, event), state)


def deadline_of(state: DrainState, entered_at: float, grace: float) -> float | None:
    """When the edge must deliver GRACE_EXPIRED (None: no timer in this state)."""
    return entered_at + grace if state is S.DRAINING else None


def apply_drain(plan: NodePlan, phase: Phase) -> NodePlan:
    """``plan`` as announced in ``phase`` (the same object in ``ANNOUNCE``)."""
    if phase is Phase.ANNOUNCE:
        return plan
    # L2: a draining node serves no VIP any more, so the members elect the next owner; this
    # node keeps answering (releasing) until it sees that owner's gratuitous ARP / NA
    # (runtime/l2, docs/l2.md "Hand-over on a plan change")
    if phase is Phase.WITHDRAWN:
        return replace(plan, bgp=(), l2_servable=frozenset())
    routes = tuple(
        replace(
            r,
            communities=r.communities if GRACEFUL_SHUTDOWN in r.communities
            else (*r.communities, GRACEFUL_SHUTDOWN),
            local_pref=0,
        )
        for r in plan.bgp
    )
    return replace(plan, bgp=routes, l2_servable=frozenset())


def wants_drain(
    node: Node | None,
    labels: tuple[str, ...] = DEFAULT_DRAIN_LABELS,
    taints: tuple[str, ...] = DEFAULT_DRAIN_TAINTS,
) -> bool:
    """Whether the Node object asks for a drain: the annotation ``vipcast.io/drain: "true"``,
    one of ``labels`` present (with any value but "false"), or a taint whose key is one of
    ``taints`` (any value, any effect)."""
    if node is None:
        return False
    meta = node.metadata
    if meta.annotations.get(DRAIN_ANNOTATION, "").lower() == "true":
        return True
    if any(meta.labels.get(label, "false").lower() != "false" for label in labels):
        return True
    return any(t.key in taints for t in node.spec.taints)


def drain_issues_for(nodes: Mapping[str, Node], requested: str) -> str | None:
    """A reason when a drain names a node the config does not know (None: fine)."""
    if requested in nodes:
        return None
    known = ", ".join(sorted(nodes)) or "none"
    return f"no Node {requested!r} in the config (known: {known})"


def routers_moved(samples: Sequence[tuple[float, int]], quiet: float) -> bool:
    """Whether the routers stopped sending this node new connections: ``samples`` are
    (time, count of new connections to the node's VIPs) taken while DRAINING, oldest first;
    True once the count has not moved over the last ``quiet`` seconds (a node that got no
    connection at all in that span is one no router prefers either)."""
    if not samples or quiet <= 0:
        return False
    last_at, last = samples[-1]
    before = [count for at, count in samples if at <= last_at - quiet]
    return bool(before) and before[-1] == last


def drain_issues(spec: Spec) -> Iterator[Issue]:
    """Warnings for ``check-config``: a ``vipcast.io/drain`` annotation that is neither
    "true" nor "false" (it does not drain: nothing is withdrawn on a value we cannot read)."""
    for node in spec.nodes:
        value = node.metadata.annotations.get(DRAIN_ANNOTATION)
        if value is not None and value.lower() not in ("true", "false"):
            yield Issue(
                spec.origins.get(f"Node/{node.metadata.name}", ""), "Node", node.metadata.name,
                f"metadata.annotations[{DRAIN_ANNOTATION}]",
                f"{value!r} is neither \"true\" nor \"false\": the node is not drained "
                "(vipcast drain NODE sets \"true\")",
            )
