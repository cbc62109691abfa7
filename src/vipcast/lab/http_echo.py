"""An HTTP echo backend for the gateway tests: every request is answered 200 with what arrived.

``python -m vipcast.lab.http_echo --id b1 --port 8080 [--bind ::]`` prints ``ready`` once
listening. The JSON body names the backend and echoes method, path, query, headers and the
peer address (so a test sees X-Forwarded-For, Host, rewrites as the backend saw them).
``/ws`` accepts a websocket upgrade and echoes each text message prefixed with the backend id.
``?sleep=SECONDS`` holds the answer (for drain tests). Keep-alive as HTTP/1.1 does.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

from aiohttp import WSMsgType, web

from vipcast.lab.arguments import OneLineParser, ip_address, port


def make_app(identity: str) -> web.Application:
    async def echo(request: web.Request) -> web.StreamResponse:
        if request.path == "/ws" and request.headers.get("Upgrade", "").lower() == "websocket":
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await ws.send_str(f"{identity}:{msg.data}")
            return ws
        delay = request.query.get("sleep")
        if delay:
            await asyncio.sleep(min(float(delay), 30.0))
        headers: dict[str, str] = {}
        for k, v in request.headers.items():  # repeated headers joined as one list
            key = k.lower()
            headers[key] = f"{headers[key]},{v}" if key in headers else v
        peer = request.transport.get_extra_info("peername") if request.transport else None
        return web.json_response({
            "backend": identity,
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "headers": headers,
            "client": peer[0] if peer else None,
        })

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(description=__doc__)
    parser.add_argument("--id", required=True)
    parser.add_argument("--port", type=port, default=8080)
    parser.add_argument("--bind", type=ip_address, default="::")
    args = parser.parse_args(argv)

    async def serve() -> None:
        runner = web.AppRunner(make_app(args.id), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, args.bind, args.port).start()
        print("ready", flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
