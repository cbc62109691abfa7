"""How much /status costs the event loop that also runs BGP and BFD (issue 16).

A synthetic status document the size of a node with N routes (each route: prefix, peers,
services, like ``Agent.status_document``) is served by :class:`vipcast.obs.status_server.
StatusServer` on loopback; K clients ask at once, R rounds. A 2 ms ticker task on the same
loop records how late it ran (the loop's stall: what a BFD timer would see). Two servers side
by side in one run (the stall is the loop thread's CPU time between two ticks, so the load of
other processes on a shared machine does not count):

* reference: the old endpoint, the document built and encoded (``json.dumps(indent=2)``, in one
  piece) for every request;
* vipcast: :class:`StatusServer` with its defaults (one build per 0.5 s shared by concurrent
  requests, compact JSON encoded in pieces with the loop given back between them, 20
  requests/s).

Printed: builds, the worst loop stall, and the ratio reference/vipcast.

    .venv/bin/python bench/status_endpoint.py --routes 10000 --clients 4 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from vipcast.obs.status_server import StatusServer


def document(routes: int) -> dict[str, Any]:
    return {
        "node": "n1",
        "peers": [{"name": f"tor{i}", "address": f"198.18.0.{i}", "asn": 64512,
                   "state": "Established"} for i in range(2)],
        "routes": [{"prefix": f"198.51.{i // 256 % 256}.{i % 256}/32",
                    "peers": ["tor0", "tor1"], "services": [f"ns{i % 50}/svc{i}"]}
                   for i in range(routes)],
        "bfd": [{"peer": "198.18.0.1", "local_discr": 1, "remote_discr": 2, "state": "Up"}],
    }


class Reference:
    """The endpoint before issue 16: every request built and encoded the whole document."""

    def __init__(self, status: Any) -> None:
        self._status = status
        self._runner: web.AppRunner | None = None
        self.builds = 0

    async def _handle(self, request: web.Request) -> web.Response:
        self.builds += 1
        return web.Response(text=json.dumps(self._status(), indent=2, default=str),
                            content_type="application/json")

    async def start(self, host: str, port: int) -> tuple[str, int]:
        app = web.Application()
        app.router.add_get("/status", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        return host, int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def measure(server: StatusServer | Reference, clients: int, rounds: int
                  ) -> tuple[int, float, float]:
    host, port = await server.start("127.0.0.1", 0)
    worst = 0.0
    stop = asyncio.Event()

    async def ticker() -> None:
        # the loop thread's own CPU time between two ticks: what ran on the loop in between
        # (other processes' load on a shared machine does not count, unlike wall time)
        nonlocal worst
        while not stop.is_set():
            t = time.thread_time()
            await asyncio.sleep(0.002)
            worst = max(worst, time.thread_time() - t)

    tick = asyncio.create_task(ticker())
    t0 = time.perf_counter()
    try:
        async with aiohttp.ClientSession() as http:
            async def get() -> int:
                async with http.get(f"http://{host}:{port}/status") as resp:
                    await resp.read()
                    return resp.status

            for _ in range(rounds):
                await asyncio.gather(*(get() for _ in range(clients)))
                await asyncio.sleep(0.6)  # past the cache age: every round builds again
    finally:
        stop.set()
        await tick
        await server.stop()
    builds = server.builds if isinstance(server, Reference) else server.status_cache.builds
    return builds, worst, time.perf_counter() - t0


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--routes", type=int, default=10000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    doc = document(args.routes)
    build_s = time.perf_counter()
    json.dumps(doc, indent=2, default=str)
    build_s = time.perf_counter() - build_s
    reference = Reference(lambda: doc)
    ours = StatusServer(CollectorRegistry(), lambda: doc)
    ref_builds, ref_stall, _ = await measure(reference, args.clients, args.rounds)
    our_builds, our_stall, _ = await measure(ours, args.clients, args.rounds)
    print(f"routes={args.routes} clients={args.clients} rounds={args.rounds} "
          f"(one JSON encoding: {build_s * 1000:.0f} ms)")
    print(f"{'':10} {'builds':>7} {'worst loop stall ms':>20}")
    print(f"{'reference':10} {ref_builds:>7} {ref_stall * 1000:>20.0f}")
    print(f"{'vipcast':10} {our_builds:>7} {our_stall * 1000:>20.0f}")
    print(f"ratio reference/vipcast: builds {ref_builds / max(1, our_builds):.1f}x, "
          f"worst stall {ref_stall / max(our_stall, 1e-6):.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
