"""Drain triggers on the real API server: a taint or a label on the Node drains the speaker's
node (GRACEFUL_SHUTDOWN, then withdrawn), removing it brings the routes back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from dataclasses import replace

import pytest
from lightkube.resources.core_v1 import Node
from lightkube.types import PatchType

from vipcast.app.agent import AgentOptions
from vipcast.app.drain import drain_driver
from vipcast.app.speaker import KubeAgent

from .conftest import run
from .harness.cluster import Cluster
from .kubetools import client, endpoint_slice, eventually, lb_service
from .speaker_objects import create_speaker_objects, set_status, speaker_objects

pytestmark = pytest.mark.slow


async def _eq(value: Awaitable[str | None], wanted: str | None) -> bool | None:
    return True if await value == wanted else None


def test_a_taint_or_a_label_drains_the_node(vipcast_crds: Cluster, namespace: str) -> None:
    async def go() -> None:
        c = client(vipcast_crds.kubeconfig, namespace)
        node = f"node-{namespace}"
        await create_speaker_objects(c, namespace, node, "203.0.113.144/28")
        await c.create(lb_service("web", namespace))
        await c.create(endpoint_slice("web", namespace, node, "10.1.0.1"))
        await set_status(c, "web", namespace, ["203.0.113.145"])

        options = AgentOptions(config_paths=(), node=node, poll_interval=0.1)
        options = replace(options, drain_grace=1.0, drain_quiet=0.0)
        agent = KubeAgent(c, options)
        driver = drain_driver(agent, options)
        task = asyncio.create_task(agent.serve(install_signals=False, sync_timeout=30))
        seen: list[str] = []

        async def state(wanted: str, routes: bool) -> bool | None:
            await asyncio.sleep(0)
            if not seen or seen[-1] != agent.drain_state:
                seen.append(agent.drain_state)
            plan = agent.current.plan if agent.current else None
            ok = plan is not None and bool(plan.bgp) == routes
            return True if agent.drain_state == wanted and ok else None

        async def patch(body: dict[str, object]) -> None:
            await c.patch(Node, node, body, patch_type=PatchType.MERGE)

        try:
            await eventually(lambda: state("serving", True), 30, what="announced")
            # the cluster autoscaler's taint: draining, then drained (withdrawn)
            await patch({"spec": {"taints": [{"key": "ToBeDeletedByClusterAutoscaler",
                                              "value": "1", "effect": "NoSchedule"}]}})
            await eventually(lambda: state("drained", False), 30, what="drained on the taint")
            assert "draining" in seen
            # reported on the Node for whoever waits to evict
            async def annotation() -> str | None:
                got = await c.get(Node, node)
                return (got.metadata.annotations or {}).get("vipcast.io/drain-state")

            assert await eventually(
                lambda: _eq(annotation(), "drained"), 30, what="drain state on the Node")
            # the taint removed: announced again
            await patch({"spec": {"taints": None}})
            await eventually(lambda: state("serving", True), 30, what="undrained")
            await eventually(lambda: _eq(annotation(), None), 30,
                             what="drain state removed from the Node")
            # the documented default label drains as well
            await patch({"metadata": {"labels": {
                "node.kubernetes.io/exclude-from-external-load-balancers": ""}}})
            await eventually(lambda: state("drained", False), 30, what="drained on the label")
            # cordon is not a drain trigger
            await patch({"metadata": {"labels": {
                "node.kubernetes.io/exclude-from-external-load-balancers": None}},
                "spec": {"unschedulable": True, "taints": [
                    {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]}})
            await eventually(lambda: state("serving", True), 30, what="cordoned, serving")
        finally:
            agent.request_stop()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 20)
            await driver.stop()
            for res, name in speaker_objects(namespace, node):
                await c.delete(res, name)
            await c.close()

    run(go(), 180)
