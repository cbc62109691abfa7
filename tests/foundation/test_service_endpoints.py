"""The plan context's ready endpoints made per Service when first asked
(:class:`vipcast.core.plan_context.ServiceEndpoints`): ``any_ready`` answers what
``bool(ready_endpoints(...))`` answers, for every shape of slice that decides it (FQDN slices,
not-ready and terminating endpoints, several slices), and ``get``
is the eager computation's value."""

from __future__ import annotations

import itertools
from typing import Any

from vipcast.core.endpoints import any_ready, ready_endpoints
from vipcast.core.plan_context import ServiceEndpoints
from vipcast.spec import EndpointSlice

ENDPOINTS: list[dict[str, Any]] = [
    {"addresses": ["10.0.0.1"], "nodeName": "n1"},
    {"addresses": ["10.0.0.2"], "conditions": {"ready": False}},
    {"addresses": ["10.0.0.3"], "conditions": {"ready": True, "terminating": True}},
    {"addresses": ["10.0.0.4", "10.0.0.5"], "conditions": {"serving": True}},
]


def a_slice(address_type: str, endpoints: list[dict[str, Any]], n: int) -> EndpointSlice:
    return EndpointSlice.model_validate({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"web-{n}", "namespace": "d",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": address_type, "ports": [{"port": 8080}], "endpoints": endpoints})


def test_any_ready_is_whether_there_are_ready_endpoints() -> None:
    shapes = [a_slice(kind, list(eps), n)
              for n, (kind, eps) in enumerate(itertools.product(
                  ("IPv4", "FQDN"),
                  (c for r in range(3) for c in itertools.combinations(ENDPOINTS, r))))]
    seen = set()
    for count in (1, 2):
        for slices in itertools.combinations(shapes, count):
            want = bool(ready_endpoints(slices))
            seen.add(want)
            assert any_ready(slices) == want, slices
            lazy = ServiceEndpoints({"d/web": slices})
            assert lazy.any_ready("d/web") == want
            assert lazy.get("d/web") == ready_endpoints(slices)
            assert lazy.any_ready("d/web") == want  # from the made tuple now
    assert seen == {True, False}
    assert ServiceEndpoints({}).get("d/none") == ()
    assert ServiceEndpoints({}).get("d/none", ("x",)) == ("x",)  # type: ignore[arg-type]
    assert not ServiceEndpoints({}).any_ready("d/none")
