"""Validate already-parsed documents into one cross-checked :class:`Spec`, or reject them whole.

A config holds any number of documents of our kinds (``vipcast.io/v1beta1``) and of the core
kinds we read (Service, EndpointSlice, Node, Namespace, Secret, the Gateway API, Ingress).
Reading them (files, the Kubernetes API) is the sources' business
(:mod:`vipcast.sources.files`); this module only validates values. Every problem is collected
(source, kind/name, field, message) and raised together in one :class:`SpecError`; nothing of
a broken config is returned.

Validation is split in two so a source can cache the expensive half per file:
:func:`validate_documents` turns the documents of one source into model objects (context-free,
per document), :func:`assemble` puts the validated parts together, refuses duplicates and
runs the cross-checks.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from itertools import chain
from typing import Any

from pydantic import BaseModel, ValidationError

from vipcast.spec.cni import CNISpeaker
from vipcast.spec.errors import Issue, SpecError
from vipcast.spec.gateway.objects import (
    Gateway,
    GatewayClass,
    Ingress,
    IngressClass,
    ReferenceGrant,
    served_ingresses,
)
from vipcast.spec.gateway.routes import HTTPRoute
from vipcast.spec.kube import (
    ANNOTATION_IPS,
    EndpointSlice,
    Namespace,
    Node,
    Secret,
    Service,
    annotation,
)
from vipcast.spec.meta import LabelSelector
from vipcast.spec.objects import (
    API_VERSION,
    BFDProfile,
    BGPAdvertisement,
    BGPPeer,
    Community,
    IPAddressPool,
    L2Advertisement,
    parse_community,
)
from vipcast.spec.providers import LoadBalancerProvider

_GATEWAY_VERSIONS = ("gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1")
#: kind -> (accepted apiVersions, model)
KINDS: dict[str, tuple[tuple[str, ...], type[BaseModel]]] = {
    "IPAddressPool": ((API_VERSION,), IPAddressPool),
    "BGPPeer": ((API_VERSION,), BGPPeer),
    "BGPAdvertisement": ((API_VERSION,), BGPAdvertisement),
    "L2Advertisement": ((API_VERSION,), L2Advertisement),
    "BFDProfile": ((API_VERSION,), BFDProfile),
    "Community": ((API_VERSION,), Community),
    "LoadBalancerProvider": ((API_VERSION,), LoadBalancerProvider),
    "CNISpeaker": ((API_VERSION,), CNISpeaker),
    "Service": (("v1",), Service),
    "EndpointSlice": (("discovery.k8s.io/v1",), EndpointSlice),
    "Node": (("v1",), Node),
    "Namespace": (("v1",), Namespace),
    "Secret": (("v1",), Secret),
    "GatewayClass": (_GATEWAY_VERSIONS, GatewayClass),
    "Gateway": (_GATEWAY_VERSIONS, Gateway),
    "HTTPRoute": (_GATEWAY_VERSIONS, HTTPRoute),
    "ReferenceGrant": (_GATEWAY_VERSIONS, ReferenceGrant),
    "Ingress": (("networking.k8s.io/v1",), Ingress),
    "IngressClass": (("networking.k8s.io/v1",), IngressClass),
}
NAMESPACED = frozenset(
    {"Service", "EndpointSlice", "Secret", "Gateway", "HTTPRoute", "ReferenceGrant", "Ingress"}
)


@dataclass(frozen=True)
class Spec:
    """A whole, validated, cross-checked configuration (plus the core objects read with it)."""

    pools: tuple[IPAddressPool, ...] = ()
    peers: tuple[BGPPeer, ...] = ()
    bgp_advertisements: tuple[BGPAdvertisement, ...] = ()
    l2_advertisements: tuple[L2Advertisement, ...] = ()
    bfd_profiles: tuple[BFDProfile, ...] = ()
    communities: tuple[Community, ...] = ()
    providers: tuple[LoadBalancerProvider, ...] = ()
    cni_speakers: tuple[CNISpeaker, ...] = ()
    services: tuple[Service, ...] = ()
    endpoint_slices: tuple[EndpointSlice, ...] = ()
    nodes: tuple[Node, ...] = ()
    namespaces: tuple[Namespace, ...] = ()
    secrets: tuple[Secret, ...] = ()
    gateway_classes: tuple[GatewayClass, ...] = ()
    gateways: tuple[Gateway, ...] = ()
    http_routes: tuple[HTTPRoute, ...] = ()
    reference_grants: tuple[ReferenceGrant, ...] = ()
    ingresses: tuple[Ingress, ...] = ()
    ingress_classes: tuple[IngressClass, ...] = ()
    #: "Kind/key" -> the file the object came from
    origins: Mapping[str, str] = field(default_factory=dict)

    def pool(self, name: str) -> IPAddressPool | None:
        return next((p for p in self.pools if p.name == name), None)

    def peer(self, name: str) -> BGPPeer | None:
        return next((p for p in self.peers if p.name == name), None)

    def bfd_profile(self, name: str) -> BFDProfile | None:
        return next((p for p in self.bfd_profiles if p.name == name), None)

    def cni_speaker_of(self, peer: BGPPeer) -> CNISpeaker | None:
        """The CNISpeaker a BGPPeer names (or the only one, when it names none)."""
        name = peer.spec.cni_speaker
        if name is None:
            return self.cni_speakers[0] if len(self.cni_speakers) == 1 else None
        return next((c for c in self.cni_speakers if c.name == name), None)

    def node(self, name: str) -> Node | None:
        return next((n for n in self.nodes if n.metadata.name == name), None)

    def service(self, key: str) -> Service | None:
        return next((s for s in self.services if s.key == key), None)

    def served_ingresses(self) -> tuple[Ingress, ...]:
        """The Ingresses of vipcast's classes (see
        :func:`vipcast.spec.gateway.objects.served_ingresses`)."""
        return served_ingresses(self.ingresses, self.ingress_classes)

    def community_aliases(self) -> dict[str, str]:
        return {a.name: a.value for c in self.communities for a in c.spec.communities}

    def resolve_community(self, text: str) -> int | tuple[int, int, int]:
        """A community literal or alias as its value (the spec was checked: it resolves)."""
        literal = parse_community(text)
        if literal is None:
            literal = parse_community(self.community_aliases()[text])
        assert literal is not None
        return literal

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        ns = next((n for n in self.namespaces if n.metadata.name == namespace), None)
        labels = dict(ns.metadata.labels) if ns else {}
        labels.setdefault("kubernetes.io/metadata.name", namespace)
        return labels

    def slices_of(self, service_key: str) -> tuple[EndpointSlice, ...]:
        return tuple(s for s in self.endpoint_slices if s.service_key == service_key)

    def secret(self, name: str, namespace: str | None) -> Secret | None:
        """The Secret ``namespace/name`` (None: not in the set)."""
        ns = namespace or "default"
        return next((s for s in self.secrets if s.metadata.name == name
                     and (s.metadata.namespace or "default") == ns), None)

    def secret_value(self, name: str, namespace: str | None, key: str) -> str | None:
        ns = namespace or "default"
        for secret in self.secrets:
            if secret.metadata.name == name and (secret.metadata.namespace or "default") == ns:
                try:
                    return secret.value(key)
                except ValueError:  # not UTF-8 text: unusable, never an exception out of here
                    return None
        return None

    def provider_for(self, load_balancer_class: str | None) -> LoadBalancerProvider | None:
        """The provider serving a Service's loadBalancerClass (None: vipcast's own, or other)."""
        if load_balancer_class is None:
            return None
        return next(
            (p for p in self.providers if p.load_balancer_class == load_balancer_class), None
        )

    def peer_password(self, peer: BGPPeer) -> str | None:
        """The peer's TCP-MD5 password (None: none, or its Secret cannot be used: see
        :meth:`password_problem`)."""
        if peer.spec.password is not None:
            return peer.spec.password
        return self._secret_password(peer)[0]

    def password_problem(self, peer: BGPPeer) -> str | None:
        """Why the peer's ``passwordSecret`` gives no password (None: it does, or none is
        referenced). A Secret reference without a namespace matches a Secret of that name in
        any namespace the source read (in a cluster: vipcast's own namespace only)."""
        if peer.spec.password is not None:
            return None
        return self._secret_password(peer)[1]

    def _secret_password(self, peer: BGPPeer) -> tuple[str | None, str | None]:
        """(password, None), or (None, why not); (None, None) when no Secret is referenced."""
        ref = peer.spec.password_secret
        if ref is None:
            return None, None
        where = f"{ref.namespace}/{ref.name}" if ref.namespace else ref.name
        candidates = sorted(
            (s for s in self.secrets if s.metadata.name == ref.name
             and (ref.namespace is None or (s.metadata.namespace or "default") == ref.namespace)),
            key=lambda s: s.metadata.namespace or "")
        if not candidates:
            return None, f"Secret {where} not found (or not readable by vipcast)"
        try:
            value = candidates[0].value(ref.key)
        except ValueError as exc:
            return None, f"Secret {where}: {exc}"
        if value is None:
            return None, f"Secret {where} has no key {ref.key!r}"
        if not value or len(value.encode()) > 80 or "\0" in value:
            # Linux's TCP-MD5 key: at most 80 bytes, a C string
            return None, f"Secret {where} key {ref.key!r}: a password is 1 to 80 bytes, no NUL"
        return value, None

    def pools_selected(
        self, names: Sequence[str], selectors: Sequence[LabelSelector]
    ) -> tuple[IPAddressPool, ...]:
        """Pools named or selected by an advertisement (all pools when it names none)."""
        if not names and not selectors:
            return self.pools
        return tuple(
            p
            for p in self.pools
            if p.name in names or any(s.matches(p.metadata.labels) for s in selectors)
        )


# ---------------------------------------------------------------- validation


def _field(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _parse(source: str, doc: object) -> tuple[BaseModel | None, list[Issue]]:
    if not isinstance(doc, dict):
        return None, [Issue(source, "", "", "", "a document must be a mapping (an object)")]
    kind = doc.get("kind")
    meta = doc.get("metadata")
    name = str(meta.get("name", "")) if isinstance(meta, dict) else ""
    if not isinstance(kind, str) or kind not in KINDS:
        known = ", ".join(sorted(KINDS))
        msg = f"unknown kind (known: {known})"
        return None, [Issue(source, str(kind or ""), name, "kind", msg)]
    versions, model = KINDS[kind]
    if doc.get("apiVersion") not in versions:
        msg = f"apiVersion must be {' or '.join(versions)}, not {doc.get('apiVersion')!r}"
        return None, [Issue(source, kind, name, "apiVersion", msg)]
    try:
        return model.model_validate(doc), []
    except ValidationError as exc:
        issues = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            issues.append(Issue(source, kind, name, _field(tuple(err["loc"])), msg))
        return None, issues


def _key(kind: str, obj: Any) -> str:
    meta = obj.metadata
    if kind in NAMESPACED:
        return f"{meta.namespace or 'default'}/{meta.name}"
    return str(meta.name)


@dataclass(frozen=True)
class Validated:
    """The documents of one source as model objects (in document order), with their issues."""

    objects: tuple[tuple[str, BaseModel], ...] = ()
    issues: tuple[Issue, ...] = ()

    @cached_property
    def by_kind(self) -> dict[str, tuple[BaseModel, ...]]:
        """The objects by kind, in order (this part's share of each Spec field)."""
        grouped: dict[str, list[BaseModel]] = {}
        for _ident, kind, _source, obj in self.keyed:
            grouped.setdefault(kind, []).append(obj)
        return {k: tuple(v) for k, v in grouped.items()}

    @cached_property
    def keyed(self) -> tuple[tuple[str, str, str, BaseModel], ...]:
        """(``Kind/key``, kind, source, object) of each object: computed once per part, so a
        source that keeps its parts assembles unchanged ones without looking into them."""
        out = []
        for source, obj in self.objects:
            kind = str(getattr(obj, "kind"))  # noqa: B009 - every model has a literal kind
            out.append((f"{kind}/{_key(kind, obj)}", kind, source, obj))
        return tuple(out)


def validate_documents(docs: Iterable[tuple[str, object]]) -> Validated:
    """Each ``(source, document)`` as a model object; the problems of each as issues.

    Context-free: the result depends on these documents only, so a source may keep it for as
    long as the documents do not change (see :func:`assemble`). The checks of one object that
    need no other object run here too (a Service's requested addresses)."""
    from vipcast.spec.checks import service_issues  # local: checks imports Spec from here

    issues: list[Issue] = []
    objects: list[tuple[str, BaseModel]] = []
    ordinals: dict[str, int] = {}
    for source, doc in docs:
        ordinal = ordinals[source] = ordinals.get(source, 0) + 1
        obj, problems = _parse(source, doc)
        if problems:  # an object without a name is found in its file by its position
            issues.extend(
                p if p.name
                else replace(p, message=f"{p.message} (document #{ordinal} of the file)")
                for p in problems
            )
        if obj is not None:
            objects.append((source, obj))
            # a Service without annotations, requested address or source ranges (most of
            # them) has nothing for service_issues to look at
            if isinstance(obj, Service) and (
                obj.metadata.annotations or obj.spec.load_balancer_ip
                or obj.spec.load_balancer_source_ranges
            ):
                issues.extend(service_issues(source, obj))
    return Validated(tuple(objects), tuple(issues))


#: kind -> the Spec field holding its objects
SPEC_FIELDS: dict[str, str] = {
    "IPAddressPool": "pools",
    "BGPPeer": "peers",
    "BGPAdvertisement": "bgp_advertisements",
    "L2Advertisement": "l2_advertisements",
    "BFDProfile": "bfd_profiles",
    "Community": "communities",
    "LoadBalancerProvider": "providers",
    "CNISpeaker": "cni_speakers",
    "Service": "services",
    "EndpointSlice": "endpoint_slices",
    "Node": "nodes",
    "Namespace": "namespaces",
    "Secret": "secrets",
    "GatewayClass": "gateway_classes",
    "Gateway": "gateways",
    "HTTPRoute": "http_routes",
    "ReferenceGrant": "reference_grants",
    "Ingress": "ingresses",
    "IngressClass": "ingress_classes",
}


def _spec_of(parts: Sequence[Validated], origins: dict[str, str]) -> Spec:
    """The Spec of parts without issues or duplicates: each kind's objects, part by part."""
    fields: dict[str, Any] = {
        name: tuple(chain.from_iterable(p.by_kind.get(kind, ()) for p in parts))
        for kind, name in SPEC_FIELDS.items()
    }
    return Spec(**fields, origins=origins)


def assemble(parts: Iterable[Validated]) -> Spec:
    """One Spec from validated parts (in order): duplicates refused, cross-checked; or
    SpecError with every issue of every part."""
    issues: list[Issue] = []
    by_kind: dict[str, list[Any]] = {k: [] for k in KINDS}
    origins: dict[str, str] = {}
    for part in parts:
        issues.extend(part.issues)
        for ident, kind, source, obj in part.keyed:
            first = origins.get(ident)
            if first is not None:
                key = ident.partition("/")[2]
                issues.append(
                    Issue(source, kind, key, "metadata.name", f"duplicate name (also in {first})")
                )
                continue
            origins[ident] = source
            by_kind[kind].append(obj)
    spec = Spec(**{name: tuple(by_kind[kind]) for kind, name in SPEC_FIELDS.items()},
                origins=origins)
    issues.extend(cross_check(spec))
    if issues:
        raise SpecError(issues)
    return spec


class Assembler:
    """:func:`assemble` with memory: when the parts are the last ones (the same objects) with
    some added or removed, only those are looked into; the result is the same."""

    def __init__(self) -> None:
        self._last: tuple[tuple[Validated, ...], Spec] | None = None

    def __call__(self, parts: Sequence[Validated]) -> Spec:
        last = self._last
        if last is not None and not any(p.issues for p in parts):
            spec = self._changed(last, tuple(parts))
            if spec is not None:
                self._last = (tuple(parts), spec)
                return spec
        spec = assemble(parts)
        self._last = (tuple(parts), spec)
        return spec

    @staticmethod
    def _changed(last: tuple[tuple[Validated, ...], Spec], parts: tuple[Validated, ...]
                 ) -> Spec | None:
        old_parts, old_spec = last
        if parts == old_parts or (all(a is b for a, b in zip(parts, old_parts, strict=False)
                                     ) and len(parts) == len(old_parts)):
            return old_spec
        old_ids, new_ids = {id(p) for p in old_parts}, {id(p) for p in parts}
        origins = dict(old_spec.origins)
        for part in old_parts:
            if id(part) not in new_ids:
                for ident, _kind, _source, _obj in part.keyed:
                    origins.pop(ident, None)
        for part in parts:
            if id(part) not in old_ids:
                for ident, _kind, source, _obj in part.keyed:
                    if ident in origins:
                        return None  # a duplicate: the whole assembly reports it
                    origins[ident] = source
        spec = _spec_of(parts, origins)
        if cross_check(spec):
            return None  # the whole assembly raises with every issue
        return spec


def load_documents(docs: Iterable[tuple[str, object]]) -> Spec:
    """Validate ``(source, document)`` pairs into a Spec, or raise SpecError with every issue."""
    return assemble([validate_documents(docs)])


def cross_check(spec: Spec) -> list[Issue]:
    """Checks that need more than one object: overlaps, references, impossible selectors."""
    from vipcast.spec.checks import check_all  # local: checks imports Spec from here

    return check_all(spec)


def requested_ips(service: Service) -> tuple[str, ...]:
    """IPs a Service asks for: the annotation (one per family) or spec.loadBalancerIP, in
    canonical text (ValueError for one that is not an address)."""
    raw = annotation(service.metadata, ANNOTATION_IPS)
    if raw:
        return tuple(canonical_ip(p.strip()) for p in raw.split(",") if p.strip())
    return (service.spec.load_balancer_ip,) if service.spec.load_balancer_ip else ()


#: a dotted quad as ``str(ipaddress.ip_address(...))`` writes it: ASCII digits, each 0-255, no
#: leading zero (ipaddress refuses those), no sign
_CANONICAL_V4 = re.compile(
    r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
    r"(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}")


def canonical_ip(text: str) -> str:
    """``str(ipaddress.ip_address(text))``; a canonical dotted quad is returned as it is
    without building an address object (ValueError for text that is not an address)."""
    if _CANONICAL_V4.fullmatch(text):  # one C call: every Service's requested address
        return text
    return str(ipaddress.ip_address(text))
