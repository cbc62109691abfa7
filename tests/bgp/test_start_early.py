"""The early start from the start cache (``app/start_early.py``, ``app/agent_command.py``):
the first routes reach a router before the agent's modules are needed, the agent then adopts
that speaker and publishes the same routes (the router sees no change), a miss starts nothing,
and signals that arrive meanwhile are acted on once the agent runs."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_agent_loopback import received, write_config
from test_start_cache import same

from vipcast.app.agent import Agent, AgentOptions
from vipcast.app.start_early import StartArgs, routes_out, start_early
from vipcast.proto.bgp import SessionConfig, State
from vipcast.runtime.bgp.peer import PeerSettings
from vipcast.runtime.bgp.speaker import Speaker

SERVICES = ["web", "api", "db", "mail"]

#: what the early start must not import: the object model's validators, YAML, the planner,
#: the agent and its consumers, metrics and the HTTP server (imported after the routes)
HEAVY = ("vipcast.app.agent", "vipcast.app.node", "vipcast.spec.objects", "vipcast.spec.load",
         "vipcast.core.plan", "vipcast.core.pipeline", "vipcast.sources.files", "yaml",
         "prometheus_client", "aiohttp")


def test_the_early_start_imports_none_of_the_agent() -> None:
    code = ("import json, sys\n"
            "import vipcast.cli.agent_cmds, vipcast.app.agent_command, vipcast.app.start_early\n"
            "from vipcast.cli.address_options import host_port\n"
            "host_port('127.0.0.1:9473', '--metrics-address')\n"
            "print(json.dumps(sorted(sys.modules)))")
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], check=True,
                                           capture_output=True, text=True,
                                           timeout=120).stdout))
    assert "vipcast.runtime.bgp.speaker" in loaded
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def up(s: Speaker) -> bool:
    return "node" in s.peers() and s.peers()["node"].state == State.ESTABLISHED


PEER = PeerSettings(name="node", address="127.0.0.2", session=SessionConfig(
    local_asn=65000, peer_asn=4200000001, router_id="192.0.2.3", passive=True))


async def router_and_files(tmp_path: Path) -> tuple[Speaker, Path]:
    router = Speaker(listen=[("127.0.0.3", 0)], log=logging.getLogger("test.router"))
    await router.start()
    router.configure([PEER])
    folder = tmp_path / "config"
    folder.mkdir()
    write_config(folder, router.listen_ports[0], SERVICES)
    return router, folder


def options(folder: Path, cache: Path) -> AgentOptions:
    return AgentOptions(config_paths=(folder,), node="n1", cache_dir=cache,
                        load_in_thread=True, cache_quiet=0.1)


async def test_early_routes_reach_the_router_before_the_agent_exists(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    router, folder = await router_and_files(tmp_path)
    cache = tmp_path / "cache"
    try:
        # a first agent writes the start cache (and its plan is the reference)
        first = Agent(options(folder, cache))
        task = asyncio.create_task(first.run(install_signals=False))
        async with asyncio.timeout(60):
            await first.started.wait()
            assert first.start_cache is not None
            while not first.start_cache.path.exists():
                await asyncio.sleep(0.05)
        assert first.current is not None
        reference = first.current.plan
        first.request_stop()
        assert await task == 0
        assert await router.wait_for(lambda s: not up(s), 30)
        router.configure([])  # a fresh peer at the router: its counters start at zero
        await asyncio.sleep(0.1)
        router.configure([PEER])

        caplog.clear()
        caplog.set_level(logging.INFO, "vipcast.agent")
        started = await start_early(StartArgs(paths=(folder,), node="n1", cache_dir=cache))
        assert started.missed is None and started.early is not None
        assert started.early.bgp == reference.bgp
        # the routes are at the router while no agent exists yet
        assert await routes_out(started, limit=30)
        assert await router.wait_for(lambda s: up(s) and received(s) == len(SERVICES), 30)
        assert started.speaker.status()[0].state == "Established"

        running = Agent(options(folder, cache), early=started)
        assert running.speaker is started.speaker
        task = asyncio.create_task(running.run(install_signals=True))
        async with asyncio.timeout(60):
            await running.started.wait()
        assert running.current is not None
        assert running.start_cache is not None and running.start_cache.missed is None
        same(running.current.plan, reference)
        messages = [r.getMessage() for r in caplog.records]
        early = [i for i, m in enumerate(messages) if m.startswith("peers (start cache, early)")]
        planned = [i for i, m in enumerate(messages) if m.startswith("plan for n1")]
        assert early and planned and early[0] < planned[0], messages
        assert not any(m.startswith(("peers: ", "peers (start cache)")) for m in messages)
        assert "not used" not in caplog.text
        # the agent took the session over as it was: no flap, no error, every route there
        assert up(router) and received(router) == len(SERVICES)
        status = router.peers()["node"].status()
        assert status.established_transitions == 1 and status.last_error is None
        running.request_stop()
        assert await task == 0
    finally:
        await router.stop()


async def test_a_miss_starts_nothing_and_signals_wait_for_the_agent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    router, folder = await router_and_files(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    try:
        caplog.set_level(logging.INFO, "vipcast.agent")
        started = await start_early(StartArgs(paths=(folder,), node="n1", cache_dir=cache))
        assert started.missed == "no cache file" and started.early is None
        assert started.speaker.peers() == {}  # nothing configured, nothing sent
        assert not await routes_out(started, limit=0.1)
        os.kill(os.getpid(), signal.SIGHUP)  # held (the default action would end the process)
        async with asyncio.timeout(30):
            while not started.signals:
                await asyncio.sleep(0.01)
        assert started.signals == [signal.SIGHUP]
        running = Agent(options(folder, cache), early=started)
        task = asyncio.create_task(running.run(install_signals=True))
        async with asyncio.timeout(60):
            await running.started.wait()
            assert await router.wait_for(lambda s: received(s) == len(SERVICES), 30)
            while "reload requested" not in caplog.text:
                await asyncio.sleep(0.05)
        assert "no cache file" in caplog.text  # the agent's own load says why, as before
        running.request_stop()
        assert await task == 0
    finally:
        await router.stop()
