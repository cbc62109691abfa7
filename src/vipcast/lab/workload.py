"""The lab's workload: HTTP backends that echo who served and whom they saw, and a bounded client.

Run inside a namespace (``ip netns exec NS python -m vipcast.lab.workload ...``):

- ``serve --host H --port P --name B --node N [--udp-port U]`` answers every request with one
  JSON line ``{"backend": B, "node": N, "client": "<source address it saw>", "port": P}``, over
  HTTP on TCP port P (``--host ""``: every address of both families) and, for any datagram, on
  UDP port U (default P; 0: none), and prints ``ready`` once listening. The lab's one HTTP
  backend (:func:`vipcast.lab.backends.start_backend` runs it too);
- ``load --url URL --count C --interval S --timeout T --max-seconds M
  [--response-timeout R]`` sends at most C requests (one new TCP connection each, so ECMP
  hashing spreads them), at most M seconds, and prints one JSON line per request:
  ``{"t": seconds since start, "ok": bool, "backend": ..., "node": ..., "client": ...,
  "error": ..., "phase": "connect"|"response", "connect_s": ..., "seconds": ...,
  "sport": the client's source port}``. ``T``
  bounds the TCP handshake (the path), ``R`` (default ``T``) the answer (the backend process).
  With ``--t0 EPOCH`` (a ``time.time()`` value
  of the caller) ``t`` counts from that instant instead, so the caller can place its own
  events (a node killed) on the same time line without the interpreter's start-up in between.
  A request slot missed while an earlier request waited for its timeout is skipped, not
  caught up in a burst, so the request rate stays flat across a failure.

Both are bounded and stop by themselves; the lab kills servers by PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import http.client
import json
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

from vipcast.lab.arguments import OneLineParser, port


@dataclass(frozen=True)
class Sample:
    t: float
    ok: bool
    backend: str | None = None
    node: str | None = None
    client: str | None = None
    #: the pod address that answered and the X-Forwarded-For it saw (through the L7 gateway)
    pod: str | None = None
    forwarded: str | None = None
    error: str | None = None
    #: where a failed request failed: "connect" (the path) or "response" (the backend)
    phase: str | None = None
    #: seconds to the completed TCP handshake, and to the end of the request
    connect_s: float | None = None
    seconds: float | None = None
    #: the client's TCP source port (also of a failed connect): finds the request in the
    #: nodes' conntrack tables (which node got it, which backend it was DNATed to)
    sport: int | None = None


async def _answer(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str, node: str
) -> None:
    try:
        while True:
            async with asyncio.timeout(10):  # not wait_for: see runtime/envoy/process.py
                head = await reader.readuntil(b"\r\n\r\n")
            if not head:
                break
            peer = writer.get_extra_info("peername")
            local = writer.get_extra_info("sockname")
            answer = {"backend": name, "node": node, "client": _client(peer[0]),
                      "port": local[1]}
            # behind the L7 gateway: the pod address it was reached at, and the client Envoy
            # put in X-Forwarded-For (what the backend sees of the real client)
            answer["pod"] = _client(local[0])
            for line in head.split(b"\r\n")[1:]:
                key, _, value = line.partition(b":")
                if key.strip().lower() == b"x-forwarded-for":
                    answer["forwarded"] = value.strip().decode(errors="replace")
            body = json.dumps(answer).encode() + b"\n"
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            break
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
        pass
    finally:
        writer.close()


class _UdpAnswer(asyncio.DatagramProtocol):
    """Answers every datagram with the same JSON line as an HTTP answer (a UDP backend for the
    lab's UDP services: their VIP ports are verified by an answer, docs/dataplane.md)."""

    def __init__(self, name: str, node: str, port: int) -> None:
        self.name, self.node, self.port = name, node, port
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if self.transport is not None:
            body = {"backend": self.name, "node": self.node, "client": _client(str(addr[0])),
                    "port": self.port}
            self.transport.sendto(json.dumps(body).encode() + b"\n", addr)


def _client(address: str) -> str:
    """An address as the peer has it (an IPv4 client of a dual-stack socket without ::ffff:)."""
    return address.removeprefix("::ffff:")


async def serve(host: str, port: int, name: str, node: str, udp_port: int | None = None) -> None:
    """Answer on TCP ``port`` of ``host`` ("": every address, both families) and on UDP
    ``udp_port`` (None: the same port; 0: no UDP); print ``ready`` once both listen."""
    server = await asyncio.start_server(
        lambda r, w: _answer(r, w, name, node), host=host, port=port, reuse_address=True
    )
    transport: asyncio.DatagramTransport | None = None
    udp_port = port if udp_port is None else udp_port
    if udp_port:
        udp = socket.socket(socket.AF_INET6 if not host or ":" in host else socket.AF_INET,
                            socket.SOCK_DGRAM)
        if udp.family == socket.AF_INET6:
            udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        udp.bind((host or "::", udp_port))
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _UdpAnswer(name, node, udp_port), sock=udp)
    print("ready", flush=True)
    try:
        async with server:
            await server.serve_forever()
    finally:
        if transport is not None:
            transport.close()


def request(url: str, timeout: float, response_timeout: float | None = None,
            host: str | None = None) -> Sample:
    """One GET on a new connection; the outcome as a Sample (t filled by the caller).

    ``timeout`` bounds the TCP handshake: the kernels on the path answer it (SYN-ACK), so it
    tests the path (routes, ARP, DNAT, a live backend host) and stays fast on a busy machine.
    ``response_timeout`` (default: ``timeout``) bounds the answer, which needs the backend
    process to be scheduled: on a loaded machine that can take longer than any path event.
    """
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or 80)
    conn = http.client.HTTPConnection(*address, timeout=timeout)
    phase = "connect"
    start = time.monotonic()
    connected: float | None = None
    sport: int | None = None
    try:
        # the socket by hand rather than conn.connect(): its source port is known even when
        # the handshake fails (create_connection closes a failed socket before returning)
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        conn.sock = sock
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        finally:
            with contextlib.suppress(OSError):
                sport = sock.getsockname()[1] or None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connected = time.monotonic() - start
        phase = "response"
        assert conn.sock is not None
        conn.sock.settimeout(timeout if response_timeout is None else response_timeout)
        headers = {"Connection": "close", **({"Host": host} if host else {})}
        conn.request("GET", parts.path or "/", headers=headers)
        resp = conn.getresponse()
        data = json.loads(resp.read() or b"{}")
        if resp.status != 200:
            return Sample(0.0, False, error=f"HTTP {resp.status}", phase=phase,
                          connect_s=_ms(connected), seconds=_ms(time.monotonic() - start),
                          sport=sport)
        return Sample(0.0, True, data.get("backend"), data.get("node"), data.get("client"),
                      data.get("pod"), data.get("forwarded"), connect_s=_ms(connected),
                      seconds=_ms(time.monotonic() - start), sport=sport)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        error = type(exc).__name__
        if type(exc) is OSError and exc.errno is not None:  # e.g. an ICMP unreachable
            error += f" {errno.errorcode.get(exc.errno, exc.errno)}"
        return Sample(0.0, False, error=error, phase=phase,
                      connect_s=_ms(connected), seconds=_ms(time.monotonic() - start),
                      sport=sport)
    finally:
        conn.close()


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 4)


def load(
    url: str, count: int, interval: float, timeout: float, max_seconds: float,
    t0: float | None = None, response_timeout: float | None = None, host: str | None = None,
) -> Iterator[Sample]:
    """At most ``count`` requests, at most ``max_seconds``, one every ``interval`` seconds.

    ``t`` of each sample counts from ``t0`` (wall clock) when given, else from the start.
    """
    start = time.monotonic()
    offset = 0.0 if t0 is None else time.time() - t0
    slot = 0
    for _ in range(count):
        now = time.monotonic()
        if now - start > max_seconds:
            return
        # the next slot not yet passed (slots missed during a slow request are skipped)
        slot = max(slot, int((now - start) / interval + 0.999)) if interval > 0 else slot
        due = start + slot * interval
        slot += 1
        if due > now:
            time.sleep(due - now)
        t = time.monotonic() - start + offset
        yield replace(request(url, timeout, response_timeout, host), t=round(t, 4))


class _InNamespace(Protocol):
    def exec_argv(self, argv: list[str]) -> list[str]: ...


class ClientLoad:
    """A ``load`` run in the background in a namespace, on the caller's time line.

    ``t`` of every sample and :meth:`now` count from the same wall-clock instant ``t0``, so a
    failure injected at ``load.now()`` lines up with the samples whatever the start-up delay.
    """

    def __init__(self, ns: _InNamespace, url: str, *, duration: float, interval: float = 0.02,
                 timeout: float = 0.25, response_timeout: float | None = None,
                 host: str | None = None) -> None:
        self.t0 = time.time()
        self.url = url
        self.duration = duration
        #: what :meth:`wait_started` read of the output
        self._head = ""
        count = int(duration / interval) + 1
        self._proc = subprocess.Popen(
            ns.exec_argv([sys.executable, "-m", "vipcast.lab.workload", "load", "--url", url,
                          "--count", str(count), "--interval", str(interval), "--timeout",
                          str(timeout), "--max-seconds", str(duration), "--t0", str(self.t0),
                          *(["--response-timeout", str(response_timeout)]
                            if response_timeout is not None else []),
                          *(["--host-header", host] if host else [])]),
            stdout=subprocess.PIPE, text=True,
        )

    def now(self) -> float:
        return time.time() - self.t0

    def wait_started(self, timeout: float = 60.0) -> bool:
        """Wait until the client has finished its first request (True; False: not within
        ``timeout``). Its interpreter's start-up takes seconds on a loaded machine (11 s at
        load 27, seen): a failure injected before then meets no traffic at all."""
        assert self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        line = b""
        # raw reads of the pipe, byte by byte: a buffered read could take more than the line,
        # and communicate() (in samples()) reads the pipe's descriptor, not the buffer
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                break
            byte = os.read(fd, 1)
            if not byte:
                break
            line += byte
        self._head += line.decode()
        return line.endswith(b"\n")

    def stop(self) -> None:
        """End the run now; :meth:`samples` then returns those taken so far (each is written
        and flushed as it is taken)."""
        if self._proc.poll() is None:
            self._proc.terminate()

    def samples(self) -> list[Sample]:
        """Wait for the run to end (bounded) and return its samples."""
        try:
            out, _ = self._proc.communicate(timeout=self.duration + 30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            out, _ = self._proc.communicate()
        out = self._head + out
        return [Sample(**json.loads(line)) for line in out.splitlines() if line.strip()]


def wait_all_started(loads: Iterable[ClientLoad], timeout: float = 60.0) -> None:
    """Wait until every load has finished its first request (:meth:`ClientLoad.wait_started`,
    ``timeout`` in all); RuntimeError naming the load's URL when one has not: a change made
    before then would meet no traffic, and what it measures would mean nothing."""
    deadline = time.monotonic() + timeout
    for each in loads:
        if not each.wait_started(max(0.0, deadline - time.monotonic())):
            each.stop()
            raise RuntimeError(f"the client load of {each.url} finished no request within "
                               f"{timeout:.0f} s")

def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m vipcast.lab.workload")
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--host", required=True, help="address to listen on (\"\": every one)")
    s.add_argument("--port", type=port, default=8080)
    s.add_argument("--name", required=True)
    s.add_argument("--node", default="")
    s.add_argument("--udp-port", type=port, default=None,
                   help="UDP port of the same answers (default: --port; 0: no UDP)")
    c = sub.add_parser("load")
    c.add_argument("--url", required=True)
    c.add_argument("--count", type=int, default=100)
    c.add_argument("--interval", type=float, default=0.01)
    c.add_argument("--timeout", type=float, default=0.5)
    c.add_argument("--max-seconds", type=float, default=30.0)
    c.add_argument("--response-timeout", type=float, default=None,
                   help="bound on the answer once connected (default: --timeout)")
    c.add_argument("--t0", type=float, default=None, help="time.time() that t counts from")
    c.add_argument("--host-header", default=None, help="the Host header (L7 routing)")
    args = parser.parse_args(argv)
    if args.cmd == "serve":
        asyncio.run(serve(args.host, args.port, args.name, args.node, args.udp_port))
        return 0
    for sample in load(
        args.url,
        min(args.count, 100_000),
        args.interval,
        args.timeout,
        min(args.max_seconds, 600.0),
        args.t0,
        args.response_timeout,
        args.host_header,
    ):
        sys.stdout.write(json.dumps(asdict(sample)) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
