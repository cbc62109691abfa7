"""The node speaker against a real API server: it announces exactly what the controller
committed to Service status, for our class and our pools, and follows changes."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from vipcast.app.agent import AgentOptions
from vipcast.app.speaker import KubeAgent

from .conftest import run
from .harness.cluster import Cluster
from .kubetools import client, endpoint_slice, eventually, lb_service
from .speaker_objects import create_speaker_objects, set_status, speaker_objects

pytestmark = pytest.mark.slow

def test_speaker_announces_committed_addresses_only(vipcast_crds: Cluster,
                                                    namespace: str) -> None:
    async def go() -> None:
        c = client(vipcast_crds.kubeconfig, namespace)
        node = f"node-{namespace}"
        await create_speaker_objects(c, namespace, node, "203.0.113.128/28")
        await c.create(lb_service("committed", namespace))
        await c.create(lb_service("pending", namespace))
        await c.create(lb_service("foreign", namespace, cls="example.com/other"))
        for i, svc in enumerate(("committed", "pending", "foreign")):
            await c.create(endpoint_slice(svc, namespace, node, f"10.1.0.{i + 1}"))
        await set_status(c, "committed", namespace, ["203.0.113.130"])
        await set_status(c, "foreign", namespace, ["203.0.113.131"])

        agent = KubeAgent(c, AgentOptions(config_paths=(), node=node, poll_interval=0.1))
        task = asyncio.create_task(agent.serve(install_signals=False, sync_timeout=30))

        def prefixes() -> set[str]:
            plan = agent.current.plan if agent.current else None
            return {r.prefix for r in plan.bgp} if plan else set()

        try:
            got = await eventually(lambda: asyncio.sleep(0, prefixes() or None), 30,
                                   what="a plan with routes")
            assert got == {"203.0.113.130/32"}
            # the controller commits the pending one: the speaker follows
            await set_status(c, "pending", namespace, ["203.0.113.129"])
            await eventually(
                lambda: asyncio.sleep(0, prefixes() == {"203.0.113.129/32", "203.0.113.130/32"}),
                30, what="pending announced")
            # withdrawn from status: withdrawn from the plan
            await set_status(c, "committed", namespace, [])
            await eventually(lambda: asyncio.sleep(0, prefixes() == {"203.0.113.129/32"}), 30,
                             what="committed withdrawn")
        finally:
            agent.request_stop()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 20)
            for res, name in speaker_objects(namespace, node):
                await c.delete(res, name)
            await c.close()

    run(go(), 120)
