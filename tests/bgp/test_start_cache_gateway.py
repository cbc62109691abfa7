"""The start cache (``app/start_cache.py``) with Gateways and Ingresses in the files: a cached
start plans what a start without it plans (the Gateways' VIPs, the proxy model Envoy is fed
from, with the addresses allocated to them); a reload after it is as incremental as in the agent
that never stopped (an unchanged Gateway keeps its stand-in Service object); a changed Gateway
file is a miss, and after a cached start a changed Gateway is planned like any change."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from test_start_cache import agent, config, plans_after_a_crash, same, service, write, written
from tests.gateway.gwobjects import backend, endpoint_slice, gateway, gateway_class, ready, route
from tests.gateway.gwobjects import service as plain_service

from vipcast.app.agent import Agent
from vipcast.core.gateway.address import INGRESS_GATEWAY_KEY, gateway_service_key

Doc = dict[str, Any]


def gateway_docs(port: int = 80, pinned: str = "198.18.0.200", pool: str | None = None
                 ) -> list[Doc]:
    """Two Gateways of vipcast's class (one asks for an address, one takes a pool's unless
    ``pool`` names one), a route to a Service with a ready endpoint, and a Gateway of another
    class (not ours)."""
    http = [{"name": "http", "port": port, "protocol": "HTTP"}]
    return [
        gateway_class(),
        gateway_class("other", controller="example.com/other"),
        gateway("web", listeners=http, addresses=(pinned,)),
        gateway("pool", listeners=http, addresses=(pool,) if pool else ()),
        gateway("theirs", listeners=http, addresses=(), cls="other"),
        route("to-app", rules=[{"backendRefs": [backend("app", 80)]}],
              parents=({"name": "web"}, {"name": "pool"})),
        plain_service("app"),
        endpoint_slice("app", endpoints=[ready("10.244.1.10")]),
    ]


def ingress_docs(host: str = "app.example", pinned: str | None = None) -> list[Doc]:
    """vipcast's IngressClass (the default; asking for ``pinned``, else a pool's address) and
    an Ingress to the same Service."""
    notes = {"ingressclass.kubernetes.io/is-default-class": "true"}
    if pinned:
        notes["vipcast.io/loadBalancerIPs"] = pinned
    return [
        {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
         "metadata": {"name": "vipcast", "annotations": notes},
         "spec": {"controller": "vipcast.io/ingress-controller"}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
         "metadata": {"name": "site", "namespace": "default"},
         "spec": {"rules": [{"host": host, "http": {"paths": [{
             "path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": "app", "port": {"number": 80}}}}]}}]}},
    ]


#: every address asked for (the incremental planner allocates a change alone only then)
PINNED = {"pool": "198.18.0.210", "pinned": "198.18.0.220"}


def gateway_config(root: Path, seed: int, ingresses: bool = True, pinned: bool = False) -> Path:
    folder = config(root, seed, services=20, pinned=pinned)
    write(folder / "gateways.yaml", gateway_docs(pool=PINNED["pool"] if pinned else None))
    if ingresses:
        write(folder / "ingresses.yaml", ingress_docs(pinned=PINNED["pinned"] if pinned else None))
    return folder


STAND_INS = (gateway_service_key("default/web"), gateway_service_key("default/pool"))


def test_a_cached_start_with_gateways_plans_what_a_start_without_it_plans(
        tmp_path: Path) -> None:
    folder = gateway_config(tmp_path, 21)
    fresh = agent(folder, None).load()
    # the config does exercise the Gateways: their VIPs (one asked for, one from the pool,
    # the Ingresses' one) are routes of the plan and listeners of the proxy model
    assert fresh.plan.proxy is not None and fresh.snapshot is not None
    stand_ins = {*STAND_INS, gateway_service_key(INGRESS_GATEWAY_KEY)}
    assert stand_ins <= fresh.snapshot.proxied
    announced = {s for r in fresh.plan.bgp for s in r.services}
    assert stand_ins <= announced
    assert "198.18.0.200" in {lis.address for lis in fresh.plan.proxy.listeners}
    cache = tmp_path / "cache"
    same(written(folder, cache), fresh.plan)
    restarted = agent(folder, cache)
    desired = restarted.load()
    assert restarted.start_cache is not None and restarted.start_cache.missed is None
    assert restarted.files.parsed == 0
    same(desired.plan, fresh.plan)
    assert desired.snapshot is not None
    assert desired.snapshot.proxied == fresh.snapshot.proxied


def extra_of(a: Agent) -> object:
    """The Service ``d/extra`` of the agent's last load."""
    last = getattr(a._planner, "_last", None)
    return last.services["d/extra"] if last is not None else None


def _steps(restarted: Agent, control: Agent, change: Any) -> None:
    """``change()`` the files, reload both agents: the same plan, the same way (incremental or
    whole, and the same Services planned again)."""

    def counts(a: Agent) -> tuple[int, int]:
        return getattr(a._planner, "incremental", -1), getattr(a._planner, "whole", -1)

    before = counts(restarted), counts(control)
    change()
    again = restarted.load()
    expected = control.load()
    same(again.plan, expected.plan)
    after = counts(restarted), counts(control)
    steps = [tuple(x - y for x, y in zip(a, b, strict=True))
             for a, b in zip(after, before, strict=True)]
    assert steps[0] == steps[1]
    assert (getattr(restarted._planner, "last_changed", None)
            == getattr(control._planner, "last_changed", None))


@pytest.mark.parametrize("pinned", [True, False])
@pytest.mark.parametrize("seed", range(2))
def test_a_reload_after_a_cached_start_with_gateways_is_the_running_agents(
        tmp_path: Path, seed: int, pinned: bool) -> None:
    folder = gateway_config(tmp_path, 30 + seed, pinned=pinned)
    cache = tmp_path / "cache"
    written(folder, cache)
    restarted = agent(folder, cache)
    restarted.load()
    assert restarted.start_cache is not None and restarted.start_cache.missed is None
    control = agent(folder, None)
    control.load()
    # a Service added: only it is planned again (the Gateways' stand-ins are the same objects
    # as before the restart, so the planner sees them unchanged)
    extra = service("extra", random.Random(seed), pinned=True)
    extra[0]["metadata"]["annotations"]["vipcast.io/loadBalancerIPs"] = "198.18.0.250"
    _steps(restarted, control, lambda: write(folder / "extra.yaml", extra))
    if pinned:  # nothing else planned: not the Gateways' stand-ins either
        assert getattr(restarted._planner, "last_changed", None) == {"d/extra": extra_of(
            restarted)}
    # a Gateway changed (another listener port, another address): planned like any change
    pool = PINNED["pool"] if pinned else None
    _steps(restarted, control, lambda: write(folder / "gateways.yaml", gateway_docs(
        port=8080, pinned="198.18.0.201", pool=pool)))
    # an Ingress changed
    _steps(restarted, control, lambda: write(folder / "ingresses.yaml", ingress_docs(
        host="other.example", pinned=PINNED["pinned"] if pinned else None)))
    same(restarted.load().plan, agent(folder, None).load().plan)


def test_a_changed_gateway_file_is_a_miss(tmp_path: Path) -> None:
    folder = gateway_config(tmp_path, 40)
    cache = tmp_path / "cache"
    written(folder, cache)
    write(folder / "gateways.yaml", gateway_docs(pinned="198.18.0.202"))
    restarted = agent(folder, cache)
    desired = restarted.load()
    assert restarted.start_cache is not None
    assert restarted.start_cache.missed == "made from other object files (or another node)"
    fresh = agent(folder, None).load()
    same(desired.plan, fresh.plan)
    assert desired.plan.proxy is not None
    assert "198.18.0.202" in {lis.address for lis in desired.plan.proxy.listeners}


def test_a_restart_after_a_crash_with_gateways(tmp_path: Path) -> None:
    """The cached snapshot is made again for the R-bit: with the Gateways' addresses."""
    folder = gateway_config(tmp_path, 41, ingresses=False)
    plan, expected = plans_after_a_crash(folder, tmp_path / "cache")
    assert expected.proxy is not None and any(p.session.restarting for p in expected.peers)
    same(plan, expected)
