"""The lab's L7 part (``vipcast lab up --gateway``): Envoy on every node, fed by its agent, in
front of the lab's backends as pods.

The pods are the lab's backend addresses (``10.244.<i>.10`` and ``.11`` on node ``i``, routed
to their node over the LAN); the ``v1`` Service's pods are the ``.10`` ones, ``v2``'s the
``.11`` ones. One Gateway ``default/web`` (class ``vipcast``) takes its address from the
``gateway`` pool (``vipcast.io/address-pool``), announced by BGP from every node whose Envoy
serves. Routes:

* ``app.lab``: ``v1`` 80 %, ``v2`` 20 % (a weighted split);
* ``api.lab``: path ``/v1`` -> ``v1``, ``/v2`` -> ``v2``, anything else -> ``v1``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from vipcast.lab.netns import Netns

GW_API = "gateway.networking.k8s.io/v1"
GATEWAY_POOL = "192.0.2.64/28"
#: the allocator's choice for default/web in the gateway pool (its first address)
GATEWAY_VIP = "192.0.2.64"
ENVOY_ADMIN_PORT = 19000
SPLIT_HOST = "app.lab"
PATH_HOST = "api.lab"
WEIGHTS = {"v1": 80, "v2": 20}
Doc = dict[str, Any]


def pod_version(pod_ip: str) -> str:
    """``v1`` or ``v2``: which Service a lab pod address belongs to."""
    return "v1" if pod_ip.endswith(".10") else "v2"


def _service(name: str, pods: Sequence[tuple[str, str]]) -> list[Doc]:
    """A ClusterIP Service (the gateway's backend, no VIP of its own) and its EndpointSlice:
    ``pods`` is (pod address, node)."""
    return [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": name, "namespace": "default"},
         "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}],
                  "selector": {"app": name}}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": f"{name}-1", "namespace": "default",
                      "labels": {"kubernetes.io/service-name": name}},
         "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
         "endpoints": [{"addresses": [ip], "nodeName": node,
                        "conditions": {"ready": True, "serving": True, "terminating": False}}
                       for ip, node in pods]},
    ]


def _route(name: str, host: str, rules: list[Doc]) -> Doc:
    return {"apiVersion": GW_API, "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"parentRefs": [{"name": "web"}], "hostnames": [host], "rules": rules}}


def _ref(name: str, weight: int | None = None) -> Doc:
    ref: Doc = {"name": name, "port": 80}
    if weight is not None:
        ref["weight"] = weight
    return ref


def gateway_objects() -> list[Doc]:
    """The gateway file: the class, Gateway ``default/web`` and its routes."""
    return [
        {"apiVersion": GW_API, "kind": "GatewayClass", "metadata": {"name": "vipcast"},
         "spec": {"controllerName": "vipcast.io/gateway"}},
        {"apiVersion": GW_API, "kind": "Gateway",
         "metadata": {"name": "web", "namespace": "default",
                      "annotations": {"vipcast.io/address-pool": "gateway"}},
         "spec": {"gatewayClassName": "vipcast",
                  "listeners": [{"name": "http", "port": 80, "protocol": "HTTP",
                                 "allowedRoutes": {"namespaces": {"from": "Same"}}}]}},
        _route("split", SPLIT_HOST, [
            {"backendRefs": [_ref("v1", WEIGHTS["v1"]), _ref("v2", WEIGHTS["v2"])]}]),
        _route("paths", PATH_HOST, [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/v2"}}],
             "backendRefs": [_ref("v2")]},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/v1"}}],
             "backendRefs": [_ref("v1")]},
            {"backendRefs": [_ref("v1")]},
        ]),
    ]


def pod_objects(nodes: int, backend_ips: Callable[[int], list[tuple[str, str]]],
                pods: Mapping[str, Sequence[int]] | None = None) -> list[Doc]:
    """The pods file: the v1/v2 Services with their EndpointSlices. ``pods``: per Service,
    the nodes whose pod is ready (default: every node); scaling rewrites this file alone."""
    every = range(1, nodes + 1)
    on = pods or {"v1": every, "v2": every}
    docs: list[Doc] = []
    for k, name in enumerate(("v1", "v2")):
        docs += _service(name, [(backend_ips(i)[k][0], f"n{i}") for i in on.get(name, ())])
    return docs


def gateway_pool() -> Doc:
    """The pool Gateways take their addresses from (only on request: Services keep ``lab``)."""
    return {"apiVersion": "vipcast.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "gateway"},
            "spec": {"addresses": [GATEWAY_POOL], "autoAssign": False}}


def agent_gateway_args(workdir: str, node: str) -> list[str]:
    """The agent's options that run Envoy on the node."""
    return ["--gateway-workdir", f"{workdir}/envoy-{node}",
            "--gateway-admin-port", str(ENVOY_ADMIN_PORT)]


def gateway_state(node: Netns, status_port: int) -> dict[str, Any]:
    """The ``gateway`` section of the node agent's /status ({} when it does not answer)."""
    out = node.run(["curl", "-sf", "--max-time", "2", f"http://127.0.0.1:{status_port}/status"],
                   check=False)
    if out.returncode != 0:
        return {}
    try:
        doc: dict[str, Any] = json.loads(out.stdout).get("gateway") or {}
    except ValueError:
        return {}
    return doc
