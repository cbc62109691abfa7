"""The agent's small local HTTP endpoint: prometheus text on /metrics, JSON on /status.

Bound to a loopback address by default; the composition root passes the registry and a
callable that returns the status document, so this module holds no state of its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

StatusDocument = Callable[[], Mapping[str, Any]]


def parse_address(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT`` or ``PORT`` → (host, port)."""
    if text.isdigit():
        return default_host, int(text)
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
        return host, int(port)
    host, _, port = text.rpartition(":")
    return host or default_host, int(port)


class StatusServer:
    """Serves /metrics, /status and /healthz until :meth:`stop`."""

    def __init__(self, registry: CollectorRegistry, status: StatusDocument) -> None:
        self._registry = registry
        self._status = status
        self._runner: web.AppRunner | None = None
        self.bound: tuple[str, int] | None = None

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/status", self._status_json)
        app.router.add_get("/healthz", self._healthz)
        return app

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _status_json(self, request: web.Request) -> web.Response:
        return web.Response(
            text=json.dumps(self._status(), indent=2, default=str),
            content_type="application/json",
        )

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self._runner = web.AppRunner(self._app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server  # aiohttp keeps the asyncio server here; read the bound port
        sockets = getattr(server, "sockets", None) or []
        bound_port = int(sockets[0].getsockname()[1]) if sockets else port
        self.bound = (host, bound_port)
        return self.bound

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
