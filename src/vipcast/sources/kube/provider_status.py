"""Kubernetes effects of the external load balancers: the Service finalizer, its
``status.loadBalancer.ingress`` (``ipMode`` VIP, or Proxy when the LB speaks PROXY protocol)
and the ``vipcast.io/ExternalLoadBalancer`` condition, under their own field manager.

The finalizer ``service.kubernetes.io/load-balancer-cleanup`` (the one Kubernetes' service
controller uses) is added before the load balancer is created and removed only once it is
gone, so a deleted Service keeps existing until its external load balancer does not.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from lightkube import ApiError, AsyncClient
from lightkube.models.core_v1 import ServiceStatus
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Secret, Service
from lightkube.types import PatchType

from vipcast.sources.kube.conditions import _cond

log = logging.getLogger(__name__)
FINALIZER = "service.kubernetes.io/load-balancer-cleanup"
FIELD_MANAGER = "vipcast-providers"
EXTERNAL_LB = "vipcast.io/ExternalLoadBalancer"


def external_condition(ok: bool, reason: str, message: str) -> dict[str, Any]:
    return _cond(EXTERNAL_LB, ok, reason, message)


async def set_finalizer(client: AsyncClient, service: dict[str, Any], present: bool) -> bool:
    """Add or remove our finalizer (merge patch guarded by the resourceVersion read);
    False when there was nothing to do."""
    meta = service["metadata"]
    have = list(meta.get("finalizers") or ())
    if (FINALIZER in have) == present:
        return False
    want = [*have, FINALIZER] if present else [f for f in have if f != FINALIZER]
    await client.patch(Service, meta["name"], {
        "metadata": {"finalizers": want, "resourceVersion": meta.get("resourceVersion")}},
        namespace=meta.get("namespace"), patch_type=PatchType.MERGE)
    return True


async def apply_external_status(
    client: AsyncClient, namespace: str, name: str,
    ingress: Sequence[tuple[str, str]], conditions: Sequence[dict[str, Any]],
) -> None:
    """Make ``ingress`` ((ip, ipMode) pairs) and ``conditions`` what this manager owns."""
    status: ServiceStatus = ServiceStatus.from_dict({
        "loadBalancer": {"ingress": [{"ip": ip, "ipMode": mode} for ip, mode in ingress]},
        **({"conditions": list(conditions)} if conditions else {}),
    })  # type: ignore[assignment]
    body = Service.Status(apiVersion="v1", kind="Service",
                          metadata=ObjectMeta(name=name, namespace=namespace), status=status)
    await client.apply(body, name, namespace=namespace, field_manager=FIELD_MANAGER,
                       force=True)


async def read_objects(client: AsyncClient, namespace: str) -> dict[str, list[dict[str, Any]]]:
    """What the external load balancers are computed from: the providers and pools, Services,
    EndpointSlices, Nodes, Namespaces, and the credential Secrets the providers name."""
    from vipcast.sources.kube.resources import (
        ENDPOINT_SLICES,
        NAMESPACES,
        NODES,
        OUR_KINDS,
        SERVICES,
    )

    ours = [w for w in OUR_KINDS if w.kind in ("LoadBalancerProvider", "IPAddressPool")]
    objs: dict[str, list[dict[str, Any]]] = {}
    for watched in (*ours, SERVICES, ENDPOINT_SLICES, NODES, NAMESPACES):
        kw: dict[str, Any] = {"namespace": "*"} if watched.namespaced else {}
        objs[watched.kind] = [_plain(o) async for o in client.list(watched.resource, **kw)]
    for w in ours:
        for obj in objs[w.kind]:
            obj.pop("status", None)
    secrets = []
    for p in objs["LoadBalancerProvider"]:
        ref = (p.get("spec") or {}).get("credentialsSecret")
        if ref:
            try:
                got = await client.get(Secret, ref["name"],
                                       namespace=ref.get("namespace") or namespace)
            except ApiError as exc:  # the spec check names the missing Secret
                log.info("credential Secret %s not readable: %s", ref, exc)
                continue
            secrets.append(_plain(got))
    objs["Secret"] = secrets
    return objs


async def get_service(client: AsyncClient, namespace: str, name: str) -> dict[str, Any]:
    return _plain(await client.get(Service, name, namespace=namespace))


def _plain(obj: Any) -> dict[str, Any]:
    return dict(obj.to_dict()) if hasattr(obj, "to_dict") else dict(obj)
