"""Convert MetalLB objects (``metallb.io``) to vipcast's kinds (pure).

vipcast's kinds are named after MetalLB's and most fields carry over unchanged. A field is
copied when the vipcast model knows it (by its wire name), renamed where the names differ
(``enableGracefulRestart`` -> ``gracefulRestart``), and otherwise dropped with a note saying
why. Namespaces are dropped (vipcast's kinds are cluster-scoped); a ``passwordSecret`` keeps
its namespace (MetalLB reads it from ``metallb-system``) and gets MetalLB's fixed key. Objects
vipcast has no equivalent for (``BGPPeer`` VRFs, ``ServiceL2Status``, ...) are reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from vipcast.spec import KINDS
from vipcast.spec.objects import API_VERSION

JSON = dict[str, Any]
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


def convert(objects: Iterable[Mapping[str, Any]]) -> Conversion:
    docs: list[JSON] = []
    notes: list[str] = []
    for obj in objects:
        doc, more = convert_object(obj)
        notes.extend(more)
        if doc is not None:
            docs.append(doc)
    return Conversion(tuple(docs), tuple(notes))
