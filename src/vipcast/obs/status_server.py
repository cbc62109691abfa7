"""The agent's small local HTTP endpoint: prometheus text on /metrics, JSON on /status.

Bound to a loopback address by default (the speaker runs on the host network: anything else
exposes it to the node's networks); the composition root passes the registry and a callable
that returns the status document, so this module holds no state of its own beyond a cache.

The document and the metrics are built on the event loop that also runs BGP and BFD (~75 ms
for /status at 10k routes), so they are built at most once per ``max_age`` seconds however
many clients ask (concurrent requests share one build), and requests beyond ``rate`` a second
(burst ``burst``) are answered ``429`` with ``Retry-After``. The JSON is compact and encoded
in pieces with the loop given back between them (:func:`encode`). BFD discriminators (what a
spoofed BFD packet would need) are never shown.

aiohttp (with its TLS setup, the biggest import of an agent start) is imported only when
serving starts (:meth:`StatusServer.start`), not with this module: the agent starts serving
after its first plan is handed to BGP.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

if TYPE_CHECKING:
    from aiohttp import web

StatusDocument = Callable[[], Mapping[str, Any]]
#: keys never shown on /status, at any depth
REDACTED = frozenset({"local_discr", "remote_discr", "discriminator", "password",
                      "md5_password"})


def redacted(value: Any) -> Any:
    """``value`` without the :data:`REDACTED` keys (dicts, lists and tuples walked)."""
    kind = type(value)
    if kind is dict:
        return {k: redacted(v) for k, v in value.items() if k not in REDACTED}
    if kind is list or kind is tuple:
        return [redacted(v) for v in value]
    if isinstance(value, Mapping):
        return {k: redacted(v) for k, v in value.items() if k not in REDACTED}
    return value


#: list items encoded between two yields to the event loop
CHUNK = 256


async def encode(value: Any) -> str:
    """``value`` redacted and as compact JSON, yielding to the event loop between pieces (a
    long list every :data:`CHUNK` items), so a big document never stalls BGP or BFD timers
    for more than one piece's worth."""
    if isinstance(value, Mapping):
        parts = []
        for key, item in value.items():
            if key in REDACTED:
                continue
            parts.append(f"{json.dumps(str(key))}:{await encode(item)}")
        return "{" + ",".join(parts) + "}"
    if isinstance(value, list | tuple) and len(value) > CHUNK:
        pieces = []
        for i in range(0, len(value), CHUNK):
            piece = json.dumps(redacted(list(value[i:i + CHUNK])), default=str)
            pieces.append(piece[1:-1])
            await asyncio.sleep(0)
        return "[" + ",".join(p for p in pieces if p) + "]"
    return json.dumps(redacted(value), default=str)


@dataclass
class TokenBucket:
    """``rate`` tokens a second up to ``burst``; :meth:`take` answers the wait if empty."""

    rate: float
    burst: float
    clock: Callable[[], float] = time.monotonic
    _tokens: float = -1.0
    _at: float = 0.0

    def take(self) -> float:
        """0 when a token was taken, else the seconds until one is there."""
        now = self.clock()
        if self._tokens < 0:
            self._tokens, self._at = self.burst, now
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self.rate


class _Cached:
    """One value built at most once per ``max_age`` seconds; callers during a build share it."""

    def __init__(self, build: Callable[[], Awaitable[bytes]], max_age: float) -> None:
        self._build = build
        self._max_age = max_age
        self._value: bytes | None = None
        self._at = 0.0
        self._pending: asyncio.Future[bytes] | None = None
        self.builds = 0

    async def get(self) -> bytes:
        loop = asyncio.get_running_loop()
        if self._value is not None and loop.time() - self._at < self._max_age:
            return self._value
        if self._pending is not None:
            return await asyncio.shield(self._pending)
        self._pending = loop.create_future()
        try:
            value = await self._build()
        except BaseException as exc:
            self._pending.set_exception(exc)
            self._pending.exception()  # retrieved: no "never retrieved" warning if unshared
            raise
        else:
            self._pending.set_result(value)
            self._value, self._at = value, loop.time()
            self.builds += 1
            return value
        finally:
            self._pending = None


class StatusServer:
    """Serves /metrics, /status, /healthz and /readyz until :meth:`stop`."""

    def __init__(self, registry: CollectorRegistry, status: StatusDocument, *,
                 max_age: float = 0.5, rate: float = 20.0, burst: float = 20.0,
                 ready: Callable[[], bool] | None = None) -> None:
        self._registry = registry
        self._status = status
        self._ready = ready
        self._runner: web.AppRunner | None = None
        self._bucket = TokenBucket(rate, burst)
        self.status_cache = _Cached(self._build_status, max_age)
        self.metrics_cache = _Cached(self._build_metrics, max_age)
        self.limited = 0
        self.bound: tuple[str, int] | None = None
        self._socket: socket.socket | None = None

    def _app(self) -> web.Application:
        from aiohttp import web  # imported when serving starts: ~0.1-0.3 s the start skips

        app = web.Application(client_max_size=1024)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/status", self._status_json)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        return app

    async def _build_status(self) -> bytes:
        return (await encode(self._status())).encode()

    async def _build_metrics(self) -> bytes:
        return generate_latest(self._registry)

    def _too_many(self) -> web.Response | None:
        from aiohttp import web

        wait = self._bucket.take()
        if wait <= 0:
            return None
        self.limited += 1
        return web.Response(status=429, text="too many requests\n",
                            headers={"Retry-After": str(max(1, round(wait + 0.5)))})

    async def _metrics(self, request: web.Request) -> web.Response:
        from aiohttp import web

        if (refused := self._too_many()) is not None:
            return refused
        body = await self.metrics_cache.get()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _status_json(self, request: web.Request) -> web.Response:
        from aiohttp import web

        if (refused := self._too_many()) is not None:
            return refused
        body = await self.status_cache.get()
        return web.Response(body=body, content_type="application/json")

    async def _healthz(self, request: web.Request) -> web.Response:
        from aiohttp import web

        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        from aiohttp import web

        ok = self._ready is None or self._ready()
        return web.Response(status=200 if ok else 503, text="ok\n" if ok else "not ready\n")

    def bind(self, host: str, port: int) -> tuple[str, int]:
        """Bind and listen now (a busy port fails here, before anything is announced); serve
        from :meth:`start`. Answers (host, bound port)."""
        family, _, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        self._socket = socket.create_server(address, family=family)
        self.bound = (host, int(self._socket.getsockname()[1]))
        return self.bound

    async def start(self, host: str | None = None, port: int | None = None) -> tuple[str, int]:
        """Serve on the socket :meth:`bind` opened, else on ``host``:``port`` bound now."""
        from aiohttp import web

        if self._socket is None:
            assert host is not None and port is not None, "start(host, port) or bind() first"
            self.bind(host, port)
        assert self._socket is not None and self.bound is not None
        self._runner = web.AppRunner(self._app(), access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, self._socket).start()
        return self.bound

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
