"""The speaker's writer of its ``NodeAnnouncement`` (see :mod:`.announcements`).

It never blocks the node's plan pipeline: ``offer`` (called with every plan the agent
computes, from any thread) only records the newest report; a background task (``run``)
writes it with server-side apply (object, then its ``/status``) under the field manager
``vipcast-speaker``, retrying with backoff while the API server is unreachable, and skipping
writes that would not change anything.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping

import httpx2 as httpx
from lightkube import ApiError, AsyncClient

from vipcast.core.backoff import Backoff
from vipcast.core.desired import NodePlan
from vipcast.sources.kube.announcements import (
    SPEAKER_FIELD_MANAGER,
    GatewayReport,
    NodeAnnouncementStatus,
    node_report,
    report_body,
)
from vipcast.sources.kube.resources import NODE_ANNOUNCEMENTS

log = logging.getLogger(__name__)


class AnnouncementReporter:
    """Writes what this node announces, and why it withholds the rest."""

    def __init__(self, client: AsyncClient, node: str,
                 field_manager: str = SPEAKER_FIELD_MANAGER) -> None:
        self.client = client
        self.node = node
        self.field_manager = field_manager
        self.wanted: NodeAnnouncementStatus | None = None
        self.written: NodeAnnouncementStatus | None = None
        self._created = False
        self._changed = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.writes = 0
        self.errors = 0
        self._inputs: tuple[NodePlan, Mapping[str, tuple[str, ...]], NodePlan | None] | None = None
        self._l2_answered: frozenset[str] | None = None
        #: the node's gateway section (None: no gateway here)
        self._gateway: GatewayReport | None = None

    def offer(self, plan: NodePlan, committed: Mapping[str, tuple[str, ...]],
              selected: NodePlan | None = None) -> None:
        """The newest plan (``selected``: before verification; ``committed``: the addresses in
        Service status this node may announce)."""
        self._inputs = (plan, committed, selected)
        self._report()

    def set_l2_answered(self, answered: frozenset[str] | None) -> None:
        """The L2 addresses this node answers now (None: unknown, the static owner counts);
        reports again if that changes."""
        if answered != self._l2_answered:
            self._l2_answered = answered
            self._report()

    def set_gateway(self, report: GatewayReport | None) -> None:
        """What the node's Envoy refuses now; reports again if that changes."""
        if report != self._gateway:
            self._gateway = report
            self._report()

    def _report(self) -> None:
        if self._inputs is None:
            return
        plan, committed, selected = self._inputs
        self.wanted = node_report(plan, committed, selected, self._l2_answered)
        if self._gateway is not None:
            self.wanted = self.wanted.model_copy(update={"gateway": self._gateway})
        if self.wanted != self.written and self._loop is not None:
            self._loop.call_soon_threadsafe(self._changed.set)

    async def run(self, backoff: Backoff | None = None, seed: int | None = None) -> None:
        """Write each new report (cancel to stop)."""
        backoff = backoff or Backoff(base=0.5, cap=30.0, jitter=0.2, rng=random.Random(seed))
        self._loop = asyncio.get_running_loop()
        if self.wanted is not None:
            self._changed.set()
        while True:
            await self._changed.wait()
            self._changed.clear()
            wanted = self.wanted
            if wanted is None or wanted == self.written:
                continue
            if await self._write(wanted):
                self.written = wanted
                backoff.reset()
            else:
                self._changed.set()
                await asyncio.sleep(backoff.next_delay())

    async def _write(self, status: NodeAnnouncementStatus) -> bool:
        res = NODE_ANNOUNCEMENTS.resource
        try:
            if not self._created:
                await self.client.apply(res.from_dict(report_body(self.node)), self.node,
                                        field_manager=self.field_manager, force=True)
                self._created = True
            await self.client.apply(res.Status.from_dict(report_body(self.node, status)),
                                    self.node, field_manager=self.field_manager, force=True)
        except ApiError as exc:
            if exc.status.code == 404:
                self._created = False  # deleted under us: create it again
            self.errors += 1
            log.warning("NodeAnnouncement %s not written: %s", self.node, exc.status.message)
            return False
        except (httpx.HTTPError, OSError) as exc:
            self.errors += 1
            log.warning("NodeAnnouncement %s not written: %s", self.node, exc)
            return False
        self.writes += 1
        return True
