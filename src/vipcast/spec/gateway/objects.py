"""GatewayClass, Gateway and ReferenceGrant (``gateway.networking.k8s.io``), and Ingress
(``networking.k8s.io/v1``, class ``vipcast``): the fields vipcast reads, unknown ones refused.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from vipcast.spec.gateway.meta import GatewayObject
from vipcast.spec.meta import LabelSelector, Model

#: the GatewayClass controllerName vipcast answers to
CONTROLLER_NAME = "vipcast.io/gateway"
#: the IngressClass name (``spec.ingressClassName`` or the legacy annotation) vipcast serves
#: when no IngressClass of that name says otherwise
INGRESS_CLASS = "vipcast"
INGRESS_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
#: the IngressClass ``spec.controller`` vipcast answers to
INGRESS_CONTROLLER = "vipcast.io/ingress-controller"
#: marks an IngressClass the cluster's default (Ingresses without a class are its)
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"

_V1 = Literal["gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1"]


# ---------------------------------------------------------------- GatewayClass


class ParametersReference(Model):
    group: str
    kind: str
    name: str
    namespace: str | None = None


class GatewayClassSpec(Model):
    controller_name: str = Field(min_length=1)
    description: str | None = None
    parameters_ref: ParametersReference | None = None


class GatewayClass(GatewayObject):
    api_version: _V1 = "gateway.networking.k8s.io/v1"
    kind: Literal["GatewayClass"] = "GatewayClass"
    spec: GatewayClassSpec

    @property
    def key(self) -> str:
        return self.metadata.name


# ---------------------------------------------------------------- Gateway


class RouteNamespaces(Model):
    from_: Literal["All", "Same", "Selector", "None"] = Field(default="Same", alias="from")
    selector: LabelSelector | None = None


class RouteGroupKind(Model):
    group: str = "gateway.networking.k8s.io"
    kind: str


class AllowedRoutes(Model):
    namespaces: RouteNamespaces = Field(default_factory=RouteNamespaces)
    kinds: tuple[RouteGroupKind, ...] = ()


class SecretObjectReference(Model):
    group: str = ""
    kind: str = "Secret"
    name: str = Field(min_length=1)
    namespace: str | None = None


class ListenerTLS(Model):
    mode: Literal["Terminate", "Passthrough"] = "Terminate"
    certificate_refs: tuple[SecretObjectReference, ...] = ()
    options: dict[str, str] = Field(default_factory=dict)


class Listener(Model):
    name: str = Field(min_length=1, max_length=253)
    hostname: str | None = None
    port: int = Field(ge=1, le=65535)
    protocol: str = Field(min_length=1)
    tls: ListenerTLS | None = None
    allowed_routes: AllowedRoutes = Field(default_factory=AllowedRoutes)


class GatewayAddress(Model):
    type: str = "IPAddress"
    value: str = Field(min_length=1)


class GatewaySpec(Model):
    gateway_class_name: str = Field(min_length=1)
    listeners: tuple[Listener, ...] = Field(min_length=1)
    addresses: tuple[GatewayAddress, ...] = ()
    infrastructure: dict[str, Any] | None = None
    allowed_listeners: dict[str, Any] | None = None
    tls: dict[str, Any] | None = None


class Gateway(GatewayObject):
    api_version: _V1 = "gateway.networking.k8s.io/v1"
    kind: Literal["Gateway"] = "Gateway"
    spec: GatewaySpec


# ---------------------------------------------------------------- ReferenceGrant


class ReferenceGrantFrom(Model):
    group: str
    kind: str
    namespace: str


class ReferenceGrantTo(Model):
    group: str
    kind: str
    name: str | None = None


class ReferenceGrantSpec(Model):
    from_: tuple[ReferenceGrantFrom, ...] = Field(alias="from", min_length=1)
    to: tuple[ReferenceGrantTo, ...] = Field(min_length=1)


class ReferenceGrant(GatewayObject):
    api_version: _V1 = "gateway.networking.k8s.io/v1beta1"
    kind: Literal["ReferenceGrant"] = "ReferenceGrant"
    spec: ReferenceGrantSpec


# ---------------------------------------------------------------- Ingress


class ServiceBackendPort(Model):
    number: int | None = Field(default=None, ge=1, le=65535)
    name: str | None = None


class IngressServiceBackend(Model):
    name: str = Field(min_length=1)
    port: ServiceBackendPort


class IngressBackend(Model):
    service: IngressServiceBackend | None = None
    resource: dict[str, Any] | None = None


class HTTPIngressPath(Model):
    path: str = "/"
    path_type: Literal["Exact", "Prefix", "ImplementationSpecific"]
    backend: IngressBackend


class HTTPIngressRuleValue(Model):
    paths: tuple[HTTPIngressPath, ...] = Field(min_length=1)


class IngressRule(Model):
    host: str | None = None
    http: HTTPIngressRuleValue | None = None


class IngressTLS(Model):
    hosts: tuple[str, ...] = ()
    secret_name: str | None = None


class IngressSpec(Model):
    ingress_class_name: str | None = None
    default_backend: IngressBackend | None = None
    rules: tuple[IngressRule, ...] = ()
    tls: tuple[IngressTLS, ...] = ()


class Ingress(GatewayObject):
    api_version: Literal["networking.k8s.io/v1"] = "networking.k8s.io/v1"
    kind: Literal["Ingress"] = "Ingress"
    spec: IngressSpec = Field(default_factory=IngressSpec)

    @property
    def ingress_class(self) -> str | None:
        """The class: ``spec.ingressClassName``, else the legacy ``kubernetes.io/ingress.class``
        annotation (ingress-nginx's and the Kubernetes API's rule: the field wins)."""
        return self.spec.ingress_class_name or self.metadata.annotations.get(
            INGRESS_CLASS_ANNOTATION
        )


# ---------------------------------------------------------------- IngressClass


class IngressClassParameters(Model):
    api_group: str | None = None
    kind: str
    name: str
    namespace: str | None = None
    scope: str | None = None


class IngressClassSpec(Model):
    controller: str | None = None
    parameters: IngressClassParameters | None = None


class IngressClass(GatewayObject):
    """An IngressClass (``networking.k8s.io/v1``): ``spec.controller`` says whose it is; the
    annotation ``ingressclass.kubernetes.io/is-default-class: "true"`` makes it the default."""

    api_version: Literal["networking.k8s.io/v1"] = "networking.k8s.io/v1"
    kind: Literal["IngressClass"] = "IngressClass"
    spec: IngressClassSpec = Field(default_factory=IngressClassSpec)

    @property
    def key(self) -> str:
        return self.metadata.name

    @property
    def is_default(self) -> bool:
        return self.metadata.annotations.get(DEFAULT_CLASS_ANNOTATION, "").lower() == "true"

    @property
    def is_ours(self) -> bool:
        return self.spec.controller == INGRESS_CONTROLLER


def ingress_classes_of_ours(classes: tuple[IngressClass, ...]) -> frozenset[str]:
    """The class names whose Ingresses vipcast serves: every IngressClass whose
    ``spec.controller`` is :data:`INGRESS_CONTROLLER`, and the name ``vipcast`` unless an
    IngressClass of that name names another controller."""
    ours = {c.name for c in classes if c.is_ours}
    if not any(c.name == INGRESS_CLASS for c in classes):
        ours.add(INGRESS_CLASS)
    return frozenset(ours)


def takes_classless(classes: tuple[IngressClass, ...]) -> bool:
    """Whether an Ingress without a class is vipcast's: an IngressClass of ours is marked
    default and no other controller's is (two defaults of different controllers: Kubernetes
    refuses new class-less Ingresses; the ones already there are nobody's)."""
    defaults = [c for c in classes if c.is_default]
    return bool(defaults) and all(c.is_ours for c in defaults)


def served_ingresses(ingresses: tuple[Ingress, ...],
                     classes: tuple[IngressClass, ...]) -> tuple[Ingress, ...]:
    """The Ingresses vipcast serves: its class (``spec.ingressClassName``, else the legacy
    annotation) is one of ours, or it has none and an IngressClass of ours is the default."""
    ours = ingress_classes_of_ours(classes)
    classless = takes_classless(classes)
    return tuple(i for i in ingresses
                 if (i.ingress_class in ours if i.ingress_class is not None else classless))
