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
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import replace

from vipcast.alloc import Assignment, Reason
from vipcast.spec import ANNOTATION_IPS, Service, Spec
from vipcast.spec.gateway.objects import CONTROLLER_NAME, Gateway

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


class GatewayServices:
    """``spec`` with a stand-in Service per Gateway of ours; a Gateway unchanged (the same
    object) keeps its stand-in object, so the incremental planner sees no change."""

    def __init__(self, load_balancer_class: str | None = None) -> None:
        self.load_balancer_class = load_balancer_class
        self._memo: dict[int, tuple[Gateway, Service | None]] = {}

    def __call__(self, spec: Spec) -> Spec:
        if not spec.gateways:
            self._memo = {}
            return spec
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
