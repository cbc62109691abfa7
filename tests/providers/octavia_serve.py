"""Serve the Octavia API on an inherited listening socket (run by the OCTAVIA venv's python).

What ``octavia-api`` (octavia.cmd.api) does -- the guru meditation report hook, the pecan
application from ``--config-file``, wsgiref's simple server -- except that the server does not
bind ``[api_settings] bind_port`` itself: it serves the socket the test process bound and
handed over (``pass_fds``), so the port cannot be taken by another process in between.
Usage: python octavia_serve.py FD --config-file /path/to/octavia.conf
"""

import sys
from wsgiref.simple_server import WSGIRequestHandler

from keystone_serve import serve_inherited


def main() -> None:
    fd = int(sys.argv.pop(1))
    from octavia import version
    from octavia.api import app as api_app
    from oslo_config import cfg
    from oslo_reports import guru_meditation_report as gmr
    from oslo_reports import opts as gmr_opts

    gmr_opts.set_defaults(cfg.CONF)
    gmr.TextGuruMeditation.setup_autorun(version, conf=cfg.CONF)
    serve_inherited(fd, api_app.setup_app(argv=sys.argv), WSGIRequestHandler)


if __name__ == "__main__":
    main()
