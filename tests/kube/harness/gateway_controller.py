"""A controller with the Gateway API on (``--gateway-api``) run against the test API server
until a condition holds: the set-up the Gateway, Ingress and route status tests share."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vipcast.app.controller import Controller, ControllerConfig
from vipcast.sources.kube.client import make_client
from vipcast.sources.kube.leader import ElectionConfig
from vipcast.sources.kube.resources import CONTROLLER_KINDS, GATEWAY_KINDS, NODES

from ..conftest import run
from .cluster import Cluster


def run_gateway_controller(cluster: Cluster, ns: str, identity: str,
                           until: Callable[[], Any], timeout: float = 60, *,
                           kubeconfig: Path | None = None,
                           failure: str = "the controller did not get there") -> Any:
    """Run a controller (leases in ``vipcast-system`` named ``lease-<ns>``, 2 s resync) until
    ``until()`` answers something, checked every 0.1 s, and return that answer; fail with
    ``failure`` after ``timeout`` seconds. ``kubeconfig``: the user it runs as (default: the
    cluster's administrator)."""

    async def go() -> Any:
        client = make_client(kubeconfig or cluster.kubeconfig, ns, "vipcast-test")
        config = ControllerConfig(
            identity=identity, gateway_api=True, resync=2, debounce=0.02,
            election=ElectionConfig(name=f"lease-{ns}", namespace="vipcast-system",
                                    lease_duration=2, renew_deadline=1.5, retry_period=0.2))
        ctl = Controller(client, config, kinds=(*CONTROLLER_KINDS, NODES, *GATEWAY_KINDS))
        task = asyncio.create_task(ctl.run())
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while loop.time() < deadline:
                got = until()
                if got:
                    return got
                await asyncio.sleep(0.1)
            raise AssertionError(failure)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await client.close()

    return run(go(), timeout=timeout + 30)
