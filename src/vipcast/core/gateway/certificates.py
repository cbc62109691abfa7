"""Which Secrets the L7 gateway needs: the certificates named by the listeners of Gateways of
ours (``tls.certificateRefs``) and by Ingresses of class vipcast (``tls[].secretName``), each
only if it may be named (same namespace, or a ReferenceGrant from Gateways of that namespace).

On Kubernetes the controller and the speakers watch exactly these Secrets, one by name, and no
other: an unpermitted reference is reported (RefNotPermitted) without reading the Secret. Pure.
"""

from __future__ import annotations

from vipcast.core.gateway.backends import GATEWAY_GROUP, granted
from vipcast.core.gateway.ingress import ingress_objects
from vipcast.spec.gateway.objects import CONTROLLER_NAME
from vipcast.spec.load import Spec

#: a Secret by (namespace, name)
SecretRef = tuple[str, str]


def certificate_refs(spec: Spec) -> frozenset[SecretRef]:
    """The Secrets the listeners of our Gateways (and our Ingresses) may name and do name."""
    extra = ingress_objects(spec, ())
    classes = (*spec.gateway_classes, *extra.classes)
    ours = {c.name for c in classes if c.spec.controller_name == CONTROLLER_NAME}
    grants = (*spec.reference_grants, *extra.grants)
    out: set[SecretRef] = set()
    for gw in (*spec.gateways, *extra.gateways):
        if gw.spec.gateway_class_name not in ours:
            continue
        for listener in gw.spec.listeners:
            if listener.tls is None:
                continue
            for ref in listener.tls.certificate_refs:
                if ref.group != "" or ref.kind != "Secret":
                    continue
                ns = ref.namespace or gw.namespace
                if granted(grants, from_group=GATEWAY_GROUP, from_kind="Gateway",
                           from_ns=gw.namespace, to_group="", to_kind="Secret", to_ns=ns,
                           to_name=ref.name):
                    out.add((ns, ref.name))
    return frozenset(out)
