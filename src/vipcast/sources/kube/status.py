"""Effects on the cluster: Service status via server-side apply, and Events.

Service ``status.loadBalancer.ingress`` is written with server-side apply on the ``/status``
subresource under vipcast's own field manager (``force``: vipcast is the authority for the
Services it serves), each address with ``ipMode: VIP`` (traffic reaches the node with the VIP
as destination). Events are core ``v1`` Events (what ``kubectl describe`` shows), deduplicated
in memory so a level-triggered reconcile does not repeat itself.
"""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx2 as httpx
from lightkube import ApiError, AsyncClient
from lightkube.models.core_v1 import EventSource, ObjectReference, ServiceStatus
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Event, Service

log = logging.getLogger(__name__)

FIELD_MANAGER = "vipcast-controller"
IP_MODE = "VIP"


def current_ingress(service: dict[str, Any]) -> tuple[str, ...]:
    """The IPs in a Service dict's ``status.loadBalancer.ingress`` (in order)."""
    lb = ((service.get("status") or {}).get("loadBalancer") or {})
    return tuple(i["ip"] for i in lb.get("ingress") or () if i.get("ip"))


def ingress_up_to_date(service: dict[str, Any], ips: Sequence[str]) -> bool:
    lb = ((service.get("status") or {}).get("loadBalancer") or {})
    have = [(i.get("ip"), i.get("ipMode")) for i in lb.get("ingress") or ()]
    return have == [(ip, IP_MODE) for ip in ips]


async def apply_service_ips(
    client: AsyncClient, namespace: str, name: str, ips: Sequence[str],
    field_manager: str = FIELD_MANAGER, conditions: Sequence[dict[str, Any]] = (),
) -> None:
    """Make ``ips`` the Service's load-balancer ingress (empty: withdraw ours), and
    ``conditions`` (dicts of ``metav1.Condition``) the conditions this manager owns."""
    status: ServiceStatus = ServiceStatus.from_dict({
        "loadBalancer": {"ingress": [{"ip": ip, "ipMode": IP_MODE} for ip in ips]},
        **({"conditions": list(conditions)} if conditions else {}),
    })  # type: ignore[assignment]
    body = Service.Status(
        apiVersion="v1",
        kind="Service",
        metadata=ObjectMeta(name=name, namespace=namespace),
        status=status,
    )
    await client.apply(body, name, namespace=namespace, field_manager=field_manager,
                       force=True)


async def apply_conditions(
    client: AsyncClient, resource: Any, name: str, conditions: Sequence[dict[str, Any]],
    field_manager: str = FIELD_MANAGER,
) -> None:
    """Make ``conditions`` the ``status.conditions`` this manager owns on one of our
    cluster-scoped objects (server-side apply on ``/status``)."""
    body = resource.Status.from_dict({
        "apiVersion": resource._api_info.resource.api_version,
        "kind": resource._api_info.resource.kind,
        "metadata": {"name": name},
        "status": {"conditions": list(conditions)},
    })
    await client.apply(body, name, field_manager=field_manager, force=True)


class EventRecorder:
    """Creates core Events about objects; the same (object, reason, message) is sent once."""

    def __init__(self, client: AsyncClient, component: str, host: str | None = None,
                 namespace_default: str = "default", memory: int = 4096) -> None:
        self.client = client
        self.component = component
        self.host = host
        self.namespace_default = namespace_default
        self._sent: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        self._memory = memory
        self.sent = 0

    async def emit(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> bool:
        meta = obj.get("metadata") or {}
        uid = str(meta.get("uid") or meta.get("name"))
        key = (uid, reason, message)
        if key in self._sent:
            return False
        namespace = meta.get("namespace") or self.namespace_default
        now = datetime.now(UTC)
        event = Event(
            # named like client-go's recorder: <object>.<unique hex>
            metadata=ObjectMeta(name=f"{meta.get('name')}.{uuid.uuid4().hex[:16]}",
                                namespace=namespace),
            involvedObject=ObjectReference(
                apiVersion=obj.get("apiVersion"), kind=obj.get("kind"), name=meta.get("name"),
                namespace=meta.get("namespace"), uid=meta.get("uid"),
                resourceVersion=meta.get("resourceVersion")),
            reason=reason,
            message=message[:1024],
            type=type_,
            source=EventSource(component=self.component, host=self.host),
            reportingComponent=self.component,
            reportingInstance=self.host or self.component,
            firstTimestamp=now,
            lastTimestamp=now,
            count=1,
        )
        try:
            await self.client.create(event)
        except (ApiError, httpx.HTTPError, OSError) as exc:
            log.info("event %s on %s/%s not recorded: %s", reason, namespace, meta.get("name"),
                     exc)
            return False
        self._sent[key] = None
        while len(self._sent) > self._memory:
            self._sent.popitem(last=False)
        self.sent += 1
        return True
