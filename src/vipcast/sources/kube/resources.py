"""The Kubernetes resources vipcast reads and writes, as lightkube resource classes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lightkube.generic_resource import create_global_resource, create_namespaced_resource
from lightkube.operators import not_exists
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import Event, Namespace, Node, Secret, Service
from lightkube.resources.discovery_v1 import EndpointSlice
from lightkube.resources.networking_v1 import Ingress, IngressClass

from vipcast.sources.kube.crds import KINDS
from vipcast.spec.objects import API_GROUP, API_VERSION

VERSION = API_VERSION.split("/", 1)[1]


@dataclass(frozen=True)
class Watched:
    """One kind the sources watch: its spec kind name and lightkube resource class."""

    kind: str
    resource: Any
    namespaced: bool
    #: our own kinds: drop ``status`` before validation (the spec models have none)
    ours: bool = False
    #: watch one namespace only (None: every namespace, for namespaced kinds)
    namespace: str | None = None
    #: watch one object by name only (``fieldSelector=metadata.name=``): what an RBAC rule
    #: with ``resourceNames`` allows
    name: str | None = None
    #: a label selector the API server applies to the list and the watch (fewer objects
    #: sent, decoded and kept); None: every object of the kind
    labels: tuple[tuple[str, Any], ...] | None = None
    #: keep, of ``metadata.managedFields``, the entries of the ``status`` subresource (which
    #: manager wrote which status field: Ingresses, whose address vipcast takes back only
    #: where it wrote it); the rest of managedFields is dropped as for every kind
    status_owners: bool = False


def _ours() -> tuple[Watched, ...]:
    out = []
    for info in KINDS:
        kind = info.model.__name__
        res = create_global_resource(API_GROUP, VERSION, kind, info.plural)
        out.append(Watched(kind, res, namespaced=False, ours=True))
    return tuple(out)


OUR_KINDS: tuple[Watched, ...] = _ours()
#: the speakers' reports (not configuration: never part of the spec snapshot)
NODE_ANNOUNCEMENTS = Watched(
    "NodeAnnouncement",
    create_global_resource(API_GROUP, VERSION, "NodeAnnouncement", "nodeannouncements"),
    namespaced=False)
BGP_PEERS = next(w for w in OUR_KINDS if w.kind == "BGPPeer")
CNI_SPEAKERS = next(w for w in OUR_KINDS if w.kind == "CNISpeaker")
SERVICES = Watched("Service", Service, namespaced=True)
ENDPOINT_SLICES = Watched("EndpointSlice", EndpointSlice, namespaced=True)
#: the speaker's EndpointSlices: a headless Service (clusterIP None) can never be a LoadBalancer,
#: so its slices (labelled ``service.kubernetes.io/headless`` by the EndpointSlice controller)
#: are filtered out by the API server (docs/scale.md: what each speaker needs to watch)
SPEAKER_ENDPOINT_SLICES = Watched("EndpointSlice", EndpointSlice, namespaced=True,
                                  labels=(("service.kubernetes.io/headless", not_exists()),))
NODES = Watched("Node", Node, namespaced=False)
NAMESPACES = Watched("Namespace", Namespace, namespaced=False)


_GW = "gateway.networking.k8s.io"
#: the Gateway API kinds and Ingress (read when the gateway is enabled: the CRDs must exist)
GATEWAY_KINDS: tuple[Watched, ...] = (
    Watched("GatewayClass", create_global_resource(_GW, "v1", "GatewayClass", "gatewayclasses"),
            namespaced=False, ours=True),
    Watched("Gateway", create_namespaced_resource(_GW, "v1", "Gateway", "gateways"),
            namespaced=True, ours=True),
    Watched("HTTPRoute", create_namespaced_resource(_GW, "v1", "HTTPRoute", "httproutes"),
            namespaced=True, ours=True),
    Watched("ReferenceGrant",
            create_namespaced_resource(_GW, "v1beta1", "ReferenceGrant", "referencegrants"),
            namespaced=True, ours=True),
    Watched("Ingress", Ingress, namespaced=True, ours=True, status_owners=True),
    # which Ingresses are ours: the classes of vipcast's controller, and the default one
    Watched("IngressClass", IngressClass, namespaced=False, ours=True),
)


def secrets(namespace: str, names: Iterable[str]) -> tuple[Watched, ...]:
    """BGP passwords: only the named Secrets of vipcast's own namespace are read, one watch
    each (least privilege: the Role lists them in ``resourceNames``)."""
    return tuple(Watched("Secret", Secret, namespaced=True, namespace=namespace, name=name)
                 for name in sorted(set(names)))


#: what the controller needs to allocate
CONTROLLER_KINDS: tuple[Watched, ...] = (*OUR_KINDS, SERVICES, NAMESPACES, NODE_ANNOUNCEMENTS)
#: what a node's speaker needs to plan announcements and the data plane (plus its Secrets)
SPEAKER_KINDS: tuple[Watched, ...] = (*OUR_KINDS, SERVICES, NAMESPACES, SPEAKER_ENDPOINT_SLICES,
                                      NODES)

__all__ = [
    "BGP_PEERS", "CNI_SPEAKERS", "CONTROLLER_KINDS", "ENDPOINT_SLICES", "GATEWAY_KINDS",
    "NAMESPACES", "NODES",
    "NODE_ANNOUNCEMENTS", "OUR_KINDS", "SERVICES", "SPEAKER_ENDPOINT_SLICES", "SPEAKER_KINDS",
    "Event", "Lease", "Service", "Watched", "secrets",
]
