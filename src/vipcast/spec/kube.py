"""Read-only views of the core Kubernetes objects vipcast reads (unread fields are ignored)."""

from __future__ import annotations

import base64
import binascii
from typing import Literal

from pydantic import Field, field_validator

from vipcast.spec.addresses import parse_ip
from vipcast.spec.meta import ObjectMeta, ViewModel

#: annotations read on Services; MetalLB's names are honoured too, so Services need no edit
ANNOTATION_POOL = "vipcast.io/address-pool"
ANNOTATION_IPS = "vipcast.io/loadBalancerIPs"
ANNOTATION_SHARING = "vipcast.io/allow-shared-ip"
ANNOTATION_HEALTH = "vipcast.io/health-check"
METALLB_PREFIXES = ("metallb.io/", "metallb.universe.tf/")

#: a loadBalancerClass name for vipcast (in a cluster, only when configured: see :func:`claims`)
LOAD_BALANCER_CLASS = "vipcast.io/vipcast"


def claims(service_class: str | None, configured: str | None) -> bool:
    """Whether a controller configured with ``configured`` serves a LoadBalancer Service of
    ``service_class`` in a cluster (MetalLB's ``--lb-class``): without a configured class it
    serves the class-less Services only; with one, exactly that class and never a class-less
    Service (another load balancer in the cluster may own those)."""
    return service_class == configured


def annotation(meta: ObjectMeta, ours: str) -> str | None:
    """An annotation by our name, falling back to MetalLB's equivalent."""
    if ours in meta.annotations:
        return meta.annotations[ours]
    suffix = ours.split("/", 1)[1]
    for prefix in METALLB_PREFIXES:
        if prefix + suffix in meta.annotations:
            return meta.annotations[prefix + suffix]
    return None


def request_conflict(service: Service) -> str | None:
    """Why a Service's address request cannot be read, or None: MetalLB refuses a Service that
    sets both ``spec.loadBalancerIP`` and the loadBalancerIPs annotation, and so does vipcast
    (docs/allocation.md, "One way to request")."""
    if service.spec.load_balancer_ip and annotation(service.metadata, ANNOTATION_IPS):
        return (
            "both spec.loadBalancerIP and the loadBalancerIPs annotation are set: "
            "remove one"
        )
    return None


class ServicePort(ViewModel):
    name: str | None = None
    port: int = Field(ge=1, le=65535)
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    target_port: int | str | None = None
    node_port: int | None = None


class ServiceSpec(ViewModel):
    type: str = "ClusterIP"
    load_balancer_class: str | None = None
    load_balancer_ip: str | None = Field(default=None, alias="loadBalancerIP")
    ports: tuple[ServicePort, ...] = ()
    selector: dict[str, str] | None = None
    ip_families: tuple[Literal["IPv4", "IPv6"], ...] = ()
    ip_family_policy: Literal["SingleStack", "PreferDualStack", "RequireDualStack"] | None = None
    external_traffic_policy: Literal["Cluster", "Local"] = "Cluster"
    load_balancer_source_ranges: tuple[str, ...] = ()
    health_check_node_port: int | None = Field(default=None, ge=1, le=65535)
    allocate_load_balancer_node_ports: bool | None = None

    @field_validator("load_balancer_ip")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        return str(parse_ip(value)) if value else None


class LoadBalancerIngress(ViewModel):
    ip: str | None = None
    hostname: str | None = None
    ip_mode: str | None = None


class LoadBalancerStatus(ViewModel):
    ingress: tuple[LoadBalancerIngress, ...] = ()


#: the defaults of absent parts, shared: frozen values holding no mutable field, so pydantic
#: hands the one instance to every object that lacks the part (a default_factory would build
#: one per object: 10,000 Services, 20,000 endpoints). Made with model_construct (the values a
#: validation of ``{}`` gives, equal to them): no validator is built at import (defer_build)
_NO_LOAD_BALANCER = LoadBalancerStatus.model_construct()


class ServiceStatus(ViewModel):
    load_balancer: LoadBalancerStatus = _NO_LOAD_BALANCER


_NO_STATUS = ServiceStatus.model_construct()


class Service(ViewModel):
    api_version: Literal["v1"] = "v1"
    kind: Literal["Service"] = "Service"
    metadata: ObjectMeta
    spec: ServiceSpec = Field(default_factory=ServiceSpec)
    status: ServiceStatus = _NO_STATUS

    @property
    def key(self) -> str:
        return f"{self.metadata.namespace or 'default'}/{self.metadata.name}"

    @property
    def status_ips(self) -> tuple[str, ...]:
        return tuple(i.ip for i in self.status.load_balancer.ingress if i.ip)


class EndpointConditions(ViewModel):
    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None


_NO_CONDITIONS = EndpointConditions.model_construct()


class Endpoint(ViewModel):
    addresses: tuple[str, ...] = Field(min_length=1)
    conditions: EndpointConditions = _NO_CONDITIONS
    node_name: str | None = None
    hostname: str | None = None

    @property
    def is_ready(self) -> bool:
        # discovery.k8s.io/v1: a nil ready condition means "unknown" and is read as ready
        return self.conditions.ready is not False and self.conditions.terminating is not True


class EndpointPort(ViewModel):
    name: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"


class EndpointSlice(ViewModel):
    api_version: Literal["discovery.k8s.io/v1"] = "discovery.k8s.io/v1"
    kind: Literal["EndpointSlice"] = "EndpointSlice"
    metadata: ObjectMeta
    address_type: Literal["IPv4", "IPv6", "FQDN"] = "IPv4"
    endpoints: tuple[Endpoint, ...] = ()
    ports: tuple[EndpointPort, ...] = ()

    @property
    def service_key(self) -> str | None:
        """``ns/name`` of the owning Service (label ``kubernetes.io/service-name``)."""
        name = self.metadata.labels.get("kubernetes.io/service-name")
        return f"{self.metadata.namespace or 'default'}/{name}" if name else None


class NodeCondition(ViewModel):
    type: str
    status: Literal["True", "False", "Unknown"]


class NodeAddress(ViewModel):
    type: str
    address: str


class NodeStatus(ViewModel):
    conditions: tuple[NodeCondition, ...] = ()
    addresses: tuple[NodeAddress, ...] = ()


class Taint(ViewModel):
    key: str
    value: str = ""
    effect: str = ""


class NodeSpec(ViewModel):
    taints: tuple[Taint, ...] = ()


_NO_NODE_SPEC = NodeSpec.model_construct()
_NO_NODE_STATUS = NodeStatus.model_construct()


class Node(ViewModel):
    api_version: Literal["v1"] = "v1"
    kind: Literal["Node"] = "Node"
    metadata: ObjectMeta
    spec: NodeSpec = _NO_NODE_SPEC
    status: NodeStatus = _NO_NODE_STATUS

    @property
    def ready(self) -> bool:
        """A node without conditions (a hand-written standalone node) counts as Ready."""
        for cond in self.status.conditions:
            if cond.type == "Ready":
                return cond.status == "True"
        return True

    def addresses_of(self, kind: str = "InternalIP") -> tuple[str, ...]:
        return tuple(a.address for a in self.status.addresses if a.type == kind)


class Namespace(ViewModel):
    api_version: Literal["v1"] = "v1"
    kind: Literal["Namespace"] = "Namespace"
    metadata: ObjectMeta


class Secret(ViewModel):
    api_version: Literal["v1"] = "v1"
    kind: Literal["Secret"] = "Secret"
    metadata: ObjectMeta
    data: dict[str, str] = Field(default_factory=dict)
    string_data: dict[str, str] = Field(default_factory=dict)

    @field_validator("data")
    @classmethod
    def _base64(cls, value: dict[str, str]) -> dict[str, str]:
        # the API server only stores base64 here; a file (or a hostile object) may not
        for key, text in value.items():
            try:
                base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"data[{key}] is not valid base64") from None
        return value

    def value(self, key: str) -> str | None:
        """The text under ``key`` (None: no such key); ValueError when it is not UTF-8 text."""
        if key in self.string_data:
            return self.string_data[key]
        if key in self.data:
            raw = base64.b64decode(self.data[key])
            try:
                return raw.decode()
            except UnicodeDecodeError:
                raise ValueError(f"data[{key}] is not UTF-8 text") from None
        return None
