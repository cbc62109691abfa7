"""The agent's values: its options, one validated configuration (:class:`Desired`), what a plan
consumer is, and the pure helpers that turn planned sessions into the speaker's settings.

Split from :mod:`vipcast.app.agent` (the driver); imported by every composition root that
builds an agent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from vipcast.app.start_early import to_peer_settings as to_peer_settings
from vipcast.core.desired import NodePlan
from vipcast.core.drain import DEFAULT_DRAIN_LABELS, DEFAULT_DRAIN_TAINTS
from vipcast.core.pipeline import Snapshot
from vipcast.core.plan import plan_for_spec
from vipcast.core.sessions import bgp_sessions
from vipcast.core.weights import route_weight
from vipcast.proto.membership import suspicion_min_problem
from vipcast.runtime.bgp.peer import PeerSettings
from vipcast.runtime.bgp.peer_status import PeerStatus
from vipcast.spec.errors import Issue
from vipcast.spec.load import Spec


class PlanConsumer(Protocol):
    """Anything that acts on the node's plan (BGP speaker, data plane, L2 responder, ...)."""

    async def apply(self, plan: NodePlan) -> None: ...


#: (spec, node name) -> the node's plan; the default wires the allocator and core.plan
Planner = Callable[[Spec, str], NodePlan]


@dataclass(frozen=True)
class AgentOptions:
    config_paths: tuple[Path, ...]
    node: str
    metrics_address: tuple[str, int] | None = None
    #: where to accept BGP connections (passive peers, collisions); empty: none
    listen: tuple[tuple[str, int], ...] = ()
    router_id: str | None = None
    state_dir: Path | None = None
    poll_interval: float = 1.0
    seed: int | None = None
    #: reload (read, validate, plan) in a worker thread, so a big object set (10,000 services
    #: take seconds to parse) does not stall BFD timers, keepalives and /status; only for
    #: agents whose :meth:`Agent.load` and planner touch no loop-owned state (the file agent)
    load_in_thread: bool = False
    #: seconds between announcing with GRACEFUL_SHUTDOWN and withdrawing, on a drain
    drain_grace: float = 30.0
    #: Node labels and taint keys that drain the node (core/drain.py; docs/drain.md)
    drain_labels: tuple[str, ...] = DEFAULT_DRAIN_LABELS
    drain_taints: tuple[str, ...] = DEFAULT_DRAIN_TAINTS
    #: a drain ends early once no new connection reached the node's VIPs for this long (0: off)
    drain_quiet: float = 5.0
    #: seconds between two weight changes of one route (core/weight_pacing.py; 0: unpaced)
    weight_interval: float = 5.0
    #: the membership's dead nodes leave the Cluster-policy maps (app/liveness.py)
    node_liveness: bool = True
    #: the membership's suspicion floor in seconds (L2 and node liveness); None: the default
    #: of ``Timers.lan`` (docs/membership.md, "The suspicion floor")
    suspicion_min: float | None = None
    #: keep validated object files here across restarts (sources/validated_cache.py)
    cache_dir: Path | None = None
    #: seconds a new config must run unchanged before the start cache is written (a burst of
    #: reloads writes it once; app/start_cache.py)
    cache_quiet: float = 5.0

    def __post_init__(self) -> None:
        if self.suspicion_min is not None:
            problem = suspicion_min_problem(self.suspicion_min)
            if problem is not None:
                raise ValueError(f"AgentOptions.suspicion_min {problem}")


@dataclass(frozen=True)
class Desired:
    """One validated configuration and what it asks of this node."""

    spec: Spec
    plan: NodePlan
    peers: tuple[PeerSettings, ...]
    files: Mapping[str, object] = field(default_factory=dict)
    #: the snapshot the plan was made from (re-planned from on every observation)
    snapshot: Snapshot | None = None


def peer_settings(
    spec: Spec, node: str, *, router_id: str | None = None, restarting: bool = False
) -> tuple[PeerSettings, ...]:
    """The BGP sessions this node keeps, as the speaker's settings (pure)."""
    return tuple(
        to_peer_settings(s)
        for s in bgp_sessions(spec, node, router_id=router_id, restarting=restarting)
    )


def issues_table(issues: Sequence[Issue]) -> str:
    """The spec errors as an aligned text table for the log."""
    rows = [("FILE", "OBJECT", "FIELD", "MESSAGE")] + [
        (i.file or "-", i.obj, i.field or "-", i.message) for i in issues
    ]
    widths = [max(len(row[c]) for row in rows) for c in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(widths[c]) if c < 3 else cell for c, cell in enumerate(row))
        for row in rows
    )


def default_planner(spec: Spec, node: str) -> NodePlan:
    """Allocation (same on every node for the same files) and this node's plan."""
    return plan_for_spec(spec, node)




def status_document(node: str, restarting: bool, drain: str, current: Desired | None,
                    errors: Sequence[Issue], peers: Sequence[PeerStatus],
                    sections: Mapping[str, Any]) -> dict[str, Any]:
    """The agent's /status document: the node, its config, BGP peers and routes, and one
    key per further section (BFD, L2, data plane, ...)."""
    plan = current.plan if current is not None else None
    document: dict[str, Any] = {
        "node": node,
        "restarting": restarting,
        "drain": drain,
        "config": {
            "files": sorted(current.files) if current else [],
            "errors": [asdict(issue) for issue in errors],
        },
        "peers": [asdict(peer) for peer in peers],
        "routes": [
            {"prefix": r.prefix, "peers": list(r.peers), "services": list(r.services),
             "weight": route_weight(r)}
            for r in (plan.bgp if plan is not None else ())
        ],
    }
    document.update(sections)
    return document
