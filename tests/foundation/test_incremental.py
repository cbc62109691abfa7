"""The incremental assembly and node planner against the whole computation, on random
changes."""

from __future__ import annotations

import random
from typing import Any

import pytest

from random_slices import random_slice
from vipcast.core.incremental import NodePlanner
from vipcast.core.pipeline import NodeIdentity, Snapshot, snapshot
from vipcast.core.plan import plan_for_spec
from vipcast.spec import Spec, SpecError, validate_documents
from vipcast.spec.load import Assembler, Validated, assemble

V = "vipcast.io/v1beta1"
BASE: list[dict[str, Any]] = [
    {"apiVersion": V, "kind": "IPAddressPool", "metadata": {"name": "bgp"},
     "spec": {"addresses": ["198.18.0.0/24", "2001:db8::/120"]}},
    {"apiVersion": V, "kind": "IPAddressPool", "metadata": {"name": "lan"},
     "spec": {"addresses": ["198.18.1.0/24"]}},
    {"apiVersion": V, "kind": "IPAddressPool", "metadata": {"name": "agg"},
     "spec": {"addresses": ["198.18.2.0/24"]}},
    {"apiVersion": V, "kind": "BGPPeer", "metadata": {"name": "r"},
     "spec": {"myASN": 64512, "peerASN": 64500, "peerAddress": "10.0.0.1"}},
    {"apiVersion": V, "kind": "BGPAdvertisement", "metadata": {"name": "b"},
     "spec": {"ipAddressPools": ["bgp"], "communities": ["65000:1"]}},
    {"apiVersion": V, "kind": "BGPAdvertisement", "metadata": {"name": "a"},
     "spec": {"ipAddressPools": ["agg"], "aggregationLength": 30}},
    {"apiVersion": V, "kind": "L2Advertisement", "metadata": {"name": "l"},
     "spec": {"ipAddressPools": ["lan"]}},
    *({"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"n{i}"}} for i in range(4)),
]


def service(name: str, rng: random.Random, fresh: float) -> list[dict[str, Any]]:
    """A Service with pinned addresses (sometimes shared, sometimes fresh) and its slice."""
    meta: dict[str, Any] = {"name": name, "namespace": "d", "annotations": {}}
    if rng.random() < 0.3:
        meta["annotations"]["vipcast.io/health-check"] = rng.choice(
            ["http:/hz", "tcp,rise=1", "none", "bogus"])
    pool = rng.choice(["198.18.0", "198.18.1", "198.18.2"])
    roll = rng.random()
    if roll >= fresh:
        meta["annotations"]["vipcast.io/loadBalancerIPs"] = f"{pool}.{rng.randrange(1, 200)}"
    if roll > 0.98:
        meta["annotations"]["vipcast.io/allow-shared-ip"] = "k"
    spec: dict[str, Any] = {"type": "LoadBalancer",
                            "ports": [{"port": rng.choice([80, 443]), "targetPort": 8080}]}
    if rng.random() < 0.2:
        spec["externalTrafficPolicy"] = "Local"
    nodes = rng.sample(["n0", "n1", "n2", "n3"], rng.randrange(0, 3))
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec},
        random_slice(name, nodes, rng),
    ]


def test_incremental_plans_equal_whole_plans() -> None:
    rng = random.Random(11)
    taken = 0
    for trial in range(12):
        fresh = 0.15 if trial % 3 == 0 else 0.0  # a Service without pinned addresses or none
        base = validate_documents(("base.yaml", d) for d in BASE)
        # one validated part per file, as the file source keeps them
        files: dict[str, Validated] = {}
        for i in range(30):
            docs = service(f"s{i}", rng, fresh)
            files[f"s{i}"] = validate_documents((f"s{i}.yaml", d) for d in docs)
        planner = NodePlanner()
        assembler = Assembler()
        node = rng.choice(["n0", "n1", "n2"])
        identity = NodeIdentity(node)
        last: Snapshot | None = None
        serial = 30
        for _step in range(15):
            for _ in range(rng.randrange(1, 4)):
                action = rng.random()
                if action < 0.4 or not files:
                    name = f"s{serial}"
                    serial += 1
                    files[name] = validate_documents(
                        (f"{name}.yaml", d) for d in service(name, rng, fresh))
                elif action < 0.7:
                    files.pop(rng.choice(sorted(files)))
                else:
                    name = rng.choice(sorted(files))
                    files[name] = validate_documents(
                        (f"{name}.yaml", d) for d in service(name, rng, fresh))
            parts = [base, *(files[k] for k in sorted(files))]
            try:
                spec: Spec = assemble(parts)
            except SpecError:  # two Services asking for one address: refused by the checks
                with pytest.raises(SpecError):
                    assembler(parts)
                continue
            assembled = assembler(parts)
            assert assembled == spec and assembled.origins == spec.origins
            spec = assembled  # as the file source hands it on
            before = planner.incremental
            got = planner(spec, node)
            assert got == plan_for_spec(spec, node)
            taken += planner.incremental - before
            # the snapshot made from the previous one and the change equals a whole one
            snap = snapshot(spec, got, identity, last, planner.last_changed)
            whole = snapshot(spec, got, identity)
            assert snap.plan_base == whole.plan_base
            assert snap.health_configs == whole.health_configs
            assert sorted(snap.health_problems) == sorted(whole.health_problems)
            last = snap
    assert taken >= 60, taken  # the shortcut was really exercised
