"""A slow reload (a big object set takes seconds to parse and plan) must not stall the loop
that runs the BFD timers, BGP keepalives and /status: with ``load_in_thread`` it runs in a
worker thread. Without it, the same reload blocks the loop for its whole duration."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from vipcast.app.agent import Agent, AgentOptions, default_planner
from vipcast.core.desired import NodePlan
from vipcast.spec.load import Spec

SLOW = 0.6
CONFIG = """\
apiVersion: vipcast.io/v1beta1
kind: IPAddressPool
metadata: {name: pool}
spec:
  addresses: [198.51.100.0/28]
"""


def slow_planner(spec: Spec, node: str) -> NodePlan:
    time.sleep(SLOW)  # stands in for parsing and planning 10,000 services
    return default_planner(spec, node)


async def max_loop_lag(agent: Agent) -> float:
    """Reload once; the largest gap between 10 ms ticks of the loop meanwhile."""
    loop = asyncio.get_running_loop()
    first = agent.current
    worst, last = 0.0, loop.time()
    agent.request_reload()
    deadline = last + 20
    while agent.current is first and loop.time() < deadline:
        await asyncio.sleep(0.01)
        now = loop.time()
        worst, last = max(worst, now - last), now
    assert agent.current is not first, "reload did not finish"
    return worst


@pytest.mark.parametrize("in_thread", [True, False])
async def test_reload_off_the_loop(tmp_path: Path, in_thread: bool) -> None:
    (tmp_path / "pool.yaml").write_text(CONFIG)
    options = AgentOptions(
        config_paths=(tmp_path,), node="n1", poll_interval=0.1, load_in_thread=in_thread
    )
    agent = Agent(options, planner=slow_planner)
    task = asyncio.create_task(agent.run(install_signals=False))
    try:
        await asyncio.wait_for(agent.started.wait(), 20)
        lag = await max_loop_lag(agent)
        if in_thread:
            assert lag < SLOW / 2, lag  # the loop kept ticking (generous: a noisy machine)
        else:
            assert lag >= SLOW * 0.9, lag  # the same reload on the loop blocks it
    finally:
        agent.request_stop()
        assert await asyncio.wait_for(task, 20) == 0
