"""The reflector against a real API server: list + watch, deletes, and relist on 410."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from vipcast.sources.kube.reflector import Reflector
from vipcast.sources.kube.resources import SERVICES

from .conftest import run
from .harness.cluster import Cluster
from .kubetools import Service, client, eventually, lb_service

pytestmark = pytest.mark.slow


def test_list_watch_delete_and_relist_after_gone(kube_cluster: Cluster, namespace: str) -> None:
    async def go() -> None:
        c = client(kube_cluster.kubeconfig, namespace)
        await c.create(lb_service("before", namespace))
        changes = 0

        def changed() -> None:
            nonlocal changes
            changes += 1

        r = Reflector(c, SERVICES, changed, watch_timeout=5)
        real_list = r._list
        first = True

        async def list_then_expire() -> None:
            # after the first list, pretend we slept through history: the watch must get 410
            nonlocal first
            await real_list()
            if first:
                first = False
                r.resource_version = "1"

        r._list = list_then_expire  # type: ignore[method-assign]
        task = asyncio.create_task(r.run())
        try:
            key = f"{namespace}/before"
            await eventually(lambda: asyncio.sleep(0, key in r.store), 20, what="listed")
            await eventually(lambda: asyncio.sleep(0, r.gone >= 1 and r.lists >= 2), 20,
                             what="410 and relist")
            await c.create(lb_service("after", namespace))
            await eventually(lambda: asyncio.sleep(0, f"{namespace}/after" in r.store), 20,
                             what="watched ADDED")
            await c.delete(Service, "before")
            await eventually(lambda: asyncio.sleep(0, key not in r.store), 20,
                             what="watched DELETED")
            assert r.gone == 1 and r.errors == 0
            assert changes >= 3
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await c.close()

    run(go(), 60)
