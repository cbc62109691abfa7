"""CustomResourceDefinitions of vipcast's kinds, generated from the spec models.

One source of truth: the pydantic models in :mod:`vipcast.spec.objects` give the JSON schema;
this module turns it into a *structural* OpenAPI v3 schema the API server accepts (``$ref``
inlined, ``anyOf [X, null]`` narrowed to X, Go-style durations as int-or-string, unknown
fields pruned), adds length/item bounds (so CEL rules have a bounded cost), the cross-field
rules of the models as CEL, printer columns and a status subresource.
``deploy/crds/*.yaml`` is this module's output (``vipcast kube crds --out deploy/crds``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel

from vipcast.spec.cni import CNISpeaker
from vipcast.spec.documents import JSON
from vipcast.spec.objects import (
    API_GROUP,
    API_VERSION,
    BFDProfile,
    BGPAdvertisement,
    BGPPeer,
    Community,
    IPAddressPool,
    L2Advertisement,
    parse_duration,
)
from vipcast.spec.providers import LoadBalancerProvider

VERSION = API_VERSION.split("/", 1)[1]
MAX_ITEMS = 256
MAX_STRING = 1024


@dataclass(frozen=True)
class KindInfo:
    model: type[BaseModel]
    plural: str
    short_names: tuple[str, ...]
    columns: tuple[tuple[str, str, str], ...]  # (name, type, jsonPath)
    rules: tuple[tuple[str, str, str], ...] = ()  # (path under spec or "", rule, message)


KINDS: tuple[KindInfo, ...] = (
    KindInfo(
        IPAddressPool, "ipaddresspools", ("vcpool",),
        (("Addresses", "string", ".spec.addresses"),
         ("Auto Assign", "boolean", ".spec.autoAssign"),
         ("Priority", "integer", ".spec.serviceAllocation.priority")),
    ),
    KindInfo(
        BGPPeer, "bgppeers", ("vcpeer",),
        (("Address", "string", ".spec.peerAddress"),
         ("Peer ASN", "integer", ".spec.peerASN"),
         ("My ASN", "integer", ".spec.myASN"),
         ("BFD", "string", ".spec.bfdProfile")),
        (("", "!(has(self.password) && has(self.passwordSecret))",
          "set password or passwordSecret, not both"),
         ("", "!(has(self.ttlSecurityHops) && has(self.ebgpMultiHop) && self.ebgpMultiHop)",
          "ttlSecurityHops and ebgpMultiHop exclude each other")),
    ),
    KindInfo(
        BGPAdvertisement, "bgpadvertisements", ("vcbgpadv",),
        (("Pools", "string", ".spec.ipAddressPools"),
         ("Peers", "string", ".spec.peers"),
         ("Local Pref", "integer", ".spec.localPref")),
    ),
    KindInfo(
        L2Advertisement, "l2advertisements", ("vcl2adv",),
        (("Pools", "string", ".spec.ipAddressPools"),
         ("Interfaces", "string", ".spec.interfaces")),
    ),
    KindInfo(
        BFDProfile, "bfdprofiles", ("vcbfd",),
        (("RX ms", "integer", ".spec.receiveInterval"),
         ("TX ms", "integer", ".spec.transmitInterval"),
         ("Multiplier", "integer", ".spec.detectMultiplier"),
         ("Passive", "boolean", ".spec.passiveMode")),
    ),
    KindInfo(Community, "communities", ("vccomm",), ()),
    KindInfo(
        CNISpeaker, "cnispeakers", ("vccni",),
        (("CNI", "string", ".spec.cni"),
         ("ASN", "integer", ".spec.asn"),
         ("Router ID", "string", ".spec.routerID"),
         ("Source", "string", ".spec.sourceAddress")),
        (("handOff", "[has(self.calico), has(self.frrK8s), has(self.birdInclude)]"
          ".filter(x, x).size() == 1", "set exactly one of calico, frrK8s, birdInclude"),),
    ),
    KindInfo(
        LoadBalancerProvider, "loadbalancerproviders", ("vclbp",),
        (("Driver", "string", ".spec.driver"),
         ("Endpoint", "string", ".spec.endpoint"),
         ("Class", "string", ".spec.loadBalancerClass")),
        (("options", "!(has(self.proxyProtocol) && self.proxyProtocol && has(self.forwardedFor)"
          " && self.forwardedFor)", "proxyProtocol and forwardedFor exclude each other"),
         ("options", "!(has(self.vipSubnetId) && has(self.vipNetworkId))",
          "set vipSubnetId or vipNetworkId, not both"),
         ("", "self.driver == 'haproxy' ? self.endpoint.startsWith('file://') : "
          "(self.endpoint.startsWith('http://') || self.endpoint.startsWith('https://'))",
          "haproxy takes a file:// state directory, octavia and as3 an http(s):// URL")),
    ),
)

_KEEP = {
    "type", "properties", "items", "required", "enum", "pattern", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems",
    "default", "description", "format", "additionalProperties",
}


def _duration_fields(model: type[BaseModel], seen: set[type[BaseModel]],
                     out: dict[str, set[str]]) -> None:
    """Model title -> wire names of its fields parsed as Go-style durations."""
    if model in seen:
        return
    seen.add(model)
    for name, info in model.model_fields.items():
        wire = info.alias or name
        if _is_duration(info.metadata) or _is_duration_type(info.annotation):
            out.setdefault(model.__name__, set()).add(wire)
        for sub in _submodels(info.annotation):
            _duration_fields(sub, seen, out)


def _is_duration(metadata: Any) -> bool:
    return any(getattr(m, "func", None) is parse_duration for m in metadata or ())


def _is_duration_type(annotation: Any) -> bool:
    if _is_duration(getattr(annotation, "__metadata__", ())):
        return True
    return any(_is_duration_type(a) for a in getattr(annotation, "__args__", ()) or ())


def _submodels(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in getattr(annotation, "__args__", ()) or ():
        found.extend(_submodels(arg))
    return found


class _Structural:
    def __init__(self, schema: JSON, durations: dict[str, set[str]]) -> None:
        self.defs: dict[str, JSON] = schema.get("$defs", {})
        self.durations = durations

    def convert(self, node: JSON, depth: int = 0) -> JSON:
        if depth > 30:
            return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        if "$ref" in node:
            target = self.defs[node["$ref"].rsplit("/", 1)[-1]]
            merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            return self.convert(merged, depth + 1)
        if "anyOf" in node:
            options = [o for o in node["anyOf"] if o.get("type") != "null"]
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            if len(options) == 1:
                return self.convert({**options[0], **rest}, depth + 1)
            return {"x-kubernetes-int-or-string": True,
                    **({"description": rest["description"]} if "description" in rest else {})}
        out: JSON = {}
        for key, value in node.items():
            if key not in _KEEP:
                continue
            if key == "properties":
                durations = self.durations.get(node.get("title", ""), set())
                props = {}
                for name, sub in value.items():
                    props[name] = (self._duration(sub) if name in durations
                                   else self.convert(sub, depth + 1))
                out["properties"] = props
            elif key == "items":
                out["items"] = self.convert(value, depth + 1)
            elif key == "additionalProperties":
                if isinstance(value, dict):
                    out["additionalProperties"] = self.convert(value, depth + 1)
            elif key == "default":
                if value is not None:
                    out["default"] = value
            else:
                out[key] = value
        if "const" in node:
            out["enum"] = [node["const"]]
        kind = out.get("type")
        if kind == "array":
            out.setdefault("maxItems", MAX_ITEMS)
        elif kind == "string" and "enum" not in out:
            out.setdefault("maxLength", MAX_STRING)
        elif kind == "object" and "properties" not in out and "additionalProperties" not in out:
            out["x-kubernetes-preserve-unknown-fields"] = True
        if kind == "object" and isinstance(out.get("additionalProperties"), dict):
            out["maxProperties"] = MAX_ITEMS
        return out

    @staticmethod
    def _duration(sub: JSON) -> JSON:
        out: JSON = {
            "x-kubernetes-int-or-string": True,
            "description": "seconds, or a Go-style duration such as '90s', '1m30s', '300ms'",
        }
        default = sub.get("default")
        if isinstance(default, int | float) and float(default).is_integer():
            out["default"] = int(default)
        return out


def crd_for(info: KindInfo) -> JSON:
    """The CRD object of one kind."""
    schema = info.model.model_json_schema(by_alias=True, mode="validation")
    durations: dict[str, set[str]] = {}
    _duration_fields(info.model, set(), durations)
    conv = _Structural(schema, durations)
    spec_schema = conv.convert(schema["properties"]["spec"])
    for path, rule, message in info.rules:
        target = spec_schema if not path else spec_schema["properties"][path]
        target.setdefault("x-kubernetes-validations", []).append(
            {"rule": rule, "message": message})
    root_required = ["spec"] if "spec" in schema.get("required", []) else []
    root: JSON = {
        "type": "object",
        "description": (info.model.__doc__ or info.model.__name__).strip().splitlines()[0],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
        **({"required": root_required} if root_required else {}),
    }
    kind = info.model.__name__
    columns = [{"name": n, "type": t, "jsonPath": p} for n, t, p in info.columns]
    columns.append({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"})
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{info.plural}.{API_GROUP}",
            "labels": {"app.kubernetes.io/name": "vipcast",
                       "app.kubernetes.io/part-of": "vipcast"},
        },
        "spec": {
            "group": API_GROUP,
            "scope": "Cluster",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": info.plural,
                "singular": kind.lower(),
                "shortNames": list(info.short_names),
                "categories": ["vipcast"],
            },
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": root},
                "subresources": {"status": {}},
                "additionalPrinterColumns": columns,
            }],
        },
    }


def announcement_crd() -> JSON:
    """The CRD of ``NodeAnnouncement`` (a speaker's report), from its pydantic model: spec
    and status both structural; the lists are bounded by ``MAX_SERVICES``, not ``MAX_ITEMS``."""
    from vipcast.sources.kube import announcements as ann

    schema = ann.NodeAnnouncement.model_json_schema(by_alias=True, mode="validation")
    conv = _Structural(schema, {})
    status = conv.convert(schema["properties"]["status"])
    status.pop("default", None)
    for name in ("announced", "withheld"):
        status["properties"][name]["maxItems"] = ann.MAX_SERVICES
    info = KindInfo(ann.NodeAnnouncement, ann.PLURAL, ("vcann",),
                    (("Node", "string", ".spec.nodeName"),))
    crd = crd_for(info)
    version = crd["spec"]["versions"][0]
    root = version["schema"]["openAPIV3Schema"]
    root["properties"]["status"] = status
    root["description"] = ("What one node's speaker announces, written by that speaker "
                           "(read by the controller for the Services' Announced condition)")
    crd["spec"]["names"]["categories"] = ["vipcast"]
    return crd


def all_crds() -> list[JSON]:
    return [*(crd_for(info) for info in KINDS), announcement_crd()]


def render_yaml(crd: JSON) -> str:
    header = "# Generated from vipcast.spec by `vipcast kube crds`; do not edit by hand.\n"
    plain = json.loads(json.dumps(crd))  # no shared sub-objects: no YAML anchors
    return header + yaml.safe_dump(plain, sort_keys=False, width=100)


def rendered_files() -> dict[str, str]:
    """File name -> YAML text of every CRD (what ``deploy/crds/`` holds)."""
    return {f"{crd['metadata']['name']}.yaml": render_yaml(crd) for crd in all_crds()}
