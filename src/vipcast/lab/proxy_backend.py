"""An HTTP backend behind a load balancer: reports the client address the LB passed on.

Run inside a namespace: ``python -m vipcast.lab.proxy_backend --id b1 --node n1 --port 8081``.
A connection may start with a PROXY protocol v2 header (HAProxy's ``send-proxy-v2``); the
request may carry ``X-Forwarded-For``. The JSON answer names the backend, its node, ``client``
(the PROXY source, else the first X-Forwarded-For address, else the peer) and ``peer`` (the
TCP peer: the load balancer). Health checks that close after the header are fine.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import struct

from vipcast.lab.arguments import OneLineParser, port

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def proxy_source(header: bytes) -> str | None:
    """The source address of a PROXY v2 header (16 bytes + address block), None for LOCAL."""
    ver_cmd, family = header[12], header[13]
    if ver_cmd & 0x0F == 0:  # LOCAL (health checks)
        return None
    block = header[16:]
    if family >> 4 == 1:
        return str(ipaddress.IPv4Address(block[:4]))
    if family >> 4 == 2:
        return str(ipaddress.IPv6Address(block[:16]))
    return None


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 identity: dict[str, object]) -> None:
    peer = str(writer.get_extra_info("peername")[0]).removeprefix("::ffff:")
    client = None
    try:
        first = await reader.readexactly(12)
        if first == SIGNATURE:
            rest = await reader.readexactly(4)
            (length,) = struct.unpack("!H", rest[2:])
            block = await reader.readexactly(length)
            client = proxy_source(first + rest + block)
            head = b""
        else:
            head = first
        head += await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        writer.close()
        return
    xff = None
    for line in head.decode(errors="replace").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "x-forwarded-for":
            xff = value.strip().split(",")[0].strip()
    body = json.dumps({**identity, "client": client or xff or peer, "peer": peer,
                       "xff": xff, "proxy": client}).encode()
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    writer.close()


async def serve(backend_id: str, node: str, port: int) -> None:
    identity: dict[str, object] = {"backend": backend_id, "node": node, "port": port}
    server = await asyncio.start_server(lambda r, w: handle(r, w, identity), "0.0.0.0", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = OneLineParser()
    parser.add_argument("--id", required=True)
    parser.add_argument("--node", default="")
    parser.add_argument("--port", type=port, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.id, args.node, args.port))


if __name__ == "__main__":
    main()
