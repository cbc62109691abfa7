"""The Ingress Gateway's address on the Ingresses: ``status.loadBalancer.ingress``.

Every Ingress vipcast serves carries the address allocated to the Gateway standing for them
(as ingress-nginx writes its Service's address to every Ingress of its class); an Ingress that
stops being vipcast's (its class changed, or vipcast's IngressClass is no longer the default)
loses the address vipcast wrote there. "Wrote there" is what the object's ``managedFields``
say: vipcast's field manager owns ``status.loadBalancer.ingress`` -- once another controller
wrote its own address, the field is that controller's and vipcast leaves it alone.

:func:`ingress_writes` is pure (the raw objects in, the writes out); :func:`apply_ingress_ips`
is the write: server-side apply on ``/status`` under vipcast's field manager.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx
from lightkube import ApiError, AsyncClient
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.models.networking_v1 import (
    IngressLoadBalancerIngress,
    IngressLoadBalancerStatus,
    IngressStatus,
)
from lightkube.resources.networking_v1 import Ingress

from vipcast.core.gateway.model import GatewayStatus
from vipcast.sources.kube.gateway_status import EventSink
from vipcast.sources.kube.status import FIELD_MANAGER

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngressWrite:
    """Make ``ips`` the Ingress's load-balancer addresses (empty: withdraw vipcast's)."""

    namespace: str
    name: str
    ips: tuple[str, ...]
    had: tuple[str, ...]
    obj: Mapping[str, Any]


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def current_ips(obj: Mapping[str, Any]) -> tuple[str, ...]:
    """The IPs in an Ingress's ``status.loadBalancer.ingress`` (in order)."""
    lb = ((obj.get("status") or {}).get("loadBalancer") or {})
    return tuple(str(i["ip"]) for i in lb.get("ingress") or () if isinstance(i, Mapping)
                 and i.get("ip"))


def owns_addresses(obj: Mapping[str, Any], field_manager: str = FIELD_MANAGER) -> bool:
    """Whether ``field_manager`` owns the Ingress's ``status.loadBalancer.ingress``."""
    for entry in _meta(obj).get("managedFields") or ():
        if not isinstance(entry, Mapping) or entry.get("manager") != field_manager:
            continue
        fields = entry.get("fieldsV1") or {}
        lb = ((fields.get("f:status") or {}).get("f:loadBalancer") or {})
        if "f:ingress" in lb:
            return True
    return False


def ingress_writes(objects: Iterable[Mapping[str, Any]], served: Collection[str],
                   addresses: Sequence[str],
                   field_manager: str = FIELD_MANAGER) -> list[IngressWrite]:
    """The status writes that make every served Ingress (``served``: ``namespace/name``
    keys) carry ``addresses`` and every other Ingress carry none of vipcast's; Ingresses
    already right are left out."""
    out = []
    wanted = tuple(addresses)
    for obj in objects:
        meta = _meta(obj)
        ns, name = str(meta.get("namespace") or "default"), str(meta.get("name") or "")
        had = current_ips(obj)
        if f"{ns}/{name}" in served:
            if had != wanted or (wanted and not owns_addresses(obj, field_manager)):
                out.append(IngressWrite(ns, name, wanted, had, obj))
        elif had and owns_addresses(obj, field_manager):
            out.append(IngressWrite(ns, name, (), had, obj))
    return sorted(out, key=lambda w: (w.namespace, w.name))


async def apply_ingress_ips(client: AsyncClient, write: IngressWrite,
                            field_manager: str = FIELD_MANAGER) -> None:
    """Server-side apply of the Ingress's ``status.loadBalancer.ingress`` (``force``: an
    Ingress of vipcast's class is vipcast's to describe)."""
    body = Ingress.Status(
        apiVersion="networking.k8s.io/v1", kind="Ingress",
        metadata=ObjectMeta(name=write.name, namespace=write.namespace),
        status=IngressStatus(loadBalancer=IngressLoadBalancerStatus(
            ingress=[IngressLoadBalancerIngress(ip=ip) for ip in write.ips])),
    )
    await client.apply(body, write.name, namespace=write.namespace,
                       field_manager=field_manager, force=True)


async def commit_ingress_addresses(
    client: AsyncClient, events: EventSink, ingresses: Iterable[Mapping[str, Any]],
    served: Collection[str], gateway: GatewayStatus | None, field_manager: str = FIELD_MANAGER,
    *, leading: Callable[[], bool] = lambda: True,
) -> tuple[int, int]:
    """Every served Ingress gets the Ingress Gateway's addresses (``gateway``: its status in
    the translation; None: no served Ingress), every other one loses what ``field_manager``
    wrote there; an Event for each change, and a Warning on the served Ingresses while the
    Ingress Gateway is not ``Programmed``. Stops when ``leading()`` turns False. Returns
    (written, failed)."""
    objects = list(ingresses)
    ips = gateway.addresses if gateway is not None else ()
    written = failed = 0
    for write in ingress_writes(objects, served, ips, field_manager):
        if not leading():
            break
        try:
            await apply_ingress_ips(client, write, field_manager)
        except ApiError as exc:
            failed += exc.status.code != 404  # gone: nothing to retry
            log.warning("status of Ingress %s/%s not written: %s", write.namespace, write.name,
                        exc.status.message)
            continue
        except (httpx.HTTPError, OSError) as exc:
            failed += 1
            log.warning("status of Ingress %s/%s not written: %s", write.namespace, write.name,
                        exc)
            continue
        written += 1
        obj = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
               "metadata": dict(_meta(write.obj))}
        if write.ips:
            await events.emit(obj, "Normal", "IPAllocated", f"Assigned {', '.join(write.ips)} "
                              "(the address of vipcast's Ingress Gateway)")
        elif write.had and f"{write.namespace}/{write.name}" not in served:
            await events.emit(obj, "Normal", "IPReleased", f"Released {', '.join(write.had)}: "
                              "no longer of an IngressClass of vipcast's")
    programmed = next((c for c in gateway.conditions if c.type == "Programmed"), None) \
        if gateway is not None else None
    if programmed is not None and programmed.status == "False":
        for raw in objects:
            meta = _meta(raw)
            if f"{meta.get('namespace')}/{meta.get('name')}" in served:
                await events.emit({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                                   "metadata": dict(meta)}, "Warning", programmed.reason,
                                  f"the Ingress Gateway is not programmed: {programmed.message}")
    return written, failed
