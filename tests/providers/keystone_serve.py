"""Serve Keystone's public WSGI application on 127.0.0.1 (run by the KEYSTONE venv's python).

Keystone ships no server of its own any more (the packaging expects uWSGI or mod_wsgi); for
the tests the standard library's wsgiref serves it, one request at a time.
Usage: python keystone_serve.py /path/to/keystone.conf PORT
"""

import os
import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    conf, port = sys.argv[1], int(sys.argv[2])
    del sys.argv[1:]  # oslo.config parses sys.argv
    os.environ["OS_KEYSTONE_CONFIG_FILES"] = conf
    from keystone.server import wsgi

    app = wsgi.initialize_public_application()
    make_server("127.0.0.1", port, app, handler_class=_Quiet).serve_forever()


if __name__ == "__main__":
    main()
