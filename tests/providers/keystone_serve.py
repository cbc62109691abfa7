"""Serve Keystone's public WSGI application on 127.0.0.1 (run by the KEYSTONE venv's python).

Keystone ships no server of its own any more (the packaging expects uWSGI or mod_wsgi); for
the tests the standard library's wsgiref serves it, one request at a time, on the listening
socket the test process bound and handed over (``pass_fds``): the port is held from the
moment the kernel chose it, so no other process can take it before the server serves.
Usage: python keystone_serve.py /path/to/keystone.conf FD
"""

import os
import socket
import sys
from collections.abc import Callable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def serve_inherited(fd: int, app: Callable[..., object],
                    handler: type[WSGIRequestHandler] = _Quiet) -> None:
    """wsgiref's server on the inherited listening socket ``fd`` (no bind of its own)."""
    server = WSGIServer(("127.0.0.1", 0), handler, bind_and_activate=False)
    server.socket.close()
    server.socket = socket.socket(fileno=fd)
    host, port = server.socket.getsockname()[:2]
    server.server_address = (host, port)
    server.server_name, server.server_port = host, port
    server.setup_environ()
    server.set_app(app)
    server.serve_forever()


def main() -> None:
    conf, fd = sys.argv[1], int(sys.argv[2])
    del sys.argv[1:]  # oslo.config parses sys.argv
    os.environ["OS_KEYSTONE_CONFIG_FILES"] = conf
    from keystone.server import wsgi

    serve_inherited(fd, wsgi.initialize_public_application())


if __name__ == "__main__":
    main()
