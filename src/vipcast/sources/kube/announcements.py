"""What each node's speaker announces: the ``NodeAnnouncement`` status resource.

One cluster-scoped ``NodeAnnouncement`` per node (named after the node), written only by that
node's speaker with server-side apply (field manager ``vipcast-speaker``): ``spec.nodeName``
and a ``status`` listing the Services whose addresses the node announces (``announced``) and
the ones committed to Service status that it does not announce here, each with why
(``withheld``). The controller folds every node's report into the Service's
``vipcast.io/Announced`` condition. A separate kind (not Service conditions written by the
nodes) keeps the speaker's RBAC narrow: a node can write its report, never a Service.

The models give the CRD (one source of truth, like the config kinds) and are how both sides
read and write the object.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vipcast.core.desired import NodePlan
from vipcast.spec.objects import API_VERSION

log = logging.getLogger(__name__)

KIND = "NodeAnnouncement"
PLURAL = "nodeannouncements"
SPEAKER_FIELD_MANAGER = "vipcast-speaker"
#: a report lists every Service of the node: allow far more than the config kinds' bound
MAX_SERVICES = 20000

Mode = Literal["BGP", "L2"]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class AnnouncedService(_Wire):
    """A Service whose addresses this node announces."""

    service: str = Field(max_length=317, description="namespace/name")
    addresses: tuple[str, ...] = Field(max_length=16)
    modes: tuple[Mode, ...] = Field(max_length=2)


class WithheldService(_Wire):
    """A Service with committed addresses that this node does not announce, and why."""

    service: str = Field(max_length=317, description="namespace/name")
    addresses: tuple[str, ...] = Field(max_length=16)
    reason: str = Field(max_length=64)
    message: str = Field(max_length=1024)


class RefusedConfig(_Wire):
    """A configuration the node's Envoy refused (an xDS NACK): it keeps serving the last one
    it accepted."""

    type: str = Field(max_length=64, description="the xDS resource type, e.g. Secret")
    version: str = Field(max_length=64)
    message: str = Field(max_length=2048, description="Envoy's error")


class GatewayReport(_Wire):
    """The node's L7 gateway: what its Envoy refuses now (empty: it took everything)."""

    refused: tuple[RefusedConfig, ...] = Field(default=(), max_length=16)


class NodeAnnouncementSpec(_Wire):
    node_name: str = Field(alias="nodeName", max_length=253)


class NodeAnnouncementStatus(_Wire):
    announced: tuple[AnnouncedService, ...] = Field(default=(), max_length=MAX_SERVICES)
    withheld: tuple[WithheldService, ...] = Field(default=(), max_length=MAX_SERVICES)
    #: the node's L7 gateway (None: no gateway on this node)
    gateway: GatewayReport | None = None


class NodeAnnouncement(_Wire):
    """What one node's speaker announces (written by that speaker)."""

    spec: NodeAnnouncementSpec
    status: NodeAnnouncementStatus = NodeAnnouncementStatus()


# -- the speaker side: a plan (and what was committed) -> the report -----------------------

REASON_NOT_SELECTED = "NotSelected"
REASON_NOT_VERIFIED = "NotVerified"
REASON_L2_STANDBY = "L2Standby"

_WHY = {
    REASON_NOT_SELECTED: "no advertisement announces it from this node (pool, node or peer "
                         "selectors), or no ready endpoint here for traffic policy Local",
    REASON_NOT_VERIFIED: "selected, but held back: the address does not answer through this "
                         "node's data plane yet (no healthy backend)",
    REASON_L2_STANDBY: "an L2 candidate here: another node answers ARP/NDP for it now, or "
                       "this node cannot serve it yet",
}


def _ip(prefix: str) -> str:
    return prefix.split("/", 1)[0]


def _services_of(plan: NodePlan, l2_answered: frozenset[str] | None = None
                 ) -> dict[str, tuple[set[str], set[str]]]:
    """service -> (addresses, modes) announced by ``plan``; an L2 address counts when the node
    answers it (``l2_answered``, the L2 runtime's view) or, without that view, when the node is
    its static owner."""
    out: dict[str, tuple[set[str], set[str]]] = {}
    for route in plan.bgp:
        for svc in route.services:
            ips, modes = out.setdefault(svc, (set(), set()))
            ips.add(_ip(route.prefix))
            modes.add("BGP")
    for own in plan.l2:
        here = own.owner == plan.node if l2_answered is None else own.ip in l2_answered
        if not here:
            continue
        for svc in own.services:
            ips, modes = out.setdefault(svc, (set(), set()))
            ips.add(own.ip)
            modes.add("L2")
    return out


def node_report(plan: NodePlan, committed: Mapping[str, tuple[str, ...]],
                selected: NodePlan | None = None,
                l2_answered: frozenset[str] | None = None) -> NodeAnnouncementStatus:
    """The status a node reports: what ``plan`` announces, and each committed Service it does
    not announce with why (``selected`` is the plan before verification, when known).

    ``l2_answered``: the L2 addresses this node answers ARP/NDP for now (the L2 runtime's
    owner choice from membership and servability); without it the planner's static owner is
    taken. With it, a Service this node is only an L2 candidate for is withheld as
    ``L2Standby``.
    """
    announced = _services_of(plan, l2_answered)
    before = _services_of(selected) if selected is not None else {}
    standby = ({svc for own in plan.l2 if plan.node in own.candidates for svc in own.services}
               if l2_answered is not None else set())
    shown: list[AnnouncedService] = []
    held: list[WithheldService] = []
    for svc, ips in sorted(committed.items()):
        got = announced.get(svc)
        if got and got[0]:
            shown.append(AnnouncedService(service=svc, addresses=tuple(sorted(got[0])),
                                          modes=tuple(sorted(got[1]))))
            continue
        reason = (REASON_L2_STANDBY if svc in standby
                  else REASON_NOT_VERIFIED if svc in before else REASON_NOT_SELECTED)
        held.append(WithheldService(service=svc, addresses=tuple(ips), reason=reason,
                                    message=_WHY[reason]))
    return NodeAnnouncementStatus(announced=tuple(shown), withheld=tuple(held))


def report_body(node: str, status: NodeAnnouncementStatus | None = None) -> dict[str, Any]:
    """The apply body of a node's ``NodeAnnouncement`` (object, or status when given)."""
    body: dict[str, Any] = {
        "apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": node},
        "spec": {"nodeName": node},
    }
    if status is not None:
        body["status"] = status.model_dump(by_alias=True, mode="json", exclude_none=True)
    return body


# -- the controller side: every node's report -> per Service view ---------------------------

def node_gateway_refusals(objects: Iterable[Mapping[str, Any]],
                     ready_nodes: Collection[str] | None = None) -> dict[str, str]:
    """Node -> what its Envoy refuses now (``type: message``; several joined by ``; ``), from
    NodeAnnouncement dicts; a node whose report does not validate, or that is gone or not
    Ready (``ready_nodes``), is left out."""
    out: dict[str, str] = {}
    for obj in objects:
        try:
            status = NodeAnnouncementStatus.model_validate(obj.get("status") or {})
            node = NodeAnnouncementSpec.model_validate(obj.get("spec") or {}).node_name
        except ValidationError:
            continue
        if ready_nodes is not None and node not in ready_nodes:
            continue
        if status.gateway is not None and status.gateway.refused:
            out[node] = "; ".join(f"{r.type}: {r.message}" for r in status.gateway.refused)
    return out


@dataclass(frozen=True)
class ServiceAnnouncements:
    """Who announces one Service, and who withholds it (with reasons)."""

    by: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = ()  # (node, ips, modes)
    withheld: tuple[tuple[str, str, str], ...] = ()  # (node, reason, message)


def fold_reports(objects: Iterable[Mapping[str, Any]],
                 ready_nodes: Collection[str] | None = None
                 ) -> tuple[int, dict[str, ServiceAnnouncements]]:
    """(number of nodes reporting, service -> its announcements) from NodeAnnouncement dicts;
    a report that does not validate is left out (and logged).

    ``ready_nodes``: the Nodes that exist and are Ready; the report of any other node (deleted,
    or NotReady after a failover) is stale and left out. ``None``: every report counts.
    """
    by: dict[str, list[tuple[str, tuple[str, ...], tuple[str, ...]]]] = {}
    held: dict[str, list[tuple[str, str, str]]] = {}
    nodes = 0
    for obj in objects:
        try:
            report = NodeAnnouncement.model_validate(
                {"spec": obj.get("spec") or {}, "status": obj.get("status") or {}})
        except ValidationError as exc:
            name = (obj.get("metadata") or {}).get("name")
            log.warning("NodeAnnouncement %s left out: %s", name, exc.errors()[:1])
            continue
        node = report.spec.node_name
        if ready_nodes is not None and node not in ready_nodes:
            continue  # the node is gone or not Ready: what it last said no longer holds
        nodes += 1
        for a in report.status.announced:
            by.setdefault(a.service, []).append((node, a.addresses, tuple(a.modes)))
        for w in report.status.withheld:
            held.setdefault(w.service, []).append((node, w.reason, w.message))
    keys = set(by) | set(held)
    return nodes, {k: ServiceAnnouncements(tuple(sorted(by.get(k, ()))),
                                           tuple(sorted(held.get(k, ())))) for k in keys}


