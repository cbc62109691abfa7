"""A stopping TLS webhook server closes every accepted socket, even to a peer that goes silent.

Seen once under load: ``ResourceWarning: unclosed transport <_SelectorSocketTransport>`` for a
127.0.0.1 socket accepted in the pytest process, raised at a later garbage collection. Cause:
aiohttp's ``AppRunner.cleanup()`` closes a kept-alive TLS connection by sending close_notify and
waiting for the peer's answer; when the event loop ended first, the raw socket stayed open.
"""

from __future__ import annotations

import asyncio
import gc
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from vipcast.sources.kube.webhook import stop_tls_runner


def _cert(tmp: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    cert, key = tmp / "tls.crt", tmp / "tls.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60)
    return cert, key


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def test_stop_closes_a_kept_alive_tls_connection_whose_peer_is_silent(tmp_path: Path) -> None:
    cert, key = _cert(tmp_path)
    answered, release = threading.Event(), threading.Event()
    seen: list[bytes] = []

    def silent_peer(port: int) -> None:
        # a blocking TLS client: one keep-alive request, then no reads (no close_notify answer)
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        with context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30)) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            seen.append(s.recv(64))
            answered.set()
            release.wait(60)

    async def serve_and_stop() -> list[Any]:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert), str(key))
        app = web.Application()
        app.router.add_get("/", _ok)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        peer = threading.Thread(target=silent_peer, args=(port,), daemon=True)
        peer.start()
        assert await asyncio.to_thread(answered.wait, 30), "the peer got no answer"
        server = runner.server
        assert server is not None and len(server.connections) == 1  # kept alive
        sockets = [h.transport.get_extra_info("socket") for h in server.connections
                   if h.transport is not None]
        await stop_tls_runner(runner, grace=0.5)
        assert [s.fileno() for s in sockets] == [-1], "stop returned, the socket still open"
        return sockets

    unraisable: list[Any] = []
    previous = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    try:
        sockets = asyncio.run(serve_and_stop())
        gc.collect()
    finally:
        sys.unraisablehook = previous
        release.set()
    assert seen and seen[0].startswith(b"HTTP/1.1 200")
    assert [s.fileno() for s in sockets] == [-1], "the accepted socket is still open"
    assert [str(u.exc_value) for u in unraisable] == []
