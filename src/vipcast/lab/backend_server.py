"""A tiny HTTP (and optional UDP) backend for data plane and e2e tests.

Run inside a namespace: ``python -m vipcast.lab.backend_server --id b1 --node n1 --port 8080``.
Every HTTP request (any method, any path) gets ``200`` with a JSON body naming the backend and
the client address it saw, e.g. ``{"backend": "b1", "node": "n1", "client": "203.0.113.10",
"port": 8080}``; each UDP datagram gets the same JSON back. It listens dual-stack on ``::``
unless ``--bind`` says otherwise, and prints ``ready`` once listening.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from vipcast.lab.arguments import OneLineParser, ip_address, port


def _client(addr: str) -> str:
    return addr.removeprefix("::ffff:")


class DualStackServer(ThreadingHTTPServer):
    daemon_threads = True
    address_family = socket.AF_INET6

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def make_handler(identity: dict[str, object]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = json.dumps({**identity, "client": _client(self.client_address[0])}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _answer

        def log_message(self, format: str, *args: object) -> None:
            del format, args

    return Handler


def serve_udp(sock: socket.socket, identity: dict[str, object]) -> None:
    while True:
        _, addr = sock.recvfrom(2048)
        body = json.dumps({**identity, "client": _client(addr[0])}).encode()
        sock.sendto(body, addr)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(description=__doc__)
    parser.add_argument("--id", required=True)
    parser.add_argument("--node", default="")
    parser.add_argument("--port", type=port, default=8080)
    parser.add_argument("--udp-port", type=port, default=0)
    parser.add_argument("--bind", type=ip_address, default="::")
    args = parser.parse_args(argv)
    identity: dict[str, object] = {"backend": args.id, "node": args.node, "port": args.port}
    if ":" in args.bind:
        server: ThreadingHTTPServer = DualStackServer(
            (args.bind, args.port), make_handler(identity)
        )
    else:
        server = ThreadingHTTPServer((args.bind, args.port), make_handler(identity))
        server.daemon_threads = True
    if args.udp_port:
        family = socket.AF_INET6 if ":" in args.bind else socket.AF_INET
        udp = socket.socket(family, socket.SOCK_DGRAM)
        if family == socket.AF_INET6:
            udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        udp.bind((args.bind, args.udp_port))
        udp_identity = {**identity, "port": args.udp_port}
        threading.Thread(target=serve_udp, args=(udp, udp_identity), daemon=True).start()
    print("ready", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
