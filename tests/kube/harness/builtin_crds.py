"""CRD look-alikes of the built-in kinds, generated from kubernetes-validate's bundled schemas.

The standalone apiextensions-apiserver only serves CRDs. To give clients Services, Nodes,
EndpointSlices, Leases, Events, ... at their real URLs, each built-in kind becomes a CRD:
core/v1 kinds in a stand-in group (:data:`CORE_STANDIN_GROUP`, mapped back to ``/api/v1`` by
the shim), the others in their real group (allowed by the ``api-approved.kubernetes.io``
annotation). The JSON schema is converted to a structural OpenAPI v3 schema: ``$ref`` inlined,
``["T", "null"]`` types narrowed, int-or-string marked, descriptions dropped, list-map keys
given the defaults the built-in defaulter would set.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from vipcast.spec.documents import JSON

CORE_STANDIN_GROUP = "core.kube.test"
SCHEMA_VERSION = "v1.36.0-local"


@dataclass(frozen=True)
class BuiltinKind:
    kind: str
    plural: str
    group: str  # "" = core
    version: str
    namespaced: bool
    schema_file: str
    status: bool = False
    short_names: tuple[str, ...] = ()

    @property
    def served_group(self) -> str:
        return self.group or CORE_STANDIN_GROUP


BUILTIN_KINDS: tuple[BuiltinKind, ...] = (
    BuiltinKind("Service", "services", "", "v1", True, "service-v1.json", True, ("svc",)),
    BuiltinKind("Node", "nodes", "", "v1", False, "node-v1.json", True, ("no",)),
    # served as "xnamespaces": the generic server reads ".../namespaces/<name>" as a namespace
    # prefix (single-Namespace paths would 404); the shim maps the core path to it
    BuiltinKind("Namespace", "xnamespaces", "", "v1", False, "namespace-v1.json", True, ("ns",)),
    BuiltinKind("Event", "events", "", "v1", True, "event-v1.json", False, ("ev",)),
    BuiltinKind("Secret", "secrets", "", "v1", True, "secret-v1.json"),
    BuiltinKind("ConfigMap", "configmaps", "", "v1", True, "configmap-v1.json", False, ("cm",)),
    BuiltinKind("Pod", "pods", "", "v1", True, "pod-v1.json", True, ("po",)),
    BuiltinKind(
        "EndpointSlice", "endpointslices", "discovery.k8s.io", "v1", True,
        "endpointslice-discovery-v1.json",
    ),
    # the L7 gateway reads Ingresses of class vipcast (issue 12)
    BuiltinKind("Ingress", "ingresses", "networking.k8s.io", "v1", True,
                "ingress-networking-v1.json", True, ("ing",)),
    BuiltinKind("IngressClass", "ingressclasses", "networking.k8s.io", "v1", False,
                "ingressclass-networking-v1.json"),
    BuiltinKind("Lease", "leases", "coordination.k8s.io", "v1", True,
                "lease-coordination-v1.json"),
    BuiltinKind("Event", "events", "events.k8s.io", "v1", True, "event-events-v1.json"),
    BuiltinKind(
        "ValidatingWebhookConfiguration", "validatingwebhookconfigurations",
        "admissionregistration.k8s.io", "v1", False,
        "validatingwebhookconfiguration-admissionregistration-v1.json",
    ),
)

# Defaults the built-in defaulters set and that list-map keys or our code rely on.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "io.k8s.api.core.v1.ServicePort": {"protocol": "TCP"},
    "io.k8s.api.core.v1.ServiceSpec": {"type": "ClusterIP", "sessionAffinity": "None"},
    "io.k8s.api.core.v1.ContainerPort": {"protocol": "TCP"},
    "io.k8s.api.discovery.v1.EndpointPort": {"protocol": "TCP"},
    "io.k8s.api.admissionregistration.v1.ValidatingWebhook": {
        "namespaceSelector": {},
        "objectSelector": {},
        "failurePolicy": "Fail",
        "matchPolicy": "Equivalent",
        "timeoutSeconds": 10,
    },
    "io.k8s.api.admissionregistration.v1.RuleWithOperations": {"scope": "*"},
}
_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_INT_OR_STRING = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
    "io.k8s.apimachinery.pkg.api.resource.Quantity",
}
_DROP_KEYS = {
    "description", "$schema", "$id", "x-kubernetes-group-version-kind", "enum",
    "x-kubernetes-patch-strategy", "x-kubernetes-patch-merge-key", "x-kubernetes-unions",
    "additionalItems",
}


def _schema_root() -> Any:
    return resources.files("kubernetes_validate").joinpath("kubernetes-json-schema", SCHEMA_VERSION)


def _load(name: str) -> JSON:
    data: JSON = json.loads(_schema_root().joinpath(name).read_text())
    return data


class _Converter:
    def __init__(self) -> None:
        self.defs: dict[str, JSON] = _load("_definitions.json")["$defs"]

    def convert(self, node: JSON, ref_name: str | None = None, depth: int = 0) -> JSON:
        if depth > 40:
            return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            if name == _OBJECT_META:
                return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
            if name in _INT_OR_STRING:
                return {"x-kubernetes-int-or-string": True}
            return self.convert(self.defs[name], name, depth + 1)
        out: JSON = {}
        for key, value in node.items():
            if key in _DROP_KEYS:
                continue
            if key == "type":
                types = [t for t in (value if isinstance(value, list) else [value]) if t != "null"]
                if types:
                    out["type"] = types[0]
            elif key == "properties":
                out["properties"] = {k: self.convert(v, None, depth + 1) for k, v in value.items()}
            elif key in ("items", "additionalProperties") and isinstance(value, dict):
                out[key] = self.convert(value, None, depth + 1)
            elif key in ("oneOf", "anyOf", "allOf"):
                return {"x-kubernetes-int-or-string": True}
            else:
                out[key] = value
        if "properties" in out or "additionalProperties" in out:
            out.setdefault("type", "object")
        if out.get("type") == "object" and not out.get("properties") and (
            "additionalProperties" not in out
        ):
            out["x-kubernetes-preserve-unknown-fields"] = True
        defaults = _DEFAULTS.get(ref_name or "", {})
        for field_name, default in defaults.items():
            if field_name in out.get("properties", {}):
                out["properties"][field_name]["default"] = default
        if out.get("type") == "array" and out.get("x-kubernetes-list-type") == "map":
            self._fix_list_map(out)
        return out

    @staticmethod
    def _fix_list_map(out: JSON) -> None:
        items = out.get("items", {})
        required = set(items.get("required", []))
        props = items.get("properties", {})
        for key in out.get("x-kubernetes-list-map-keys", []):
            if key not in required and "default" not in props.get(key, {}):
                out["x-kubernetes-list-type"] = "atomic"
                out.pop("x-kubernetes-list-map-keys", None)
                return


def builtin_crds() -> list[JSON]:
    """Return the CRD objects (``apiextensions.k8s.io/v1``) of every built-in look-alike."""
    conv = _Converter()
    crds: list[JSON] = []
    for bk in BUILTIN_KINDS:
        schema = conv.convert(_load(bk.schema_file))
        props = schema.setdefault("properties", {})
        props["metadata"] = {"type": "object"}
        props["apiVersion"] = {"type": "string"}
        props["kind"] = {"type": "string"}
        root_required = [r for r in schema.get("required", []) if r not in ("metadata",)]
        schema.pop("required", None)
        if root_required:
            schema["required"] = root_required
        version: JSON = {
            "name": bk.version,
            "served": True,
            "storage": True,
            "schema": {"openAPIV3Schema": schema},
        }
        if bk.status and "status" in props:
            version["subresources"] = {"status": {}}
        group = bk.served_group
        crd: JSON = {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{bk.plural}.{group}"},
            "spec": {
                "group": group,
                "scope": "Namespaced" if bk.namespaced else "Cluster",
                "names": {
                    "kind": bk.kind,
                    "plural": bk.plural,
                    "singular": bk.kind.lower(),
                    "listKind": f"{bk.kind}List",
                    **({"shortNames": list(bk.short_names)} if bk.short_names else {}),
                },
                "versions": [version],
            },
        }
        if group.endswith(".k8s.io"):
            crd["metadata"]["annotations"] = {
                "api-approved.kubernetes.io": "unapproved, test stand-in for a built-in kind"
            }
        crds.append(crd)
    return crds
