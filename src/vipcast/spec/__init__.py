"""The user-facing object model: our kinds, views of core objects, and whole-config validation."""

from vipcast.spec.addresses import AddressRange, parse_ip, parse_range
from vipcast.spec.errors import Issue, SpecError
from vipcast.spec.kube import (
    ANNOTATION_HEALTH,
    ANNOTATION_IPS,
    ANNOTATION_POOL,
    ANNOTATION_SHARING,
    LOAD_BALANCER_CLASS,
    Endpoint,
    EndpointSlice,
    Namespace,
    Node,
    Secret,
    Service,
    ServicePort,
    annotation,
    claims,
    request_conflict,
)
from vipcast.spec.load import (
    KINDS,
    Spec,
    Validated,
    assemble,
    load_documents,
    requested_ips,
    validate_documents,
)
from vipcast.spec.meta import LabelSelector, ObjectMeta, Requirement
from vipcast.spec.objects import (
    API_GROUP,
    API_VERSION,
    BFDProfile,
    BGPAdvertisement,
    BGPPeer,
    Community,
    IPAddressPool,
    L2Advertisement,
    parse_community,
    parse_duration,
)
from vipcast.spec.providers import (
    ANNOTATION_SHARED_LB,
    LoadBalancerProvider,
    ProviderOptions,
)

__all__ = [
    "ANNOTATION_HEALTH", "ANNOTATION_IPS", "ANNOTATION_POOL", "ANNOTATION_SHARED_LB",
    "ANNOTATION_SHARING", "API_GROUP",
    "API_VERSION", "KINDS", "LOAD_BALANCER_CLASS", "AddressRange", "BFDProfile",
    "BGPAdvertisement", "BGPPeer", "Community", "Endpoint", "EndpointSlice", "IPAddressPool",
    "Issue", "L2Advertisement", "LabelSelector", "LoadBalancerProvider", "Namespace", "Node",
    "ObjectMeta",
    "ProviderOptions", "Requirement",
    "Secret", "Service", "ServicePort", "Spec", "SpecError", "annotation", "claims",
    "Validated", "assemble", "load_documents", "parse_community", "parse_duration", "parse_ip",
    "parse_range", "request_conflict", "requested_ips", "validate_documents",
]
