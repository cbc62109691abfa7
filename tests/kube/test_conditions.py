"""Service conditions and decision Events against a real API server: the controller's
``vipcast.io/Allocated`` (with the allocator's reason), the speakers' NodeAnnouncements folded
into ``vipcast.io/Announced``, and an Event for each decision (allocated, kept, refused,
moved by a config change, released)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from lightkube import AsyncClient
from lightkube.resources.core_v1 import Service

from vipcast.app.agent import AgentOptions
from vipcast.app.controller import Controller
from vipcast.app.speaker import KubeAgent
from vipcast.sources.kube.conditions import ALLOCATED, ANNOUNCED
from vipcast.sources.kube.resources import NODE_ANNOUNCEMENTS
from vipcast.spec import ANNOTATION_IPS

from .conftest import run
from .harness.cluster import Cluster
from .kubetools import (
    IPAddressPool,
    client,
    endpoint_slice,
    event_reasons,
    eventually,
    ingress_ips,
    lb_service,
    pool,
)
from .speaker_objects import create_speaker_objects, speaker_objects
from .test_controller import _config, running

pytestmark = pytest.mark.slow


async def conditions(c: AsyncClient, name: str, namespace: str) -> dict[str, dict[str, Any]]:
    svc = await c.get(Service, name, namespace=namespace)
    data = svc.to_dict()
    return {cond["type"]: cond for cond in (data.get("status") or {}).get("conditions") or ()}


def test_allocated_and_announced_conditions(vipcast_crds: Cluster, namespace: str) -> None:
    async def go() -> None:
        c = client(vipcast_crds.kubeconfig, namespace)
        node = f"cn-{namespace}"
        await create_speaker_objects(c, namespace, node, "198.51.100.64/31")
        ctl = Controller(c, _config("cond-ctl", f"lease-{namespace}"))
        agent = KubeAgent(c, AgentOptions(config_paths=(), node=node, poll_interval=0.1))
        speaker = asyncio.create_task(agent.serve(install_signals=False, sync_timeout=30))
        try:
            async with running(ctl):
                await c.create(lb_service("web", namespace))
                await c.create(endpoint_slice("web", namespace, node, "10.2.0.1"))
                (web_ip,) = await eventually(lambda: ingress_ips(c, "web", namespace), 30,
                                             what="web's IP")
                await c.create(lb_service("taken", namespace,
                                          annotations={ANNOTATION_IPS: web_ip}))
                await c.create(lb_service("lonely", namespace))  # no endpoints anywhere
                await eventually(lambda: ingress_ips(c, "lonely", namespace), 30,
                                 what="lonely's IP")
                await c.create(lb_service("starved", namespace))  # pool of 2 is full

                async def settled() -> dict[str, dict[str, dict[str, Any]]] | None:
                    got = {n: await conditions(c, n, namespace)
                           for n in ("web", "taken", "lonely", "starved")}
                    lonely = got["lonely"].get(ANNOUNCED, {})
                    # NotAnnounced comes first as "not in any speaker's report yet": wait for
                    # the speaker's own reason (a loaded machine showed the early one)
                    ready = (got["web"].get(ANNOUNCED, {}).get("status") == "True"
                             and lonely.get("reason") == "NotAnnounced"
                             and f"{node}:" in lonely.get("message", "")
                             and all(ALLOCATED in v for v in got.values()))
                    return got if ready else None

                got = await eventually(settled, 40, what="conditions of all four")
                assert got["web"][ALLOCATED]["status"] == "True"
                assert node in got["web"][ANNOUNCED]["message"]
                assert got["taken"][ALLOCATED]["status"] == "False"
                assert got["taken"][ALLOCATED]["reason"] == "RequestedIPTaken"
                assert f"{namespace}/web" in got["taken"][ALLOCATED]["message"]
                assert got["taken"][ANNOUNCED]["reason"] == "NotAllocated"
                assert got["starved"][ALLOCATED]["reason"] == "PoolExhausted"
                assert got["lonely"][ALLOCATED]["status"] == "True"
                assert f"{node}: NotSelected" in got["lonely"][ANNOUNCED]["message"]
                # the speaker's report, as written (server-side apply by vipcast-speaker)
                report = (await c.get(NODE_ANNOUNCEMENTS.resource, node)).to_dict()
                assert [a["service"] for a in report["status"]["announced"]] == [
                    f"{namespace}/web"]
                managers = {m["manager"] for m in report["metadata"]["managedFields"]}
                assert managers == {"vipcast-speaker"}
                # the Event is emitted beside the status write, not before it: wait for it

                async def taken_told() -> bool:
                    return "RequestedIPTaken" in await event_reasons(c, "taken", namespace)

                await eventually(taken_told, 30, what="the RequestedIPTaken Event")
                # the endpoint goes away: the speaker withdraws, the condition follows
                await c.delete(endpoint_slice("web", namespace, node, "").__class__,
                               "web-1", namespace=namespace)

                async def withdrawn() -> bool:
                    got = await conditions(c, "web", namespace)
                    return got.get(ANNOUNCED, {}).get("status") == "False"

                await eventually(withdrawn, 30, what="web no longer announced")
        finally:
            agent.request_stop()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(speaker, 20)
            for res, name in (*speaker_objects(namespace, node),
                              (NODE_ANNOUNCEMENTS.resource, node)):
                with contextlib.suppress(Exception):
                    await c.delete(res, name)
            await c.close()

    run(go(), 150)


def test_an_event_for_every_decision(vipcast_crds: Cluster, namespace: str) -> None:
    async def go() -> None:
        c = client(vipcast_crds.kubeconfig, namespace)
        name = f"p-{namespace}"
        await c.create(pool(name, ["203.0.113.200/31"], namespace))
        await c.create(lb_service("a", namespace))
        await c.create(lb_service("b", namespace))
        one = Controller(c, _config("ev-1", f"lease-{namespace}"))
        async with running(one):
            await eventually(lambda: ingress_ips(c, "b", namespace), 30, what="b's IP")
        before = {n: await ingress_ips(c, n, namespace) for n in "ab"}
        # a new controller takes the addresses over from status: IPKept, nothing moves
        two = Controller(c, _config("ev-2", f"lease-{namespace}"))
        async with running(two):
            async def kept() -> bool:
                return "IPKept" in await event_reasons(c, "a", namespace)

            await eventually(kept, 30, what="IPKept")
            assert {n: await ingress_ips(c, n, namespace) for n in "ab"} == before
            # the pool changes: both addresses are gone from it, each Service moves
            p = await c.get(IPAddressPool, name)
            p["spec"]["addresses"] = ["203.0.113.210/31"]  # type: ignore[index]
            await c.replace(p)

            async def moved() -> bool:
                return ("IPMoved" in await event_reasons(c, "a", namespace)
                        and "IPMoved" in await event_reasons(c, "b", namespace))

            await eventually(moved, 30, what="IPMoved")
            assert (await ingress_ips(c, "a", namespace))[0].startswith("203.0.113.21")
            # no longer a LoadBalancer: released, ingress withdrawn, the conditions say why
            svc = await c.get(Service, "b", namespace=namespace)
            svc.spec.type = "ClusterIP"
            await c.replace(svc)

            async def released() -> bool:
                return "IPReleased" in await event_reasons(c, "b", namespace)

            await eventually(released, 30, what="IPReleased")
            await eventually(lambda: _no_ours(c, "b", namespace), 30, what="b cleaned")
        reasons = await event_reasons(c, "a", namespace)
        assert "IPAllocated" in reasons
        await c.delete(IPAddressPool, name)
        await c.close()

    run(go(), 150)


async def _no_ours(c: AsyncClient, name: str, namespace: str) -> bool:
    if await ingress_ips(c, name, namespace):
        return False
    got = await conditions(c, name, namespace)
    return (got.get(ALLOCATED, {}).get("reason") == "NotLoadBalancer"
            and got.get(ANNOUNCED, {}).get("reason") == "NotAllocated")
