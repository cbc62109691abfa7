"""Convert MetalLB objects (``metallb.io``) to vipcast's kinds (pure).

vipcast's kinds are named after MetalLB's and most fields carry over unchanged. A field is
copied when the vipcast model knows it (by its wire name), renamed where the names differ
(``enableGracefulRestart`` -> ``gracefulRestart``), and otherwise dropped with a note saying
why. Namespaces are dropped (vipcast's kinds are cluster-scoped); a ``passwordSecret`` keeps
its namespace (MetalLB reads it from ``metallb-system``) and gets MetalLB's fixed key. Objects
vipcast has no equivalent for (``BGPPeer`` VRFs, ``ServiceL2Status``, ...) are reported.

Pools are rewritten where vipcast would read MetalLB's text differently, so the converted
config allocates as MetalLB does (docs/allocation.md): a CIDR with host bits
(``1000::1/127``), which vipcast refuses, becomes the network MetalLB reads (``1000::/127``);
``priority: 0``, MetalLB's unset value, is dropped (vipcast counts 0 as unset too, but warns).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from vipcast.spec import KINDS
from vipcast.spec.documents import JSON
from vipcast.spec.objects import API_VERSION

METALLB_GROUPS = ("metallb.io/",)
VIPCAST_NAMESPACE = "vipcast-system"
CONVERTED = ("IPAddressPool", "BGPPeer", "BGPAdvertisement", "L2Advertisement", "BFDProfile",
             "Community")
RENAMES: dict[str, dict[str, str]] = {"BGPPeer": {"enableGracefulRestart": "gracefulRestart"}}
#: fields dropped on purpose, with why
KNOWN_DROPS: dict[str, str] = {
    "vrf": "VRFs are not supported by vipcast",
    "disableMP": "vipcast negotiates multiprotocol per family itself",
    "dynamicASN": "set peerASN explicitly",
    "echoInterval": "BFD echo mode is not supported",
    "echoMode": "BFD echo mode is not supported",
}


@dataclass(frozen=True)
class Conversion:
    documents: tuple[JSON, ...]
    #: human-readable notes: what was dropped or skipped, and why
    notes: tuple[str, ...]


def _spec_model(kind: str) -> type[BaseModel]:
    model = KINDS[kind][1]
    annotation = model.model_fields["spec"].annotation
    assert isinstance(annotation, type) and issubclass(annotation, BaseModel)
    return annotation


def _wire_names(model: type[BaseModel]) -> set[str]:
    return {info.alias or name for name, info in model.model_fields.items()}


def convert_object(obj: Mapping[str, Any]) -> tuple[JSON | None, list[str]]:
    """One MetalLB object as a vipcast object (None: no equivalent), and notes."""
    kind = str(obj.get("kind", ""))
    meta = obj.get("metadata") or {}
    name = str(meta.get("name", ""))
    label = f"{kind}/{name}"
    api = str(obj.get("apiVersion", ""))
    if not api.startswith(METALLB_GROUPS):
        return None, [f"{label}: not a MetalLB object ({api or 'no apiVersion'}), skipped"]
    if kind not in CONVERTED:
        return None, [f"{label}: vipcast has no equivalent of {kind}, skipped"]
    notes: list[str] = []
    known = _wire_names(_spec_model(kind))
    renames = RENAMES.get(kind, {})
    spec: JSON = {}
    for key, value in (obj.get("spec") or {}).items():
        target = renames.get(key, key)
        if target in known:
            spec[target] = value
        else:
            why = KNOWN_DROPS.get(key) or "no such field in vipcast"
            notes.append(f"{label}: dropped spec.{key} ({why})")
    if kind == "IPAddressPool":
        notes.extend(_as_metallb_reads(label, spec))
    if kind == "BGPPeer" and isinstance(spec.get("passwordSecret"), dict):
        ref = dict(spec["passwordSecret"])
        source_ns = ref.get("namespace") or meta.get("namespace") or "metallb-system"
        ref["namespace"] = VIPCAST_NAMESPACE
        ref.setdefault("key", "password")
        spec["passwordSecret"] = ref
        notes.append(f"{label}: copy Secret {source_ns}/{ref['name']} to {VIPCAST_NAMESPACE} "
                     "(the speaker reads Secrets there only)")
    new_meta: JSON = {"name": name}
    for field in ("labels", "annotations"):
        if meta.get(field):
            new_meta[field] = dict(meta[field])
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": new_meta, "spec": spec}, notes


def _as_metallb_reads(label: str, spec: JSON) -> list[str]:
    """Rewrite a pool's spec (in place) to what MetalLB makes of it; notes on each change."""
    notes: list[str] = []
    addresses = spec.get("addresses")
    if isinstance(addresses, list):
        rewritten = []
        for text in addresses:
            network = _network_of(text)
            if network is not None:
                notes.append(f"{label}: address {text} has host bits set; written as "
                             f"{network}, the network MetalLB reads")
                rewritten.append(network)
            else:
                rewritten.append(text)
        spec["addresses"] = rewritten
    alloc = spec.get("serviceAllocation")
    if isinstance(alloc, dict) and alloc.get("priority") == 0:
        alloc = {k: v for k, v in alloc.items() if k != "priority"}
        spec["serviceAllocation"] = alloc
        notes.append(f"{label}: dropped serviceAllocation.priority 0 (MetalLB's unset value)")
    return notes


def _network_of(text: object) -> str | None:
    """The network MetalLB reads from a CIDR with host bits set; None for anything else."""
    if not isinstance(text, str) or "-" in text or "/" not in text:
        return None
    try:
        ipaddress.ip_network(text.strip())
        return None  # no host bits
    except ValueError:
        pass
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        return None


def convert(objects: Iterable[Mapping[str, Any]]) -> Conversion:
    docs: list[JSON] = []
    notes: list[str] = []
    for obj in objects:
        doc, more = convert_object(obj)
        notes.extend(more)
        if doc is not None:
            docs.append(doc)
    return Conversion(tuple(docs), tuple(notes))
