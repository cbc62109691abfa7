"""The speaker's drain state on its own Node: the annotation ``vipcast.io/drain-state``
("draining", "drained", "undraining"; removed when serving), so whoever drains the node
(an operator, the cluster autoscaler's tooling) sees when eviction may proceed.

Written with a JSON merge patch of that one annotation (field manager ``vipcast-speaker``),
in the background: a slow or unreachable API server never holds the drain up; the newest
state wins, a failed write is logged and tried again on the next change.
"""

from __future__ import annotations

import asyncio
import logging

import httpx2 as httpx
from lightkube import ApiError, AsyncClient
from lightkube.resources.core_v1 import Node
from lightkube.types import PatchType

from vipcast.core.drain import DRAIN_STATE_ANNOTATION

log = logging.getLogger(__name__)


class DrainReporter:
    def __init__(self, client: AsyncClient, node: str) -> None:
        self.client = client
        self.node = node
        self.written: str | None = None
        self._task: asyncio.Task[None] | None = None

    def offer(self, state: str) -> None:
        """Report ``state`` (the newest one replaces a write still under way)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = asyncio.get_running_loop().create_task(self._write(state))

    async def _write(self, state: str) -> None:
        value = None if state == "serving" else state
        body = {"metadata": {"annotations": {DRAIN_STATE_ANNOTATION: value}}}
        try:
            await self.client.patch(Node, self.node, body, patch_type=PatchType.MERGE,
                                    field_manager="vipcast-speaker")
        except (ApiError, httpx.HTTPError) as exc:
            log.warning("drain state %r not written on Node %s: %s", state, self.node, exc)
            return
        self.written = state

    async def stop(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
