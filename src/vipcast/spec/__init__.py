"""The user-facing object model: our kinds, views of core objects, and whole-config validation.

The package's names are imported when first read (:mod:`vipcast.lazy_exports`): importing one
of its modules (``vipcast.spec.health``, ``vipcast.spec.objects``) no longer imports the whole
object model and pydantic's validators with it (the agent's start from its start cache needs
none of them before its first routes are out; tests/foundation/test_lazy_exports.py reads
every name).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vipcast.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from vipcast.spec.addresses import AddressRange, parse_host_port, parse_ip, parse_range
    from vipcast.spec.cni import CNISpeaker
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
    "ANNOTATION_HEALTH",
    "ANNOTATION_IPS",
    "ANNOTATION_POOL",
    "ANNOTATION_SHARED_LB",
    "ANNOTATION_SHARING",
    "API_GROUP",
    "API_VERSION",
    "KINDS",
    "LOAD_BALANCER_CLASS",
    "AddressRange",
    "BFDProfile",
    "BGPAdvertisement",
    "BGPPeer",
    "CNISpeaker",
    "Community",
    "Endpoint",
    "EndpointSlice",
    "IPAddressPool",
    "Issue",
    "L2Advertisement",
    "LabelSelector",
    "LoadBalancerProvider",
    "Namespace",
    "Node",
    "ObjectMeta",
    "ProviderOptions",
    "Requirement",
    "Secret",
    "Service",
    "ServicePort",
    "Spec",
    "SpecError",
    "Validated",
    "annotation",
    "assemble",
    "claims",
    "load_documents",
    "parse_community",
    "parse_duration",
    "parse_host_port",
    "parse_ip",
    "parse_range",
    "request_conflict",
    "requested_ips",
    "validate_documents",
]

#: where each name of ``__all__`` lives
_WHERE = {
    "ANNOTATION_HEALTH": "vipcast.spec.kube",
    "ANNOTATION_IPS": "vipcast.spec.kube",
    "ANNOTATION_POOL": "vipcast.spec.kube",
    "ANNOTATION_SHARED_LB": "vipcast.spec.providers",
    "ANNOTATION_SHARING": "vipcast.spec.kube",
    "API_GROUP": "vipcast.spec.objects",
    "API_VERSION": "vipcast.spec.objects",
    "KINDS": "vipcast.spec.load",
    "LOAD_BALANCER_CLASS": "vipcast.spec.kube",
    "AddressRange": "vipcast.spec.addresses",
    "BFDProfile": "vipcast.spec.objects",
    "BGPAdvertisement": "vipcast.spec.objects",
    "BGPPeer": "vipcast.spec.objects",
    "CNISpeaker": "vipcast.spec.cni",
    "Community": "vipcast.spec.objects",
    "Endpoint": "vipcast.spec.kube",
    "EndpointSlice": "vipcast.spec.kube",
    "IPAddressPool": "vipcast.spec.objects",
    "Issue": "vipcast.spec.errors",
    "L2Advertisement": "vipcast.spec.objects",
    "LabelSelector": "vipcast.spec.meta",
    "LoadBalancerProvider": "vipcast.spec.providers",
    "Namespace": "vipcast.spec.kube",
    "Node": "vipcast.spec.kube",
    "ObjectMeta": "vipcast.spec.meta",
    "ProviderOptions": "vipcast.spec.providers",
    "Requirement": "vipcast.spec.meta",
    "Secret": "vipcast.spec.kube",
    "Service": "vipcast.spec.kube",
    "ServicePort": "vipcast.spec.kube",
    "Spec": "vipcast.spec.load",
    "SpecError": "vipcast.spec.errors",
    "Validated": "vipcast.spec.load",
    "annotation": "vipcast.spec.kube",
    "assemble": "vipcast.spec.load",
    "claims": "vipcast.spec.kube",
    "load_documents": "vipcast.spec.load",
    "parse_community": "vipcast.spec.objects",
    "parse_duration": "vipcast.spec.objects",
    "parse_host_port": "vipcast.spec.addresses",
    "parse_ip": "vipcast.spec.addresses",
    "parse_range": "vipcast.spec.addresses",
    "request_conflict": "vipcast.spec.kube",
    "requested_ips": "vipcast.spec.load",
    "validate_documents": "vipcast.spec.load",
}

__getattr__ = lazy_exports(globals(), _WHERE)
