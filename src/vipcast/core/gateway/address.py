"""A Gateway's address is a vipcast VIP: each Gateway of ours stands in the allocation and the
announcement as a LoadBalancer Service (pure).

The stand-in Service (:func:`gateway_service`) is named ``<gateway>.gateway.vipcast.io`` in the
Gateway's namespace (a dotted name no Kubernetes Service can have), asks for the Gateway's
``spec.addresses`` (IPAddress) as its requested IPs, carries the Gateway's labels and
annotations (so ``vipcast.io/address-pool`` and ``vipcast.io/allow-shared-ip`` on a Gateway
work as on a Service) and its listeners' ports. The allocator treats it like any other
LoadBalancer: a pool address when nothing is asked, sharing by key, a conflict when two ask for
one address. The planner announces it without endpoints and programs no NAT for it (Envoy
binds the VIP itself), and only while the node's Envoy serves the current configuration
(:attr:`vipcast.core.pipeline.Local.proxy_ready`).

The Gateway standing for the Ingresses of vipcast's classes (``vipcast-system/ingress``,
:mod:`vipcast.core.gateway.ingress`) has a stand-in too (:func:`ingress_gateway`): it carries
the ``vipcast.io/`` (and MetalLB) annotations of vipcast's IngressClasses (the oldest first
wins per annotation), so ``vipcast.io/address-pool`` or ``vipcast.io/loadBalancerIPs`` on the
IngressClass pick its pool or address; its committed address is what the served Ingresses'
``status.loadBalancer.ingress`` say (:func:`ingress_committed`: where the controller commits
it, as ingress-nginx does).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from vipcast.alloc import Assignment, Reason
from vipcast.core.gateway.ingress import (
    INGRESS_GATEWAY_NAME,
    INGRESS_GATEWAY_NAMESPACE,
    ingress_objects,
)
from vipcast.core.gateway.rules import created
from vipcast.spec import ANNOTATION_IPS, Service, Spec
from vipcast.spec.gateway.objects import CONTROLLER_NAME, Gateway, Ingress, IngressClass
from vipcast.spec.kube import METALLB_PREFIXES, annotation

#: the stand-in Services' name suffix, and the annotation naming the Gateway they stand for
SUFFIX = ".gateway.vipcast.io"
ANNOTATION_GATEWAY = "vipcast.io/gateway"


def gateway_service_key(gateway_key: str) -> str:
    """The key of the Service standing for the Gateway ``namespace/name``."""
    return gateway_key + SUFFIX


def gateway_of(service_key: str) -> str | None:
    """The Gateway key a stand-in Service's key names (None: a real Service)."""
    return service_key[: -len(SUFFIX)] if service_key.endswith(SUFFIX) else None


def _requested(gw: Gateway) -> tuple[str, ...] | None:
    """The IP addresses the Gateway asks for; None when it asks for something not served
    (another address type, not an IP: translation reports UnsupportedAddress)."""
    out = []
    for a in gw.spec.addresses:
        if a.type != "IPAddress":
            return None
        try:
            out.append(str(ipaddress.ip_address(a.value)))
        except ValueError:
            return None
    return tuple(out)


def committed(gw: Gateway) -> tuple[str, ...]:
    """The IP addresses written to the Gateway's ``status.addresses`` (on Kubernetes: what the
    controller allocated and committed; a Gateway of ours has no other status writer)."""
    out = []
    for a in (gw.status or {}).get("addresses") or ():
        if not isinstance(a, dict) or a.get("type", "IPAddress") != "IPAddress":
            continue
        try:
            out.append(str(ipaddress.ip_address(str(a.get("value")))))
        except ValueError:
            continue
    return tuple(out)


def gateway_service(gw: Gateway, load_balancer_class: str | None = None) -> Service | None:
    """The LoadBalancer Service standing for ``gw`` in allocation and announcement: of
    ``load_balancer_class`` (the class the controller and speakers serve), its status the
    Gateway's committed addresses (so a restarted controller keeps them, and a speaker
    announces only what was committed)."""
    wanted = _requested(gw)
    if wanted is None:
        return None
    annotations = dict(gw.metadata.annotations)
    annotations[ANNOTATION_GATEWAY] = gw.key
    annotations.pop(ANNOTATION_IPS, None)
    if wanted:
        annotations[ANNOTATION_IPS] = ",".join(wanted)
    families = sorted({"IPv6" if ":" in ip else "IPv4" for ip in wanted})
    ports = sorted({lis.port for lis in gw.spec.listeners})
    return Service.model_validate({
        "metadata": {"name": gw.name + SUFFIX, "namespace": gw.namespace,
                     "labels": dict(gw.metadata.labels), "annotations": annotations},
        "spec": {
            "type": "LoadBalancer",
            "ports": [{"name": f"p{p}", "port": p, "protocol": "TCP"} for p in ports],
            **({"ipFamilies": families} if families else {}),
            **({"ipFamilyPolicy": "RequireDualStack"} if len(families) == 2 else {}),
            **({"loadBalancerClass": load_balancer_class} if load_balancer_class else {}),
        },
        "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in committed(gw)]}},
    })


#: the key of the Gateway standing for the Ingresses of vipcast's classes
INGRESS_GATEWAY_KEY = f"{INGRESS_GATEWAY_NAMESPACE}/{INGRESS_GATEWAY_NAME}"
_CLASS_ANNOTATIONS = ("vipcast.io/", *METALLB_PREFIXES)


def ingress_ips(ing: Ingress) -> tuple[str, ...]:
    """The IP addresses in an Ingress's ``status.loadBalancer.ingress`` (in order)."""
    out = []
    for entry in ((ing.status or {}).get("loadBalancer") or {}).get("ingress") or ():
        if not isinstance(entry, dict) or not entry.get("ip"):
            continue
        try:
            out.append(str(ipaddress.ip_address(str(entry["ip"]))))
        except ValueError:
            continue
    return tuple(out)


def ingress_committed(served: Sequence[Ingress]) -> tuple[str, ...]:
    """The Ingress Gateway's committed addresses: the controller writes one address set to
    every served Ingress's status, so the set most of them carry (a tie: the oldest
    Ingress's). An Ingress that came from another controller still carrying its address is
    outvoted; a lone one is kept only where a pool of ours holds it (the allocator's rule for
    every status)."""
    votes: dict[tuple[str, ...], list[tuple[str, str]]] = {}
    for ing in served:
        ips = ingress_ips(ing)
        if ips:
            votes.setdefault(ips, []).append((created(ing), ing.key))
    if not votes:
        return ()
    return min(votes, key=lambda ips: (-len(votes[ips]), min(votes[ips])))


def _class_annotations(classes: Sequence[IngressClass]) -> dict[str, str]:
    ours = sorted((c for c in classes if c.is_ours), key=lambda c: (created(c), c.name))
    out: dict[str, str] = {}
    for cls in ours:
        for key, value in cls.metadata.annotations.items():
            if key.startswith(_CLASS_ANNOTATIONS):
                out.setdefault(key, value)
    return out


def ingress_gateway(spec: Spec) -> Gateway | None:
    """The Gateway standing for the served Ingresses (None: none served), with the
    IngressClasses' pool/address annotations and the committed address as its status."""
    served = spec.served_ingresses()
    objects = ingress_objects(spec, (), served)
    if not objects.gateways:
        return None
    gw = objects.gateways[0]
    annotations = _class_annotations(spec.ingress_classes)
    meta = gw.metadata.model_copy(update={"annotations": annotations})
    update: dict[str, object] = {"metadata": meta}
    wanted = annotation(meta, ANNOTATION_IPS)
    if wanted:
        addresses = [{"type": "IPAddress", "value": v.strip()}
                     for v in wanted.split(",") if v.strip()]
        update["spec"] = gw.spec.model_validate(
            {**gw.spec.model_dump(by_alias=True, exclude_none=True), "addresses": addresses})
    committed_ips = ingress_committed(served)
    if committed_ips:
        update["status"] = {"addresses": [{"type": "IPAddress", "value": ip}
                                          for ip in committed_ips]}
    return gw.model_copy(update=update)


class GatewayServices:
    """``spec`` with a stand-in Service per Gateway of ours (and one for the Gateway standing
    for the served Ingresses); a Gateway unchanged (the same object) keeps its stand-in
    object, so the incremental planner sees no change."""

    def __init__(self, load_balancer_class: str | None = None) -> None:
        self.load_balancer_class = load_balancer_class
        self._memo: dict[int, tuple[Gateway, Service | None]] = {}
        #: the Ingresses and IngressClasses the Ingress Gateway's stand-in was made from (held,
        #: compared by identity) and that stand-in
        self._ingress_memo: tuple[tuple[object, ...], Service | None] | None = None

    def __getstate__(self) -> dict[str, object]:
        """Picklable (the agent's start cache keeps it with the objects it remembers): the
        memo by object, not by ``id`` (another process's ids mean nothing)."""
        return {"load_balancer_class": self.load_balancer_class,
                "memo": tuple(self._memo.values()), "ingress_memo": self._ingress_memo}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.load_balancer_class = state["load_balancer_class"]
        self._memo = {id(gw): (gw, service) for gw, service in state["memo"]}
        self._ingress_memo = state["ingress_memo"]

    def _ingress_service(self, spec: Spec) -> Service | None:
        """The stand-in of the Ingress Gateway: the same object while no Ingress or
        IngressClass changed (the objects are the same ones)."""
        if not spec.ingresses:
            self._ingress_memo = None
            return None
        objects = (*spec.ingresses, *spec.ingress_classes)
        held = self._ingress_memo
        if held is not None and len(held[0]) == len(objects) and all(
                a is b for a, b in zip(held[0], objects, strict=True)):
            return held[1]
        gw = ingress_gateway(spec)
        service = gateway_service(gw, self.load_balancer_class) if gw is not None else None
        self._ingress_memo = (objects, service)
        return service

    def __call__(self, spec: Spec) -> Spec:
        ingress = self._ingress_service(spec)
        if not spec.gateways:
            self._memo = {}
            return replace(spec, services=(*spec.services, ingress)) if ingress else spec
        ours = {c.name for c in spec.gateway_classes if c.spec.controller_name == CONTROLLER_NAME}
        memo: dict[int, tuple[Gateway, Service | None]] = {}
        extra: list[Service] = []
        for gw in spec.gateways:
            if gw.spec.gateway_class_name not in ours:
                continue
            held = self._memo.get(id(gw))
            service = held[1] if held is not None and held[0] is gw else gateway_service(
                gw, self.load_balancer_class)
            memo[id(gw)] = (gw, service)
            if service is not None:
                extra.append(service)
        self._memo = memo
        if ingress is not None:
            extra.append(ingress)
        return replace(spec, services=(*spec.services, *extra)) if extra else spec


def proxied(spec: Spec) -> frozenset[str]:
    """The keys of the stand-in Services in ``spec`` (announced only while Envoy serves)."""
    return frozenset(s.key for s in spec.services if s.key.endswith(SUFFIX)
                     and ANNOTATION_GATEWAY in s.metadata.annotations)


def gateway_addresses(assignments: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """Gateway key -> its allocated addresses, from the allocation's assignments."""
    out: dict[str, tuple[str, ...]] = {}
    for key, ips in assignments.items():
        gw = gateway_of(key)
        if gw is not None and ips:
            out[gw] = tuple(ips)
    return out


#: the Gateway API's Programmed reason for an allocation that gave a Gateway nothing (or less
#: than it asked for): a request that cannot be met is AddressNotUsable, no address to give
#: (no pool, pool exhausted) AddressNotAssigned
_NOT_USABLE = frozenset({Reason.REQUESTED_TAKEN, Reason.REQUESTED_OUTSIDE,
                         Reason.REQUESTED_REFUSED, Reason.REQUEST_INVALID, Reason.PARTIAL})


def gateway_refusals(assignments: Mapping[str, Assignment]) -> dict[str, tuple[str, str]]:
    """Gateway key -> (Programmed reason, message) for every Gateway the allocation did not
    give all it asked for (the message names a Service or Gateway holding a wanted address)."""
    out: dict[str, tuple[str, str]] = {}
    for key, a in assignments.items():
        gw = gateway_of(key)
        if gw is None or a.ok:
            continue
        reason = "AddressNotUsable" if a.reason in _NOT_USABLE else "AddressNotAssigned"
        message = readable(f"{a.reason}: {a.message}" if a.message else str(a.reason))
        out[gw] = (reason, message)
    return out


def readable(text: str) -> str:
    """An allocator message with each stand-in's key named as its Gateway (a Service's
    condition says ``held by Gateway ns/name``, not the stand-in's name)."""
    words = []
    for word in text.split(" "):
        core = word.rstrip(",.;:)")
        gw = gateway_of(core)
        words.append(word.replace(core, f"Gateway {gw}") if gw is not None else word)
    return " ".join(words)
