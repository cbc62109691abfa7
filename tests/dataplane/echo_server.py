"""A tiny HTTP/1.1 echo backend: answers every request with ``<name> <client-ip>``.

Run inside a backend namespace: ``python3 echo_server.py PORT NAME [HOST]`` (default: all
addresses, IPv4 and IPv6). Keep-alive aware
(for wrk), standard library only, stops on SIGTERM. ``/healthz`` answers 200 unless the file
``$ECHO_UNHEALTHY`` exists (then 503), so tests can fail a health check without killing it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str) -> None:
    peer = writer.get_extra_info("peername")
    client = peer[0] if peer else "?"
    if client.startswith("::ffff:") and "." in client:
        client = client[len("::ffff:"):]
    flag = os.environ.get("ECHO_UNHEALTHY", "")
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            line = head.split(b"\r\n", 1)[0].split()
            path = line[1].decode() if len(line) > 1 else "/"
            status = "200 OK"
            if path == "/healthz" and flag and os.path.exists(flag):
                status = "503 Service Unavailable"
            body = f"{name} {client}\n".encode()
            close = b"HTTP/1.0" in head.split(b"\r\n", 1)[0] or b"connection: close" in head.lower()
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n"
                f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n".encode() + body
            )
            await writer.drain()
            if close:
                break
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port: int, name: str, host: str | None) -> None:
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, name), host=host, port=port, reuse_address=True, backlog=1024
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print(f"echo {name} listening on {host}:{port}", flush=True)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))
