"""From the reflectors' objects to a :class:`~vipcast.spec.Spec`, tolerating bad objects.

In a cluster one user's broken object must not stop every other Service, yet a broken
*config* (pools, peers, advertisements) must not be half-applied either. So:

* a Service, EndpointSlice, Node, Namespace or Secret with a problem is left out (and
  reported), the rest goes on;
* if any of vipcast's own objects has a problem, the last config that validated (``last_good``)
  stays in force with the current core objects, and the problems are reported.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vipcast.spec import KINDS, Issue, Spec, SpecError, load_documents, validate_documents
from vipcast.spec.documents import JSON
from vipcast.spec.load import Assembler, Validated

CORE_KINDS = frozenset({"Service", "EndpointSlice", "Node", "Namespace", "Secret"})
OUR_KINDS = frozenset(KINDS) - CORE_KINDS
#: tenants' objects of the L7 gateway: like core objects, a broken one is left out (and
#: reported) instead of freezing the whole config (the admission review still judges them)
TENANT_KINDS = frozenset({"Gateway", "HTTPRoute", "ReferenceGrant", "Ingress", "IngressClass"})
TOLERATED_KINDS = CORE_KINDS | TENANT_KINDS
Document = tuple[str, JSON]


@dataclass(frozen=True)
class SpecOutcome:
    """The Spec to act on (None: nothing usable), and what was wrong on the way."""

    spec: Spec | None
    issues: tuple[Issue, ...] = ()
    #: sources (``Kind/key``) of core objects left out
    dropped: tuple[str, ...] = ()
    #: our own objects were broken: ``config`` is the last good one, not the current
    config_stale: bool = False
    #: the documents of our kinds actually used (the next call's ``last_good``)
    config: tuple[Document, ...] = ()


def to_document(kind: str, obj: Mapping[str, Any]) -> JSON:
    """An API object as the spec loader wants it (``status`` of our kinds -- but a Gateway's
    committed ``status.addresses`` and an Ingress's ``status.loadBalancer`` -- and server-only
    metadata dropped)."""
    doc = dict(obj)
    if kind in OUR_KINDS:
        status = doc.pop("status", None)
        if kind == "Gateway" and isinstance(status, Mapping) and status.get("addresses"):
            # the addresses the controller committed (allocated): the speakers announce
            # them, a new leader keeps them
            doc["status"] = {"addresses": status["addresses"]}
        if kind == "Ingress" and isinstance(status, Mapping) and status.get("loadBalancer"):
            # the Ingress Gateway's committed address (core/gateway/address.ingress_committed)
            doc["status"] = {"loadBalancer": status["loadBalancer"]}
    meta = dict(doc.get("metadata") or {})
    meta.pop("managedFields", None)
    doc["metadata"] = meta
    doc.setdefault("kind", kind)
    return doc


def documents(objects: Mapping[str, Iterable[Mapping[str, Any]]]) -> list[Document]:
    """``kind -> objects`` as ``(source, document)`` pairs; source is ``Kind/ns/name``."""
    out: list[Document] = []
    for kind, items in objects.items():
        for obj in items:
            doc = to_document(kind, obj)
            meta = doc["metadata"]
            ns = meta.get("namespace")
            key = f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))
            out.append((f"{kind}/{key}", doc))
    out.sort(key=lambda d: d[0])
    return out


def _kind_of(source: str) -> str:
    return source.split("/", 1)[0]


def build_spec(
    objects: Mapping[str, Iterable[Mapping[str, Any]]],
    last_good: Sequence[Document] = (),
) -> SpecOutcome:
    """Validate the cluster's objects into a Spec (see the module doc for the fallbacks)."""
    docs = documents(objects)
    ours = [d for d in docs if _kind_of(d[0]) not in TOLERATED_KINDS]
    core = [d for d in docs if _kind_of(d[0]) in TOLERATED_KINDS]
    issues: list[Issue] = []
    dropped: list[str] = []
    config_stale = False
    for _ in range(4):
        try:
            spec = load_documents([*ours, *core])
        except SpecError as error:
            issues.extend(error.issues)
            bad_core = {i.file for i in error.issues if _kind_of(i.file) in TOLERATED_KINDS}
            bad_ours = any(_kind_of(i.file) not in TOLERATED_KINDS or not i.file
                           for i in error.issues)
            if bad_core:
                dropped.extend(sorted(bad_core))
                core = [d for d in core if d[0] not in bad_core]
            if bad_ours:
                if config_stale or not last_good:
                    # no config to fall back on (or it fails with today's core objects too):
                    # acting on an empty config would withdraw every address
                    config_stale = True
                    break
                config_stale = True
                ours = list(last_good)
            if not bad_core and not bad_ours:
                break
            continue
        return SpecOutcome(spec, tuple(sorted(set(issues))), tuple(dropped), config_stale,
                           tuple(ours))
    return SpecOutcome(None, tuple(sorted(set(issues))), tuple(dropped), config_stale, ())


class SpecBuilder:
    """:func:`build_spec` with memory, for a source that hands on unchanged objects as the
    same mappings (the reflectors' stores): each object is validated once and kept, keyed
    by the mapping's identity (the mapping is kept with it), and the whole is assembled from
    the kept parts (:class:`~vipcast.spec.load.Assembler`), so one changed Service is one
    validation and the other Services stay the same Python objects (what
    :class:`~vipcast.core.incremental.NodePlanner` looks for). When anything has a problem,
    :func:`build_spec` decides, as without memory."""

    def __init__(self) -> None:
        #: id(raw object) -> (raw object, source, document, its validated part)
        self._parts: dict[int, tuple[Mapping[str, Any], str, JSON, Validated]] = {}
        self._assemble = Assembler()
        #: how many objects the last call validated (the others were kept)
        self.validated = 0

    def __call__(
        self,
        objects: Mapping[str, Iterable[Mapping[str, Any]]],
        last_good: Sequence[Document] = (),
    ) -> SpecOutcome:
        parts: dict[int, tuple[Mapping[str, Any], str, JSON, Validated]] = {}
        kept = self._parts
        self.validated = 0
        for kind, items in objects.items():
            for obj in items:
                entry = kept.get(id(obj))
                if entry is None or entry[0] is not obj:
                    doc = to_document(kind, obj)
                    meta = doc["metadata"]
                    ns = meta.get("namespace")
                    key = f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))
                    source = f"{kind}/{key}"
                    entry = (obj, source, doc, validate_documents([(source, doc)]))
                    self.validated += 1
                parts[id(obj)] = entry
        self._parts = parts
        ordered = sorted(parts.values(), key=lambda e: e[1])
        ours = [e for e in ordered if _kind_of(e[1]) not in TOLERATED_KINDS]
        core = [e for e in ordered if _kind_of(e[1]) in TOLERATED_KINDS]
        if not any(e[3].issues for e in ordered):
            try:
                spec = self._assemble([e[3] for e in (*ours, *core)])
            except SpecError:
                pass  # cross-object problems: the tolerant rules below sort them out
            else:
                return SpecOutcome(spec, config=tuple((e[1], e[2]) for e in ours))
        return build_spec(objects, last_good)
