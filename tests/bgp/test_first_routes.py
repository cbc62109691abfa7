"""A first start without the start cache (issue 11): the first plan's routes and BGP sessions go
to the speaker as soon as the Services are allocated (:mod:`vipcast.core.first_routes`; from
the duties, :func:`vipcast.core.pipeline.first_routes`, where the routes need the whole plan),
before the node's duties, the planner's memory and the rest of the snapshot (health targets,
BFD, L2 and liveness members, the proxy model) are made, which wait until the routes are out.
They are the very route tuple of the whole first plan (the speaker sees no change when it is
published), the planner split in two steps (:meth:`NodePlanner.first`,
:meth:`NodePlanner.settle`) is the planner called once, and at a router the routes arrive before
the whole plan is published. An invalid first config opens no session. And a reload right after
a start is served while the status server is still starting."""

from __future__ import annotations

import asyncio
import logging
import random
from pathlib import Path
from typing import Any

import pytest
from test_start_cache import agent, config, same, service, write
from test_start_cache_gateway import gateway_config
from tests.foundation.test_weights import weighted_spec

from vipcast.app.agent import Agent, AgentOptions
from vipcast.app.start_early import Early
from vipcast.core.allocation import allocate_spec
from vipcast.core.gateway.address import gateway_addresses
from vipcast.core.incremental import NodePlanner
from vipcast.core.pipeline import Local, NodeIdentity, first_routes, plan, snapshot
from vipcast.core.plan import plan_node
from vipcast.sources import yaml_split
from vipcast.sources.early_parse import start_parse


@pytest.mark.parametrize("restarting", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_the_first_routes_are_the_first_plans(tmp_path: Path, seed: int,
                                              restarting: bool) -> None:
    folder = gateway_config(tmp_path, 50 + seed) if seed % 2 else config(tmp_path, 50 + seed)
    source = agent(folder, None)
    source.restarting = restarting
    identity = source.identity()
    spec = source._gateway_services(source.load_spec())
    planner = NodePlanner()
    duties = planner.first(spec, "n1")
    early = first_routes(spec, duties, identity)
    planner.settle()
    snap = snapshot(spec, duties, identity, gateway_addresses=gateway_addresses(
        planner.assignments))
    whole = plan(snap, Local())
    assert early is not None and early[0] is whole.bgp  # the very tuple
    assert early[1] == whole.peers and whole.peers
    assert any(p.session.restarting for p in whole.peers) == restarting
    # and that is the plan a start makes
    started = agent(folder, None)
    started.restarting = restarting
    same(started.load().plan, whole)


def test_weighted_routes_are_made_with_the_whole_snapshot() -> None:
    for weighted_ecmp in (True, False):
        spec = weighted_spec({"n1": 2, "n2": 1}, weighted_ecmp=weighted_ecmp)
        duties = plan_node(spec, allocate_spec(spec).current(), "n1")
        assert duties.bgp
        early = first_routes(spec, duties, NodeIdentity("n1"))
        assert (early is None) == weighted_ecmp


@pytest.mark.parametrize("seed", range(4))
def test_the_first_load_in_two_steps_is_the_load(tmp_path: Path, seed: int) -> None:
    """The agent's first load with the first routes handed on, against one without: the same
    plan, and the next change planned the same way (the planner's memory is the same)."""
    folder = gateway_config(tmp_path, 60 + seed, pinned=seed % 2 == 0)
    handed: list[Early] = []
    split = agent(folder, None)
    split._first_routes = handed.append
    first = split.load()
    split._first_routes = None
    plain = agent(folder, None)
    same(first.plan, plain.load().plan)
    assert len(handed) == 1 and handed[0].bgp is first.plan.bgp
    assert handed[0].peers == first.plan.peers
    planners = [a._planner for a in (split, plain)]
    assert [(getattr(p, "whole", 0), getattr(p, "incremental", 0)) for p in planners] == [
        (1, 0), (1, 0)]
    extra = service("extra", random.Random(seed), pinned=True)
    extra[0]["metadata"]["annotations"]["vipcast.io/loadBalancerIPs"] = "198.18.0.250"
    write(folder / "extra.yaml", extra)
    same(split.load().plan, plain.load().plan)
    assert len({(getattr(p, "whole", 0), getattr(p, "incremental", 0)) for p in planners}) == 1
    changed = [getattr(p, "last_changed", None) for p in planners]
    assert [None if c is None else sorted(c) for c in changed] == [
        None if changed[1] is None else sorted(changed[1])] * 2
    if seed % 2 == 0:  # every address asked for: the change is planned alone in both
        assert changed[0] is not None and sorted(changed[0]) == ["d/extra"]


async def test_a_first_start_announces_before_the_load_ends(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """At a router (a passive vipcast speaker on loopback): a start with nothing cached hands
    the first routes to BGP before the load ends; the whole plan published after it is the
    same (no session is configured again, the router keeps what it got)."""
    from test_agent_loopback import received, write_config

    from vipcast.proto.bgp import SessionConfig, State
    from vipcast.runtime.bgp.peer import PeerSettings
    from vipcast.runtime.bgp.speaker import Speaker

    router = Speaker(listen=[("127.0.0.3", 0)], log=logging.getLogger("test.router"))
    await router.start()
    router.configure([PeerSettings(name="node", address="127.0.0.2", session=SessionConfig(
        local_asn=65000, peer_asn=4200000001, router_id="192.0.2.3", passive=True))])
    folder = tmp_path / "config"
    folder.mkdir()
    write_config(folder, router.listen_ports[0], ["web", "api", "db"])

    def up(s: Speaker) -> bool:
        return "node" in s.peers() and s.peers()["node"].state == State.ESTABLISHED

    caplog.set_level(logging.INFO, "vipcast.agent")
    running = Agent(AgentOptions(config_paths=(folder,), node="n1", load_in_thread=True))
    task = asyncio.create_task(running.run(install_signals=False))
    try:
        async with asyncio.timeout(60):
            await running.started.wait()
            assert await router.wait_for(up, 30)
            assert await router.wait_for(lambda s: received(s) >= 3, 30)
        messages = [r.getMessage() for r in caplog.records]
        early = [i for i, m in enumerate(messages) if m.startswith("peers (first routes)")]
        planned = [i for i, m in enumerate(messages) if m.startswith("plan for n1")]
        assert early and planned and early[0] < planned[0], messages
        assert not any(m.startswith("peers: ") for m in messages)  # no change after
        assert running.current is not None
        same(running.current.plan, agent(folder, None).load().plan)
        assert received(router) == 3
    finally:
        running.request_stop()
        assert await task == 0
        await router.stop()


async def test_a_reload_right_after_the_start_does_not_wait_for_the_status_server(
        tmp_path: Path) -> None:
    """The first Service added after a start is planned while the status server is still
    starting (importing the HTTP stack takes ~0.2 s of CPU, seconds under load): reloads are
    served from the first plan's hand-over on, the agent is ready (``started``) once it
    serves."""
    folder = config(tmp_path, 14, services=5, peer=False)
    serving = asyncio.Event()
    release = asyncio.Event()

    class SlowStatus(Agent):
        async def _serve_status(self) -> None:
            serving.set()
            await release.wait()  # the status server still starting
            await super()._serve_status()

    running = SlowStatus(AgentOptions(config_paths=(folder,), node="n1", load_in_thread=True,
                                      metrics_address=("127.0.0.1", 0)))
    task = asyncio.create_task(running.run(install_signals=False))

    def keys() -> set[str]:
        current = running.current
        return {s.key for s in current.spec.services} if current is not None else set()

    try:
        async with asyncio.timeout(60):
            await serving.wait()
            assert "d/extra" not in keys()
            write(folder / "extra.yaml", service("extra", random.Random(14)))
            running.request_reload()
            while "d/extra" not in keys():
                await asyncio.sleep(0.02)
            assert not running.started.is_set()
            release.set()
            await running.started.wait()
    finally:
        release.set()
        running.request_stop()
        assert await task == 0


async def test_the_load_goes_on_once_the_first_routes_are_out(tmp_path: Path) -> None:
    """Without the start cache: the first routes go out from the allocation alone, and the
    rest of the first load (the node's duties, the planner's memory, the snapshot) waits
    until the router has them, so it does not compete with the OPEN exchange and the UPDATEs;
    the whole plan published then is the same routes (no session configured again)."""
    from test_agent_loopback import received, write_config

    from vipcast.proto.bgp import SessionConfig
    from vipcast.runtime.bgp.peer import PeerSettings
    from vipcast.runtime.bgp.speaker import Speaker

    router = Speaker(listen=[("127.0.0.3", 0)], log=logging.getLogger("test.router"))
    await router.start()
    router.configure([PeerSettings(name="node", address="127.0.0.2", session=SessionConfig(
        local_asn=65000, peer_asn=4200000001, router_id="192.0.2.3", passive=True))])
    folder = tmp_path / "config"
    folder.mkdir()
    write_config(folder, router.listen_ports[0], ["web", "api", "db", "mail"])
    order: list[str] = []

    class Watched(Agent):
        first_routes_wait = 60.0  # a loaded machine: the order, not the time, is asserted

        def _first_duties(self, spec: Any, hand_on: Any) -> Any:
            def handed(early: Early) -> None:
                order.append(f"handed {len(early.bgp)}")
                hand_on(early)  # returns once the routes are out
                sent = {p.name: p.prefixes_advertised for p in self.speaker.status()}
                order.append(f"out {sent}")
            duties = super()._first_duties(spec, handed)
            order.append("duties")
            return duties

        async def _publish(self, desired: Any) -> None:
            order.append(f"publish {len(desired.plan.bgp)}")
            await super()._publish(desired)

    running = Watched(AgentOptions(config_paths=(folder,), node="n1", load_in_thread=True))
    task = asyncio.create_task(running.run(install_signals=False))
    try:
        async with asyncio.timeout(120):
            await running.started.wait()
            assert await router.wait_for(lambda s: received(s) >= 4, 60)
        assert order == ["handed 4", "out {'rtr': 4}", "duties", "publish 4"], order
        assert running.current is not None
        same(running.current.plan, agent(folder, None).load().plan)
    finally:
        running.request_stop()
        assert await task == 0
        await router.stop()


@pytest.mark.parametrize("parsed_early", [False, True])
async def test_an_invalid_first_config_opens_no_session(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
    parsed_early: bool,
) -> None:
    """A first start on a config with one bad field (the peers themselves valid): refused
    whole, the file, object and field named, and the router never sees a session; the same
    when the files were parsed by workers while the agent was imported
    (:mod:`vipcast.sources.early_parse`)."""
    from test_agent_loopback import write_config

    from vipcast.proto.bgp import SessionConfig
    from vipcast.runtime.bgp.peer import PeerSettings
    from vipcast.runtime.bgp.speaker import Speaker

    router = Speaker(listen=[("127.0.0.3", 0)], log=logging.getLogger("test.router"))
    await router.start()
    router.configure([PeerSettings(name="node", address="127.0.0.2", session=SessionConfig(
        local_asn=65000, peer_asn=4200000001, router_id="192.0.2.3", passive=True))])
    folder = tmp_path / "config"
    folder.mkdir()
    write_config(folder, router.listen_ports[0], ["web", "api"])
    services = folder / "services.yaml"
    services.write_text(services.read_text().replace("port: 80", "port: 99999", 1))
    caplog.set_level(logging.INFO, "vipcast.agent")
    parsing = None
    if parsed_early:
        monkeypatch.setattr(yaml_split, "MIN_PART", 100)  # workers even for a small config
        parsing = start_parse([folder], cpus=2)
        assert parsing is not None
    running = Agent(AgentOptions(config_paths=(folder,), node="n1", load_in_thread=True),
                    parsing=parsing)
    try:
        async with asyncio.timeout(120):
            assert await running.run(install_signals=False) == 2
        refused = [r.getMessage() for r in caplog.records
                   if r.getMessage().startswith("configuration invalid")]
        assert refused and "services.yaml" in refused[0] and "spec.ports" in refused[0], refused
        assert not any("first routes" in r.getMessage() for r in caplog.records)
        (peer,) = router.status()
        assert peer.established_transitions == 0 and peer.prefixes_received == 0
        if parsing is not None:
            assert parsing.used == 2  # the documents did come from the workers
    finally:
        await router.stop()


@pytest.mark.parametrize("seed", range(2))
def test_the_first_load_from_the_early_parse_is_the_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """The agent's first load from the documents parsed while it was imported: the plan of a
    load that parsed the files itself."""
    folder = gateway_config(tmp_path, 70 + seed, pinned=seed % 2 == 0)
    monkeypatch.setattr(yaml_split, "MIN_PART", 100)
    parsing = start_parse([folder], cpus=2)
    assert parsing is not None
    early = Agent(AgentOptions(config_paths=(folder,), node="n1"), parsing=parsing)
    first = early.load()
    assert parsing.used == len(list(folder.glob("*.yaml")))
    same(first.plan, agent(folder, None).load().plan)


def test_a_start_from_the_start_cache_lets_the_early_parse_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files parsed early for a first load the start cache then serves: the workers are
    stopped and reaped, their documents unused, and the plan is the cache's."""
    from test_start_cache import written

    folder = config(tmp_path, 80)
    cache = tmp_path / "cache"
    plan_written = written(folder, cache)
    monkeypatch.setattr(yaml_split, "MIN_PART", 100)
    parsing = start_parse([folder], cpus=2)
    assert parsing is not None
    workers = list(parsing._parsing._workers)  # type: ignore[union-attr]
    cached = Agent(AgentOptions(config_paths=(folder,), node="n1", cache_dir=cache),
                   parsing=parsing)
    same(cached.load().plan, plan_written)
    assert cached.files.parsed == 0 and cached.files.early is None
    assert parsing.used == 0
    assert workers and all(w.returncode is not None for w in workers)  # reaped
