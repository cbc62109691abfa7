"""Whether a node's Envoy serves (what its Gateway VIPs' announcement waits for) follows the
ADS stream, not only the /ready poll: the stream's end withdraws at once; a new stream (a
restarted Envoy) serves only once it ACKed listeners itself -- what an earlier stream ACKed
says nothing about the new Envoy --; an old stream ending after the new one opened does not
mark the node disconnected. The ADS server is real (grpcio on a unix socket); Envoy's side of
the stream is a gRPC client sending what Envoy sends."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from vipcast.app.envoy_gateway import EnvoyGateway, GatewaySettings
from vipcast.core.gateway.model import ProxyModel
from vipcast.proto.xds import LISTENER, Acked
from vipcast.runtime.envoy import serve_ads


def _gateway(tmp_path: Path, seen: list[bool]) -> EnvoyGateway:
    gw = EnvoyGateway(GatewaySettings("n1", tmp_path, "/nonexistent/envoy"),
                      on_serving=seen.append)
    gw.apply(ProxyModel("n1"))
    return gw


def test_serving_follows_streams_and_their_own_acks(tmp_path: Path) -> None:
    seen: list[bool] = []
    gw = _gateway(tmp_path, seen)
    cache, version = gw.cache, gw.cache.versions[LISTENER]
    gw.process._set_ready(True)
    cache.stream_opened("n1")
    assert not gw.serving  # nothing ACKed on this stream yet
    cache.record("n1", Acked(LISTENER, version))
    assert gw.serving and seen == [True]
    # Envoy restarted: its new stream opens before the old one is seen closed
    cache.stream_opened("n1")
    assert not gw.serving  # the old stream's ACK does not count for the new Envoy
    cache.stream_closed("n1")  # the old one's end
    assert cache.reports["n1"].connected
    cache.record("n1", Acked(LISTENER, version))
    assert gw.serving
    # the stream ends (Envoy died): withdrawn at once, /ready still says 200 (not polled yet)
    cache.stream_closed("n1")
    assert gw.process.ready and not gw.serving
    assert seen == [True, False, True, False]


def test_a_real_stream_ending_withdraws(tmp_path: Path) -> None:
    async def go() -> list[bool]:
        seen: list[bool] = []
        gw = _gateway(tmp_path, seen)
        gw.process._set_ready(True)
        sock = tmp_path / "xds.sock"
        server = await serve_ads(gw.cache, str(sock))
        try:
            channel = grpc.aio.insecure_channel(f"unix:{sock}")
            stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
            requests: asyncio.Queue[discovery_pb2.DiscoveryRequest | None] = asyncio.Queue()

            async def send() -> object:
                while (req := await requests.get()) is not None:
                    yield req

            call = stub.StreamAggregatedResources(send())
            node = base_pb2.Node(id="n1")
            await requests.put(discovery_pb2.DiscoveryRequest(node=node, type_url=LISTENER))
            answer = await call.read()
            assert answer.type_url == LISTENER
            await requests.put(discovery_pb2.DiscoveryRequest(
                node=node, type_url=LISTENER, version_info=answer.version_info,
                response_nonce=answer.nonce))
            for _ in range(100):
                if gw.serving:
                    break
                await asyncio.sleep(0.02)
            assert gw.serving
            await channel.close()  # Envoy gone: the stream ends
            for _ in range(250):
                if not gw.serving:
                    break
                await asyncio.sleep(0.02)
            return seen
        finally:
            await server.stop(grace=0.1)

    assert asyncio.run(asyncio.wait_for(go(), 30)) == [True, False]
