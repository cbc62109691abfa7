"""``vipcast agent --cache-dir``: the agent writes the validated files to the disk cache after
its first plan was handed on and the config ran unchanged for ``cache_quiet`` seconds, and a
second agent starts from them without parsing."""

from __future__ import annotations

import asyncio
from pathlib import Path

from vipcast.app.agent import Agent, AgentOptions
from vipcast.sources.validated_cache import SUFFIX

CONFIG = """\
apiVersion: vipcast.io/v1beta1
kind: IPAddressPool
metadata: {name: pool}
spec:
  addresses: [198.51.100.0/28]
---
apiVersion: v1
kind: Node
metadata: {name: n1}
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
  annotations: {vipcast.io/loadBalancerIPs: 198.51.100.3}
spec:
  type: LoadBalancer
  ports: [{port: 80}]
"""


async def start_and_stop(config: Path, cache: Path) -> Agent:
    agent = Agent(AgentOptions(config_paths=(config,), node="n1", cache_dir=cache,
                               load_in_thread=True, cache_quiet=0.1))
    task = asyncio.create_task(agent.run(install_signals=False))
    async with asyncio.timeout(60):
        await agent.started.wait()
        # written once the routes are out and the config was quiet: the files' entries, then
        # the start cache (waited for too: a write still under way when the agent stops would
        # put it in place after the test took it away)
        while not list(cache.rglob(f"*{SUFFIX}")) or not list(cache.glob("start-*.pickle")):
            await asyncio.sleep(0.05)
    agent.request_stop()
    assert await task == 0
    return agent


async def test_second_start_reads_the_cache_instead_of_parsing(tmp_path: Path) -> None:
    config = tmp_path / "objects.yaml"
    config.write_text(CONFIG)
    cache = tmp_path / "cache"
    first = await start_and_stop(config, cache)
    assert first.files.parsed == 1
    # the per-file entries are this test's subject: the start cache written with them
    # (tests/bgp/test_start_cache.py) is taken away
    for start in cache.glob("start-*.pickle"):
        start.unlink()
    second = await start_and_stop(config, cache)
    assert second.files.parsed == 0
    assert second.files.disk is not None and second.files.disk.hits == 1
    assert first.current is not None and second.current is not None
    assert second.current.plan == first.current.plan
