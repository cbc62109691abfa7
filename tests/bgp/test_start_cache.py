"""The agent's start cache (``app/start_cache.py``): a start from it gives the very plan a start
without it gives, on random configs; a changed file, a damaged, foreign or untrusted cache file
is a miss with its reason logged, never used; a reload after a cached start is incremental."""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from random_slices import random_slice
from vipcast.app.agent import Agent, AgentOptions
from vipcast.app.start_cache import StartCache
from vipcast.app.start_early import FORMAT, MAGIC
from vipcast.core.desired import NodePlan

V = "vipcast.io/v1beta1"


def base_objects(peer: bool = True) -> list[dict[str, Any]]:
    peers: list[dict[str, Any]] = [
        {"apiVersion": V, "kind": "BGPPeer", "metadata": {"name": "r"},
         "spec": {"myASN": 64512, "peerASN": 64500, "peerAddress": "10.0.0.1",
                  "gracefulRestart": True}},
    ] if peer else []
    return [*peers,
        {"apiVersion": V, "kind": "IPAddressPool", "metadata": {"name": "bgp"},
         "spec": {"addresses": ["198.18.0.0/24", "2001:db8::/120"]}},
        {"apiVersion": V, "kind": "IPAddressPool", "metadata": {"name": "agg"},
         "spec": {"addresses": ["198.18.2.0/24"]}},
        {"apiVersion": V, "kind": "BGPAdvertisement", "metadata": {"name": "b"},
         "spec": {"ipAddressPools": ["bgp"], "communities": ["65000:1"]}},
        {"apiVersion": V, "kind": "BGPAdvertisement", "metadata": {"name": "a"},
         "spec": {"ipAddressPools": ["agg"], "aggregationLength": 30}},
        *({"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"n{i}"}} for i in range(3)),
    ]


def service(name: str, rng: random.Random, pinned: bool = False) -> list[dict[str, Any]]:
    """A Service (pinned, shared or fresh address; sometimes a health check) and its slice."""
    meta: dict[str, Any] = {"name": name, "namespace": "d", "annotations": {}}
    pool = rng.choice(["198.18.0", "198.18.2"])
    roll = rng.random()
    if roll > 0.3 or pinned:
        meta["annotations"]["vipcast.io/loadBalancerIPs"] = f"{pool}.{rng.randrange(1, 60)}"
    if roll > 0.9 and not pinned:
        meta["annotations"]["vipcast.io/allow-shared-ip"] = "k"
    if rng.random() < 0.2:
        meta["annotations"]["vipcast.io/health-check"] = rng.choice(["http:/hz", "bogus"])
    nodes = rng.sample(["n0", "n1", "n2"], rng.randrange(0, 3))
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": meta,
         "spec": {"type": "LoadBalancer",
                  "ports": [{"port": rng.choice([80, 443]), "targetPort": 8080}]}},
        random_slice(name, nodes, rng),
    ]


def write(path: Path, docs: list[dict[str, Any]]) -> None:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def config(root: Path, seed: int, services: int = 40, peer: bool = True,
           pinned: bool = False) -> Path:
    rng = random.Random(seed)
    folder = root / "config"
    folder.mkdir(parents=True, exist_ok=True)
    write(folder / "base.yaml", base_objects(peer))
    docs: list[dict[str, Any]] = []
    for i in range(services):
        docs += service(f"s{i}", rng, pinned)
    write(folder / "services.yaml", docs)
    return folder


def agent(folder: Path, cache: Path | None, node: str = "n1") -> Agent:
    return Agent(AgentOptions(config_paths=(folder,), node=node, cache_dir=cache))


def written(folder: Path, cache: Path, node: str = "n1") -> NodePlan:
    """A start without a start cache, which then writes it (as a running agent does)."""
    first = agent(folder, cache, node)
    desired = first.load()
    assert first.start_cache is not None and first.files.parsed > 0
    assert desired.snapshot is not None
    assert first.start_cache.save(first.files.state(), first._planner,  # type: ignore[arg-type]
                                  first._gateway_services, desired.snapshot, first.identity())
    return desired.plan


def plans_after_a_crash(folder: Path, cache: Path) -> tuple[NodePlan, NodePlan]:
    """After a crash (``restarting``), for the same files: the plan of a start from the
    written cache (asserted a hit) and the plan of a start without a cache."""
    written(folder, cache)
    restarted = agent(folder, cache)
    restarted.restarting = True
    plan = restarted.load().plan
    assert restarted.start_cache is not None and restarted.start_cache.missed is None
    crashed = agent(folder, None)
    crashed.restarting = True
    return plan, crashed.load().plan


def same(a: NodePlan, b: NodePlan) -> None:
    assert a == b
    assert repr(a) == repr(b)  # every field, as text: nothing compared loosely


@pytest.mark.parametrize("seed", range(6))
def test_a_cached_start_plans_what_a_start_without_it_plans(tmp_path: Path, seed: int) -> None:
    folder = config(tmp_path, seed)
    fresh = agent(folder, None).load().plan
    cache = tmp_path / "cache"
    same(written(folder, cache), fresh)
    restarted = agent(folder, cache)
    desired = restarted.load()
    assert restarted.start_cache is not None and restarted.start_cache.missed is None
    assert restarted.files.parsed == 0  # nothing read, validated or planned
    assert restarted.files.disk is not None and restarted.files.disk.hits == 0
    same(desired.plan, fresh)
    # a reload after it goes the way it goes in the agent that never stopped (incremental
    # where that one is: the cache kept the planner's memory and the objects' identities)
    assert not restarted.files.changed()
    control = agent(folder, cache=None)
    control.load()

    def counts(a: Agent) -> tuple[int, int]:
        return getattr(a._planner, "incremental", -1), getattr(a._planner, "whole", -1)

    before = counts(restarted), counts(control)
    write(folder / "extra.yaml", service("extra", random.Random(seed)) if seed % 2 else
          service("extra", random.Random(1))[:1])  # odd seeds: pinned or not; even: no slice
    again = restarted.load()
    assert restarted.files.parsed == 1
    expected = control.load()
    same(again.plan, expected.plan)
    after = counts(restarted), counts(control)
    steps = [tuple(x - y for x, y in zip(a, b, strict=True)) for a, b in zip(after, before,
                                                                          strict=True)]
    assert steps[0] == steps[1]


def test_a_reload_after_a_cached_start_is_incremental(tmp_path: Path) -> None:
    folder = config(tmp_path, 11, pinned=True)
    cache = tmp_path / "cache"
    written(folder, cache)
    restarted = agent(folder, cache)
    restarted.load()
    whole = getattr(restarted._planner, "whole", 0)
    extra = service("extra", random.Random(3))
    extra[0]["metadata"]["annotations"]["vipcast.io/loadBalancerIPs"] = "198.18.0.250"
    write(folder / "extra.yaml", extra)
    plan = restarted.load().plan
    assert getattr(restarted._planner, "incremental", 0) == 1
    assert getattr(restarted._planner, "whole", 0) == whole
    same(plan, agent(folder, None).load().plan)


def test_a_changed_file_is_a_miss(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = config(tmp_path, 1)
    cache = tmp_path / "cache"
    written(folder, cache)
    services = folder / "services.yaml"
    st = services.stat()
    text = services.read_text().replace("198.18.0.", "198.18.0.1", 1)  # another address
    services.write_text(text[: len(text) - 1] if len(text) > st.st_size else text)
    os.utime(services, ns=(st.st_atime_ns, st.st_mtime_ns))  # the stamp proves nothing
    caplog.set_level(logging.INFO, "vipcast.agent.start_cache")
    restarted = agent(folder, cache)
    plan = restarted.load().plan
    assert restarted.start_cache is not None
    assert restarted.start_cache.missed == "made from other object files (or another node)"
    assert "not used: made from other object files" in caplog.text
    same(plan, agent(folder, None).load().plan)


def test_another_node_is_a_miss(tmp_path: Path) -> None:
    folder = config(tmp_path, 2)
    cache = tmp_path / "cache"
    written(folder, cache, node="n1")
    other = agent(folder, cache, node="n2")
    # another node's file has another name; pointed at n1's, its key still differs
    assert other.start_cache is not None
    n1 = StartCache(cache, "n1")
    other.start_cache.path = n1.path
    plan = other.load().plan
    assert other.start_cache.missed == "made from other object files (or another node)"
    same(plan, agent(folder, None, node="n2").load().plan)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_a_damaged_file_is_a_miss(tmp_path: Path, damage: str,
                                  caplog: pytest.LogCaptureFixture) -> None:
    folder = config(tmp_path, 3)
    cache = tmp_path / "cache"
    written(folder, cache)
    path = StartCache(cache, "n1").path
    data = path.read_bytes()
    path.write_bytes({"garbage": b"\x80\x05not a pickle at all" * 10,
                      "truncated": data[: len(data) * 2 // 3], "empty": b""}[damage])
    caplog.set_level(logging.INFO, "vipcast.agent.start_cache")
    restarted = agent(folder, cache)
    plan = restarted.load().plan
    assert restarted.start_cache is not None
    assert (restarted.start_cache.missed or "").startswith("unusable (")
    assert "not used: unusable" in caplog.text
    same(plan, agent(folder, None).load().plan)


def test_another_vipcast_is_a_miss(tmp_path: Path) -> None:
    folder = config(tmp_path, 4)
    cache = tmp_path / "cache"
    written(folder, cache)
    path = StartCache(cache, "n1").path
    data = path.read_bytes()
    header_end = len(pickle.dumps(pickle.loads(data), protocol=pickle.HIGHEST_PROTOCOL))
    magic, fmt, code, key = pickle.loads(data)
    assert (magic, fmt) == (MAGIC, FORMAT)
    path.write_bytes(pickle.dumps((magic, fmt, "0" * len(code), key),
                                  protocol=pickle.HIGHEST_PROTOCOL) + data[header_end:])
    restarted = agent(folder, cache)
    restarted.load()
    assert restarted.start_cache is not None
    assert restarted.start_cache.missed == "written by another vipcast (format or code)"


class Planted:
    """Would run code when unpickled."""

    ran = False

    def __reduce__(self) -> tuple[Any, ...]:
        return (Planted.mark, ())

    @staticmethod
    def mark() -> None:
        Planted.ran = True


def test_a_header_naming_code_is_refused_before_it_runs(tmp_path: Path) -> None:
    folder = config(tmp_path, 5)
    cache = tmp_path / "cache"
    written(folder, cache)
    StartCache(cache, "n1").path.write_bytes(pickle.dumps(Planted()))
    restarted = agent(folder, cache)
    restarted.load()
    assert restarted.start_cache is not None
    assert "UnpicklingError" in (restarted.start_cache.missed or "")
    assert not Planted.ran


def test_a_file_others_may_write_is_not_trusted(tmp_path: Path) -> None:
    folder = config(tmp_path, 6)
    cache = tmp_path / "cache"
    written(folder, cache)
    path = StartCache(cache, "n1").path
    path.chmod(0o666)
    restarted = agent(folder, cache)
    restarted.load()
    assert restarted.start_cache is not None
    assert restarted.start_cache.missed == f"not trusted: {path} is writable by others"
    assert restarted.files.parsed > 0


def test_a_restart_after_a_crash_sets_the_restart_bit(tmp_path: Path) -> None:
    """The key leaves out whether the last agent stopped cleanly; the sessions follow it."""
    plan, expected = plans_after_a_crash(config(tmp_path, 7), tmp_path / "cache")
    assert any(p.session.restarting for p in expected.peers)
    same(plan, expected)


async def test_a_running_agent_writes_it_once_the_config_is_quiet(tmp_path: Path) -> None:
    folder = config(tmp_path, 8, services=5, peer=False)  # no session to wait for
    cache = tmp_path / "cache"
    options = AgentOptions(config_paths=(folder,), node="n1", cache_dir=cache,
                           load_in_thread=True, cache_quiet=0.1)
    running = Agent(options)
    task = asyncio.create_task(running.run(install_signals=False))
    path = StartCache(cache, "n1").path
    async with asyncio.timeout(60):
        await running.started.wait()
        while not path.exists():
            await asyncio.sleep(0.05)
    running.request_stop()
    assert await task == 0
    assert running.current is not None
    second = agent(folder, cache)
    same(second.load().plan, running.current.plan)
    assert second.start_cache is not None and second.start_cache.missed is None


def test_a_write_a_reload_abandons_leaves_nothing(tmp_path: Path) -> None:
    import threading

    folder = config(tmp_path, 9)
    cache = tmp_path / "cache"
    first = agent(folder, cache)
    desired = first.load()
    assert first.start_cache is not None and desired.snapshot is not None
    stop = threading.Event()
    stop.set()
    assert not first.start_cache.save(first.files.state(), first._planner,  # type: ignore[arg-type]
                                      first._gateway_services, desired.snapshot,
                                      first.identity(), stop)
    assert not list(cache.glob("start-*"))  # neither the file nor its temporary
    restarted = agent(folder, cache)
    restarted.load()
    assert restarted.start_cache is not None
    assert restarted.start_cache.missed == "no cache file"


async def test_a_cached_start_announces_before_the_rest_is_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """At a router (a passive vipcast speaker on loopback): the second start hands the cached
    first plan's routes to BGP before the rest of the cache is read, and the plan of the whole
    snapshot that follows is the same value (the router sees no change)."""
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
    cache = tmp_path / "cache"
    path = StartCache(cache, "n1").path
    plans: list[NodePlan] = []

    def up(s: Speaker) -> bool:
        return "node" in s.peers() and s.peers()["node"].state == State.ESTABLISHED

    try:
        for start in range(2):
            caplog.clear()
            caplog.set_level(logging.INFO, "vipcast.agent")
            running = Agent(AgentOptions(config_paths=(folder,), node="n1", cache_dir=cache,
                                         load_in_thread=True, cache_quiet=0.1))
            task = asyncio.create_task(running.run(install_signals=False))
            async with asyncio.timeout(60):
                await running.started.wait()
                assert await router.wait_for(up, 30)
                assert await router.wait_for(lambda s: received(s) >= 3, 30)
                while not path.exists():
                    await asyncio.sleep(0.05)
            assert running.current is not None
            plans.append(running.current.plan)
            messages = [r.getMessage() for r in caplog.records]
            early = [i for i, m in enumerate(messages) if m.startswith("peers (start cache)")]
            planned = [i for i, m in enumerate(messages) if m.startswith("plan for n1")]
            if start == 0:
                assert not early and planned  # nothing cached yet: the whole load first
            else:
                assert early and planned and early[0] < planned[0], messages
                assert not any(m.startswith("peers: ") for m in messages)  # no change after
            running.request_stop()
            assert await task == 0
            assert await router.wait_for(lambda s: received(s) == 0 or not up(s), 30)
        same(plans[1], plans[0])
    finally:
        await router.stop()


@pytest.mark.parametrize("restarting", [False, True])
def test_the_early_routes_are_the_restored_plans(tmp_path: Path, restarting: bool) -> None:
    folder = config(tmp_path, 10)
    cache = tmp_path / "cache"
    written(folder, cache)
    restarted = agent(folder, cache)
    restarted.restarting = restarting  # written by a clean start: no early routes then
    assert restarted.start_cache is not None
    early = restarted.start_cache.early((folder,), restarted.identity())
    desired = restarted.load()
    assert restarted.start_cache.missed is None
    if restarting:
        assert early is None
    else:
        assert early is not None
        assert early.bgp is desired.plan.bgp  # the very tuple: the speaker sees no change
        assert early.peers == desired.plan.peers
    restarted.restarting = False
    assert desired.plan == agent(folder, None).load().plan or restarting


async def test_a_sighup_during_the_start_is_a_reload(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """Routes may be out before the load ends (the start cache's early routes): a SIGHUP then
    (a user adding a file) asks for a reload; it must not end the process (the default
    action), so the agent handles signals from the start of run()."""
    import signal

    folder = config(tmp_path, 12, services=5, peer=False)
    caplog.set_level(logging.INFO, "vipcast.agent")
    running = Agent(AgentOptions(config_paths=(folder,), node="n1", load_in_thread=True))
    task = asyncio.create_task(running.run(install_signals=True))
    await asyncio.sleep(0)  # run() is past its first step: handlers installed, load started
    os.kill(os.getpid(), signal.SIGHUP)
    async with asyncio.timeout(60):
        await running.started.wait()
        while "reload requested" not in caplog.text:
            await asyncio.sleep(0.05)
    running.request_stop()
    assert await task == 0
