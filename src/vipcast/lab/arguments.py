"""Command-line values of the processes started with ``python -m vipcast...`` (the lab's
helpers and the standalone L2 responder), read by the project's one address parser
(:mod:`vipcast.spec.addresses`).

A bad value ends the process before anything starts: one line on standard error naming the
option and the value, exit status 2 (argparse's status for a usage error), no traceback.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from vipcast.spec.addresses import parse_host_port, parse_ip, parse_port


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad option in one line (no usage block), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def port(text: str) -> int:
    """``--port``: 0 to 65535."""
    try:
        return parse_port(text.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def ip_address(text: str) -> str:
    """An IP address (IPv6 without brackets), normalised."""
    try:
        return str(parse_ip(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def endpoint(text: str, default_port: int) -> tuple[str, int]:
    """``HOST[:PORT]`` (``[V6]:PORT``) with an IP address as the host."""
    try:
        host, number = parse_host_port(text, default_port=default_port)
        parse_ip(host)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return host, number
