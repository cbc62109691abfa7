"""The validating admission webhook server (HTTPS, aiohttp) for vipcast's kinds.

``POST /validate`` answers AdmissionReview v1 with :func:`~vipcast.sources.kube.admission.
review` against a reflector cache of our objects; ``GET /healthz`` answers 200 once the cache
is synced. TLS certificate and key come from files (cert-manager or a Secret in a cluster),
watched: when they change (a renewal rewrites the mounted Secret) the new pair is loaded for
every later handshake, without a restart; a pair that does not load (half written) leaves the
current one in use until the next look.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import Collection
from pathlib import Path

from aiohttp import web
from lightkube import AsyncClient

from vipcast.sources.kube.admission import review
from vipcast.sources.kube.reflector import Reflector, snapshots
from vipcast.sources.kube.resources import OUR_KINDS

log = logging.getLogger(__name__)


class WebhookServer:
    def __init__(self, client: AsyncClient, cert: Path, key: Path, host: str = "0.0.0.0",
                 port: int = 9443, *, speakers: Collection[str] = (),
                 cert_check_every: float = 2.0) -> None:
        self.reflectors = [Reflector(client, w, lambda: None) for w in OUR_KINDS]
        self.cert, self.key, self.host, self.port = cert, key, host, port
        #: usernames of the speakers' ServiceAccounts (each may write its node's report only)
        self.speakers = frozenset(speakers)
        self.cert_check_every = cert_check_every
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._context: ssl.SSLContext | None = None
        self._loaded: tuple[bytes, bytes] = (b"", b"")
        self.reviews = 0
        self.reloads = 0
        self.bound: tuple[str, int] | None = None

    def _read_pair(self) -> tuple[bytes, bytes]:
        return self.cert.read_bytes(), self.key.read_bytes()

    def _load(self, context: ssl.SSLContext) -> bool:
        """Load the files into ``context`` if they changed; True when a new pair is in use."""
        try:
            pair = self._read_pair()
        except OSError as exc:
            log.warning("webhook certificate not readable (%s); keeping the current one", exc)
            return False
        if pair == self._loaded:
            return False
        try:
            context.load_cert_chain(str(self.cert), str(self.key))
        except (ssl.SSLError, OSError, ValueError) as exc:
            log.warning("webhook certificate did not load (%s); keeping the current one", exc)
            return False
        self._loaded = pair
        return True

    async def _watch_certificate(self) -> None:
        while True:
            await asyncio.sleep(self.cert_check_every)
            if self._context is not None and self._load(self._context):
                self.reloads += 1
                log.info("webhook certificate reloaded from %s", self.cert)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_post("/validate", self._validate)
        app.router.add_get("/healthz", self._healthz)
        return app

    async def _healthz(self, request: web.Request) -> web.Response:
        ok = all(r.synced.is_set() for r in self.reflectors)
        return web.Response(status=200 if ok else 503, text="ok" if ok else "syncing")

    async def _validate(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return web.Response(status=400, text="not an AdmissionReview")
        if not isinstance(body, dict):
            return web.Response(status=400, text="not an AdmissionReview")
        existing = snapshots(self.reflectors)
        answer = review(body, existing, self.speakers)
        self.reviews += 1
        resp = answer["response"]
        if not resp["allowed"]:
            log.info("denied %s: %s", (body.get("request") or {}).get("name"),
                     resp["status"]["message"])
        return web.json_response(answer, dumps=json.dumps)

    async def start(self, sync_timeout: float = 60.0) -> tuple[str, int]:
        self._tasks = [asyncio.create_task(r.run(), name=f"webhook-{r.kind}")
                       for r in self.reflectors]
        async with asyncio.timeout(sync_timeout):
            for r in self.reflectors:
                await r.synced.wait()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.cert), str(self.key))  # the first must load
        self._loaded = self._read_pair()
        self._context = context
        self._tasks.append(asyncio.create_task(self._watch_certificate(),
                                               name="webhook-certificate"))
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=context)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        name = sockets[0].getsockname() if sockets else (self.host, self.port)
        self.bound = (str(name[0]), int(name[1]))
        log.info("admission webhook on https://%s:%s/validate", *self.bound)
        return self.bound

    async def stop(self, grace: float = 2.0) -> None:
        if self._runner is not None:
            await stop_tls_runner(self._runner, grace)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def stop_tls_runner(runner: web.AppRunner, grace: float = 2.0) -> None:
    """Stop an aiohttp TLS server so that no accepted socket outlives it.

    ``runner.cleanup()`` closes each kept-alive connection the TLS way: it sends close_notify
    and leaves the socket open until the peer answers (the API server keeps its webhook
    connections alive). A peer that does not answer before the event loop ends left the raw
    socket open, reported later as "unclosed transport" at garbage collection. So: wait for the
    peers at most ``grace`` seconds, then abort what is still open.
    """
    server = runner.server
    transports = [h.transport for h in (server.connections if server else [])
                  if h.transport is not None]
    await runner.cleanup()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while any(_open(t) for t in transports) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    aborted = [t for t in transports if _open(t)]
    for transport in aborted:
        transport.abort()
    if aborted:
        await asyncio.sleep(0)  # abort() closes the socket in a callback: let it run now


def _open(transport: asyncio.BaseTransport) -> bool:
    sock = transport.get_extra_info("socket")
    return sock is not None and sock.fileno() != -1
