"""The Kubernetes speaker's path with memory: API objects (as the reflectors keep them) through
SpecBuilder and StatusNodePlanner, against build_spec and the whole status plan, on random
watch events; one Service or EndpointSlice event validates and plans that Service alone."""

from __future__ import annotations

import random

from tests.foundation.test_incremental import BASE

from random_slices import random_slice
from vipcast.core.allocation import committed_assignments
from vipcast.core.incremental import StatusNodePlanner
from vipcast.core.plan import plan_node
from vipcast.sources.kube.snapshot import SpecBuilder, build_spec
from vipcast.spec.documents import JSON


def service(name: str, rng: random.Random) -> JSON:
    """A Service as the API serves it: addresses in its status (sometimes shared, sometimes
    outside every pool, sometimes another class's)."""
    pool = rng.choice(["198.18.0", "198.18.1", "198.18.2", "203.0.113"])
    ips = [f"{pool}.{rng.randrange(1, 200)}"]
    roll = rng.random()
    if roll < 0.05:
        ips = ["198.18.0.250"]  # one address shared by several Services
    spec: JSON = {"type": "LoadBalancer",
                  "ports": [{"port": rng.choice([80, 443]), "targetPort": 8080}]}
    if roll > 0.95:
        spec["loadBalancerClass"] = "example.com/other"
    if rng.random() < 0.2:
        spec["externalTrafficPolicy"] = "Local"
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "d", "resourceVersion": str(rng.random())},
            "spec": spec,
            "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}}


def endpoints(name: str, rng: random.Random) -> JSON:
    nodes = rng.sample(["n0", "n1", "n2", "n3"], rng.randrange(0, 3))
    return random_slice(name, nodes, rng)


def by_kind(stores: dict[str, dict[str, JSON]]) -> dict[str, list[JSON]]:
    return {kind: list(store.values()) for kind, store in stores.items()}


def test_one_event_validates_and_plans_one_service() -> None:
    rng = random.Random(5)
    stores: dict[str, dict[str, JSON]] = {"Service": {}, "EndpointSlice": {}}
    for doc in BASE:
        stores.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    for i in range(40):
        name = f"s{i:02d}"
        stores["Service"][name] = service(name, rng)
        stores["EndpointSlice"][name] = endpoints(name, rng)
    builder = SpecBuilder()
    planner = StatusNodePlanner()
    first = builder(by_kind(stores))
    assert first.spec is not None
    planner(first.spec, "n1")
    # a Service of its own address, changed by one watch event (a new mapping, as the
    # reflector stores it): one object validated, one Service planned
    name = next(k for k, v in stores["Service"].items()
                if v["status"]["loadBalancer"]["ingress"][0]["ip"] != "198.18.0.250"
                and "loadBalancerClass" not in v["spec"])
    changed = dict(stores["Service"][name])
    changed["spec"] = {**changed["spec"], "ports": [{"port": 8443, "targetPort": 8080}]}
    stores["Service"][name] = changed
    outcome = builder(by_kind(stores))
    assert builder.validated == 1
    assert outcome.spec is not None
    before = planner.incremental
    got = planner(outcome.spec, "n1")
    assert planner.incremental == before + 1
    assert planner.last_changed is not None and set(planner.last_changed) == {f"d/{name}"}
    assert got == plan_node(outcome.spec, committed_assignments(outcome.spec), "n1")
    # an EndpointSlice event alike
    stores["EndpointSlice"][name] = endpoints(name, rng)
    outcome = builder(by_kind(stores))
    assert builder.validated == 1 and outcome.spec is not None
    got = planner(outcome.spec, "n1")
    assert planner.incremental == before + 2
    assert got == plan_node(outcome.spec, committed_assignments(outcome.spec), "n1")


def test_status_plans_with_memory_equal_whole_plans() -> None:
    rng = random.Random(17)
    taken = 0
    for trial in range(8):
        stores: dict[str, dict[str, JSON]] = {"Service": {}, "EndpointSlice": {}}
        for doc in BASE:
            stores.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
        serial = 0
        for _ in range(30):
            name = f"s{serial}"
            serial += 1
            stores["Service"][name] = service(name, rng)
            stores["EndpointSlice"][name] = endpoints(name, rng)
        builder = SpecBuilder()
        lbc = "example.com/other" if trial % 4 == 3 else None
        planner = StatusNodePlanner(lbc)
        node = rng.choice(["n0", "n1", "n2"])
        for _step in range(15):
            for _ in range(rng.randrange(1, 3)):  # one watch event each
                action = rng.random()
                names = sorted(stores["Service"])
                if action < 0.3 or not names:
                    name = f"s{serial}"
                    serial += 1
                    stores["Service"][name] = service(name, rng)
                    stores["EndpointSlice"][name] = endpoints(name, rng)
                elif action < 0.5:
                    name = rng.choice(names)
                    del stores["Service"][name]
                elif action < 0.75:
                    name = rng.choice(names)
                    stores["Service"][name] = service(name, rng)
                else:
                    name = rng.choice(names)
                    stores["EndpointSlice"][name] = endpoints(name, rng)
            objects = by_kind(stores)
            outcome = builder(objects)
            reference = build_spec(objects)
            assert outcome.spec == reference.spec
            assert outcome.issues == reference.issues
            if outcome.spec is None:
                continue
            before = planner.incremental
            got = planner(outcome.spec, node)
            assert got == plan_node(outcome.spec, committed_assignments(outcome.spec, lbc), node)
            taken += planner.incremental - before
    assert taken >= 40, taken  # the shortcut was really exercised
