"""Views of the Gateway API kinds (GatewayClass, Gateway, HTTPRoute, ReferenceGrant) and of
Ingress, as vipcast reads them; the checks that refuse what cannot be served."""

from vipcast.spec.gateway.checks import (
    check_gateway_objects,
    hostname_problem,
    listener_conflicts,
    regex_problem,
)
from vipcast.spec.gateway.meta import GatewayObject, TimedMeta
from vipcast.spec.gateway.objects import (
    CONTROLLER_NAME,
    INGRESS_CLASS,
    INGRESS_CONTROLLER,
    Gateway,
    GatewayClass,
    Ingress,
    IngressClass,
    Listener,
    ReferenceGrant,
    served_ingresses,
)
from vipcast.spec.gateway.routes import (
    FILTER_TYPES,
    SUPPORTED_FILTERS,
    BackendRef,
    HTTPRoute,
    RouteFilter,
    RouteMatch,
    RouteRule,
)

__all__ = [
    "CONTROLLER_NAME", "FILTER_TYPES", "INGRESS_CLASS", "INGRESS_CONTROLLER", "SUPPORTED_FILTERS",
    "BackendRef", "Gateway", "GatewayClass", "GatewayObject", "HTTPRoute", "Ingress",
    "IngressClass", "Listener",
    "ReferenceGrant", "RouteFilter", "RouteMatch", "RouteRule", "TimedMeta",
    "check_gateway_objects", "hostname_problem", "listener_conflicts", "regex_problem",
    "served_ingresses",
]
