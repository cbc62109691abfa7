"""``LoadBalancerProvider``: an external load balancer vipcast drives for a loadBalancerClass.

A Service whose ``spec.loadBalancerClass`` names a provider's class (``vipcast.io/<name>`` unless
the provider sets ``loadBalancerClass``) gets its VIP on that external load balancer (an HAProxy
appliance, OpenStack Octavia, or an F5 BIG-IP through AS3) instead of vipcast's own announcement.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlparse

from pydantic import Field, field_validator, model_validator

from vipcast.spec.kube import LOAD_BALANCER_CLASS
from vipcast.spec.meta import LabelSelector, Model
from vipcast.spec.objects import Duration, OurObject, SecretRef

Driver = Literal["haproxy", "octavia", "as3"]
#: Service annotation: Services with the same value share one external load balancer
ANNOTATION_SHARED_LB = "vipcast.io/shared-load-balancer"
_CLASS_PREFIX = "vipcast.io/"


class HealthCheckOptions(Model):
    """How the load balancer probes its members (TCP connect, or HTTP for ``Local`` policy)."""

    interval: Duration = 5.0
    timeout: Duration = 3.0
    rise: int = Field(default=2, ge=1, le=10)
    fall: int = Field(default=3, ge=1, le=10)

    @model_validator(mode="after")
    def _bounds(self) -> HealthCheckOptions:
        if not 0 < self.interval <= 3600:
            raise ValueError("interval must be between 0 and 1h")
        if not 0 < self.timeout <= 3600:
            raise ValueError("timeout must be between 0 and 1h")
        return self


class ProviderOptions(Model):
    """What the desired load balancer looks like (the same for every driver)."""

    #: members are the nodes (on the NodePort) or the endpoints themselves (the LB must reach them)
    members: Literal["nodes", "pods"] = "nodes"
    #: nodes eligible as members (all Ready nodes when empty)
    node_selectors: tuple[LabelSelector, ...] = ()
    #: carry the client address to the members: PROXY protocol v2 (any TCP) or X-Forwarded-For
    proxy_protocol: bool = False
    forwarded_for: bool = False
    algorithm: Literal["ROUND_ROBIN", "LEAST_CONNECTIONS", "SOURCE_IP"] = "ROUND_ROBIN"
    health_check: HealthCheckOptions = Field(default_factory=HealthCheckOptions)
    #: pools (autoAssign: false) the VIPs come from; none: the provider chooses (Octavia)
    address_pools: tuple[str, ...] = ()
    #: the ``<cluster>`` of the names ``kube_service_<cluster>_<namespace>_<name>``
    cluster_name: str = Field(default="kubernetes", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    #: Octavia: the VIP's subnet or network, and the project the load balancers belong to
    #: (with a Keystone credential, default: the token's project)
    vip_subnet_id: str | None = None
    vip_network_id: str | None = None
    project_id: str | None = None
    #: AS3: the tenant (BIG-IP partition) that holds this cluster's applications
    tenant: str = Field(default="vipcast", pattern=r"^[A-Za-z][0-9A-Za-z_.-]{0,47}$")

    @model_validator(mode="after")
    def _exclusive(self) -> ProviderOptions:
        if self.proxy_protocol and self.forwarded_for:
            raise ValueError("proxyProtocol and forwardedFor exclude each other")
        if self.vip_subnet_id and self.vip_network_id:
            raise ValueError("set vipSubnetId or vipNetworkId, not both")
        return self


class LoadBalancerProviderSpec(Model):
    driver: Driver
    #: haproxy: the appliance's state directory (``file:///var/lib/vipcast-haproxy``);
    #: octavia: the load-balancer API URL; as3: the BIG-IP management URL
    endpoint: str = Field(min_length=1, max_length=1024)
    #: a Secret holding the credential: AS3, the password under ``key``; Octavia, a Keystone
    #: credential whose keys are clouds.yaml's ``auth`` names (``key`` unused; see
    #: :mod:`vipcast.spec.keystone`); none for Octavia: no authentication (noauth)
    credentials_secret: SecretRef | None = None
    #: the Services' loadBalancerClass this provider serves (default ``vipcast.io/<name>``)
    load_balancer_class: str | None = Field(default=None, max_length=253)
    options: ProviderOptions = Field(default_factory=ProviderOptions)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        url = urlparse(value)
        if url.scheme not in ("file", "http", "https") or not (url.netloc or url.path):
            raise ValueError(f"{value!r} is not a file://, http:// or https:// URL")
        return value

    @field_validator("load_balancer_class")
    @classmethod
    def _class(cls, value: str | None) -> str | None:
        if value is not None and (value == LOAD_BALANCER_CLASS or "/" not in value):
            raise ValueError(
                f"{value!r}: a loadBalancerClass is a prefixed name (example.com/lb) and not "
                f"vipcast's own {LOAD_BALANCER_CLASS}"
            )
        return value

    @model_validator(mode="after")
    def _driver_fit(self) -> LoadBalancerProviderSpec:
        scheme = urlparse(self.endpoint).scheme
        if self.driver == "haproxy" and scheme != "file":
            raise ValueError("the haproxy driver's endpoint is a file:// state directory")
        if self.driver != "haproxy" and scheme == "file":
            raise ValueError(f"the {self.driver} driver's endpoint is an http(s):// URL")
        return self


class LoadBalancerProvider(OurObject):
    """An external load balancer (HAProxy appliance, OpenStack Octavia, F5 AS3) for a class."""

    kind: Literal["LoadBalancerProvider"] = "LoadBalancerProvider"
    spec: LoadBalancerProviderSpec

    @property
    def load_balancer_class(self) -> str:
        return self.spec.load_balancer_class or f"{_CLASS_PREFIX}{self.metadata.name}"
