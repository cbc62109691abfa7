"""The ADS server: xDS resources to the node's Envoy over gRPC on a local unix socket.

:class:`XdsCache` holds the current resources of every type and a content-hash version per
type (equal content, equal version: a restarted Envoy is fed the same versions). Each stream
runs the sans-IO :class:`~vipcast.proto.xds.SotwStream`; updates go out in make-before-break
order (clusters, endpoints, secrets, listeners, routes). ACKs and NACKs are recorded per node
(:meth:`XdsCache.report`) and passed to ``on_outcome``; a NACKed version is not resent, Envoy
keeps serving its last good configuration, and the next change is sent as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

from vipcast.proto.xds import (
    CLUSTER,
    ENDPOINT,
    LISTENER,
    ROUTE,
    TYPE_ORDER,
    WILDCARD,
    Acked,
    Nacked,
    Outcome,
    Request,
    SotwStream,
)

log = logging.getLogger(__name__)
_CHANGED = object()


@dataclass
class NodeReport:
    """What one node's Envoy accepted and refused, per type, on its current stream."""

    acked: dict[str, str] = field(default_factory=dict)
    #: type -> (refused version, Envoy's message); cleared when a later version is ACKed
    nacked: dict[str, tuple[str, str]] = field(default_factory=dict)
    acks: int = 0
    nacks: int = 0
    #: open ADS streams of this node (a restarted Envoy's new stream may open before the old
    #: one is seen closed: the old one's end must not mark the new one gone)
    streams: int = 0

    @property
    def connected(self) -> bool:
        return self.streams > 0


class XdsCache:
    """The resources Envoy should have; one per node agent."""

    def __init__(self, on_outcome: Callable[[str, Outcome], None] | None = None,
                 on_stream: Callable[[str, bool], None] | None = None) -> None:
        self._resources: dict[str, dict[str, Message]] = {t: {} for t in TYPE_ORDER}
        self._desired: dict[str, dict[str, Message]] = {t: {} for t in TYPE_ORDER}
        self._retired: dict[str, tuple[Message, Message | None]] = {}
        self._packed: dict[str, dict[str, any_pb2.Any]] = {t: {} for t in TYPE_ORDER}
        self.versions: dict[str, str] = {t: self._version({}) for t in TYPE_ORDER}
        self._queues: set[asyncio.Queue[object]] = set()
        self._on_outcome = on_outcome
        #: called with (node, connected) when a stream of a node's Envoy opens or closes
        #: (whether it serves can change: an observation, not a poll)
        self._on_stream = on_stream
        self.reports: dict[str, NodeReport] = {}
        self.updates = 0

    @staticmethod
    def _version(blobs: Mapping[str, bytes]) -> str:
        digest = hashlib.sha256()
        for name in sorted(blobs):
            digest.update(name.encode() + b"\0" + blobs[name] + b"\0")
        return digest.hexdigest()[:16]

    def update(self, resources: Mapping[str, Mapping[str, Message]]) -> set[str]:
        """Swap in a whole new set of resources; returns the types whose version moved.

        Make-before-break: a cluster the new routes no longer name stays (with its last
        endpoints) until Envoy ACKed the current routes — after a NACK of the new routes the
        last good ones still find their clusters.
        """
        self._desired = {t: dict(resources.get(t, {})) for t in TYPE_ORDER}
        current = self._resources[CLUSTER]
        for name in set(current) - set(self._desired[CLUSTER]):
            self._retired[name] = (current[name], self._resources[ENDPOINT].get(name))
        for name in self._desired[CLUSTER]:
            self._retired.pop(name, None)
        return self._publish()

    def _publish(self) -> set[str]:
        effective = {t: dict(v) for t, v in self._desired.items()}
        for name, (cluster, cla) in self._retired.items():
            effective[CLUSTER][name] = cluster
            if cla is not None:
                effective[ENDPOINT][name] = cla
        changed = set()
        for type_url in TYPE_ORDER:
            new = effective[type_url]
            version = self._version(
                {n: m.SerializeToString(deterministic=True) for n, m in new.items()})
            if version == self.versions[type_url]:
                continue
            self._resources[type_url] = new
            packed = {}
            for name, msg in new.items():
                any_msg = any_pb2.Any()
                any_msg.Pack(msg)
                packed[name] = any_msg
            self._packed[type_url] = packed
            self.versions[type_url] = version
            changed.add(type_url)
        if changed:
            self.updates += 1
            for q in self._queues:
                q.put_nowait(_CHANGED)
        return changed

    @property
    def retired(self) -> tuple[str, ...]:
        """Clusters kept only for routes Envoy has not yet replaced."""
        return tuple(sorted(self._retired))

    def packed(self, type_url: str, names: frozenset[str] | None) -> list[any_pb2.Any]:
        res = self._packed[type_url]
        chosen = sorted(res) if names is None else sorted(n for n in names if n in res)
        return [res[n] for n in chosen]

    def stream_opened(self, node: str) -> None:
        """A stream of ``node`` began: what it accepts is counted afresh (a new stream is a new
        or restarted Envoy; what an earlier one ACKed says nothing about this one's listeners,
        and a restarted Envoy whose first listeners are refused may still answer /ready)."""
        report = self.reports.setdefault(node, NodeReport())
        report.streams += 1
        report.acked = {}
        report.nacked = {}
        if self._on_stream is not None:
            self._on_stream(node, True)

    def stream_closed(self, node: str) -> None:
        report = self.reports.get(node)
        if report is None or report.streams == 0:
            return
        report.streams -= 1
        if self._on_stream is not None:
            self._on_stream(node, report.connected)

    def record(self, node: str, outcome: Outcome) -> None:
        report = self.reports.setdefault(node, NodeReport())
        if isinstance(outcome, Acked):
            report.acked[outcome.type_url] = outcome.version
            report.acks += 1
            stale = report.nacked.get(outcome.type_url)
            if stale is not None and stale[0] != outcome.version:
                del report.nacked[outcome.type_url]
        else:
            report.nacked[outcome.type_url] = (outcome.version, outcome.message)
            report.nacks += 1
            log.warning("envoy on %s refused %s version %s: %s", node,
                        outcome.type_url.rsplit(".", 1)[-1], outcome.version, outcome.message)
        if self._on_outcome is not None:
            self._on_outcome(node, outcome)
        if (isinstance(outcome, Acked) and outcome.type_url == ROUTE and self._retired
                and outcome.version == self.versions[ROUTE]):
            self._retired.clear()  # the routes that named them are gone: break after make
            self._publish()

    def in_sync(self, node: str) -> bool:
        """Whether ``node``'s Envoy ACKed the current version of every type it asked for."""
        report = self.reports.get(node)
        if report is None or not report.connected:
            return False
        return all(report.acked.get(t) == v for t, v in self.versions.items()
                   if t in report.acked or t in (LISTENER, CLUSTER))

    def subscribe(self) -> asyncio.Queue[object]:
        q: asyncio.Queue[object] = asyncio.Queue()
        self._queues.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[object]) -> None:
        self._queues.discard(q)


class AdsServicer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):  # type: ignore[misc]
    def __init__(self, cache: XdsCache) -> None:
        self._cache = cache

    async def StreamAggregatedResources(
        self, request_iterator: AsyncIterator[discovery_pb2.DiscoveryRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[discovery_pb2.DiscoveryResponse]:
        cache = self._cache
        queue = cache.subscribe()
        stream = SotwStream(WILDCARD)
        node = "?"

        async def read() -> None:
            try:
                async for req in request_iterator:
                    queue.put_nowait(req)
            finally:
                queue.put_nowait(None)

        reader = asyncio.create_task(read())
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                if isinstance(item, discovery_pb2.DiscoveryRequest):
                    if item.node.id and node == "?":
                        node = item.node.id
                        cache.stream_opened(node)
                    error = item.error_detail.message if item.HasField("error_detail") else None
                    outcome = stream.receive(Request(
                        item.type_url, item.version_info, item.response_nonce,
                        frozenset(item.resource_names), error))
                    if outcome is not None:
                        cache.record(node, outcome)
                for send in stream.due(cache.versions, TYPE_ORDER):
                    yield discovery_pb2.DiscoveryResponse(
                        version_info=send.version, type_url=send.type_url, nonce=send.nonce,
                        resources=cache.packed(send.type_url, send.names))
        finally:
            cache.unsubscribe(queue)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            if node != "?":
                cache.stream_closed(node)


async def serve_ads(cache: XdsCache, socket_path: str) -> grpc.aio.Server:
    """Start the ADS server on ``unix:socket_path`` (the caller stops it)."""
    server = grpc.aio.server()
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(AdsServicer(cache), server)
    server.add_insecure_port(f"unix:{socket_path}")
    await server.start()
    return server


__all__ = ["Acked", "AdsServicer", "Nacked", "NodeReport", "XdsCache", "serve_ads"]
