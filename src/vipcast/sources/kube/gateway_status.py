"""Gateway and HTTPRoute status on the API server, from the translation's status values.

The JSON builders are pure (``now`` passed in); a condition keeps its ``lastTransitionTime``
while its status stays the same. An HTTPRoute's ``status.parents`` entries written by other
controllers are kept: only the entries of ``vipcast.io/gateway`` are replaced. Writes are JSON
merge patches of the ``/status`` subresource, after a read of the current object.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from lightkube import ApiError, AsyncClient
from lightkube.generic_resource import create_namespaced_resource
from lightkube.types import PatchType

from vipcast.core.gateway.model import Condition, GatewayStatus, RouteStatus, Translation
from vipcast.spec.documents import JSON
from vipcast.spec.gateway.objects import CONTROLLER_NAME

log = logging.getLogger(__name__)
GROUP = "gateway.networking.k8s.io"
GATEWAYS = create_namespaced_resource(GROUP, "v1", "Gateway", "gateways")
HTTP_ROUTES = create_namespaced_resource(GROUP, "v1", "HTTPRoute", "httproutes")


def _time(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def conditions_json(conditions: Iterable[Condition], generation: int | None, now: datetime,
                    previous: Sequence[Mapping[str, Any]] = ()) -> list[JSON]:
    before = {c.get("type"): c for c in previous}
    out = []
    for c in conditions:
        old = before.get(c.type)
        since = (old.get("lastTransitionTime") if old and old.get("status") == c.status
                 else None) or _time(now)
        item: JSON = {"type": c.type, "status": c.status, "reason": c.reason,
                      "message": c.message[:32768], "lastTransitionTime": since}
        if generation is not None:
            item["observedGeneration"] = generation
        out.append(item)
    return out


def gateway_status_json(st: GatewayStatus, now: datetime,
                        previous: Mapping[str, Any] | None = None) -> JSON:
    previous = previous or {}
    old_listeners = {x.get("name"): x for x in previous.get("listeners") or ()}
    return {
        "addresses": [{"type": "IPAddress", "value": a} for a in st.addresses],
        "conditions": conditions_json(st.conditions, st.generation, now,
                                      previous.get("conditions") or ()),
        "listeners": [{
            "name": ls.name,
            "attachedRoutes": ls.attached_routes,
            "supportedKinds": [{"group": GROUP, "kind": k} for k in ls.supported_kinds],
            "conditions": conditions_json(
                ls.conditions, st.generation, now,
                (old_listeners.get(ls.name) or {}).get("conditions") or ()),
        } for ls in st.listeners],
    }


def route_status_json(st: RouteStatus, now: datetime,
                      previous: Mapping[str, Any] | None = None) -> JSON:
    previous = previous or {}
    others = [p for p in previous.get("parents") or ()
              if p.get("controllerName") != CONTROLLER_NAME]
    mine_before = {_ref_key(p.get("parentRef") or {}): p for p in previous.get("parents") or ()
                   if p.get("controllerName") == CONTROLLER_NAME}
    parents = list(others)
    for p in st.parents:
        ref: JSON = {"group": p.parent.group, "kind": p.parent.kind,
                     "namespace": p.parent.namespace, "name": p.parent.name}
        if p.parent.section_name is not None:
            ref["sectionName"] = p.parent.section_name
        if p.parent.port is not None:
            ref["port"] = p.parent.port
        old = mine_before.get(_ref_key(ref)) or {}
        parents.append({"parentRef": ref, "controllerName": CONTROLLER_NAME,
                        "conditions": conditions_json(p.conditions, st.generation, now,
                                                      old.get("conditions") or ())})
    return {"parents": parents}


def _ref_key(ref: Mapping[str, Any]) -> tuple[str, ...]:
    return (str(ref.get("namespace", "")), str(ref.get("name", "")),
            str(ref.get("sectionName", "")), str(ref.get("port", "")))


class EventSink(Protocol):
    async def emit(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> bool: ...


def _flat(status: Mapping[str, Any]) -> dict[str, tuple[str, str, str]]:
    """Where -> (status, reason, message) of every condition of a Gateway's or an
    HTTPRoute's status (the Gateway's own, its listeners', the route's per parent)."""
    out: dict[str, tuple[str, str, str]] = {}
    groups: list[tuple[str, Any]] = [("", status.get("conditions") or ())]
    groups += [(f"listener {lis.get('name')} ", lis.get("conditions") or ())
               for lis in status.get("listeners") or ()]
    groups += [(f"parent {(p.get('parentRef') or {}).get('name')} ", p.get("conditions") or ())
               for p in status.get("parents") or ()
               if p.get("controllerName") == CONTROLLER_NAME]
    for prefix, conds in groups:
        for c in conds:
            out[prefix + str(c.get("type"))] = (str(c.get("status")), str(c.get("reason")),
                                                str(c.get("message") or ""))
    return out


def _bad(where: str, status: str) -> bool:
    """A condition that says something is wrong (Conflicted True, any other False)."""
    return (status == "True") == where.endswith("Conflicted")


async def _events(events: EventSink, obj: dict[str, Any], previous: Mapping[str, Any],
                  status: Mapping[str, Any]) -> None:
    """An Event per condition whose status or reason changed: a Warning when it now says
    something is wrong, Normal when it is fine again (as for Services)."""
    before = _flat(previous)
    for where, (st, reason, message) in sorted(_flat(status).items()):
        old = before.get(where)
        if old is not None and old[:2] == (st, reason):
            continue
        if old is None and not _bad(where, st):
            continue  # a first fine condition is no news
        text = f"{where}: {reason}" + (f": {message}" if message else "")
        await events.emit(obj, "Warning" if _bad(where, st) else "Normal", reason, text)


def _meta(current: Any) -> dict[str, Any]:
    meta = current.get("metadata") if isinstance(current, dict) else getattr(
        current, "metadata", None)
    if meta is None:
        return {}
    if isinstance(meta, dict):
        return meta
    return {"name": getattr(meta, "name", None), "namespace": getattr(meta, "namespace", None),
            "uid": getattr(meta, "uid", None),
            "resourceVersion": getattr(meta, "resourceVersion", None)}


async def write_status(client: AsyncClient, translation: Translation,
                       now: datetime | None = None, events: EventSink | None = None) -> int:
    """Write the status of every Gateway and HTTPRoute of the translation; returns how many
    objects were written (objects that vanished meanwhile are skipped). With ``events``, each
    condition that changed is also an Event on its object (Warning when it reports a problem:
    BackendNotFound, RefNotPermitted, AddressNotUsable, ...)."""
    written = 0
    items: list[tuple[Any, str, Any]] = [(GATEWAYS, g.key, g) for g in translation.gateways]
    items += [(HTTP_ROUTES, r.key, r) for r in translation.routes]
    for resource, key, st in items:
        namespace, name = key.split("/", 1)
        try:
            current = await client.get(resource, name, namespace=namespace)
        except ApiError as exc:
            if exc.status.code == 404:
                continue
            raise
        previous = (current.get("status") if isinstance(current, dict)
                    else getattr(current, "status", None)) or {}
        stamp = now or datetime.now(UTC)
        if isinstance(st, GatewayStatus):
            status = gateway_status_json(st, stamp, previous)
        else:
            status = route_status_json(st, stamp, previous)
        if status == {k: previous.get(k) for k in status}:
            continue
        await client.patch(resource.Status, name, {"status": status}, namespace=namespace,
                           patch_type=PatchType.MERGE)
        written += 1
        if events is not None:
            kind = "Gateway" if isinstance(st, GatewayStatus) else "HTTPRoute"
            obj = {"apiVersion": f"{GROUP}/v1", "kind": kind, "metadata": _meta(current)}
            await _events(events, obj, previous, status)
    return written
