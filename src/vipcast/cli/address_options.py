"""The command line's ``HOST:PORT`` options, all read by the one parser
(:func:`vipcast.spec.addresses.parse_host_port`).

A value it refuses ends the command before anything starts: one line on standard error naming
the option and the value (``error: --metrics-address 'nonsense': no port (expected
HOST:PORT)``) and exit status 2, click's status for a usage error.
"""

from __future__ import annotations

from collections.abc import Iterable

import typer

#: where a bare ``PORT`` listens (and ``status`` connects) unless the option says otherwise
LOOPBACK = "127.0.0.1"


def host_port(
    text: str, option: str, *, default_host: str | None = LOOPBACK,
    default_port: int | None = None,
) -> tuple[str, int]:
    """``text`` of ``option`` as ``(host, port)``, or the usage error (exit 2) naming both."""
    from vipcast.spec.addresses import parse_host_port  # the spec package: when a value is read

    try:
        return parse_host_port(text, default_host=default_host, default_port=default_port)
    except ValueError as exc:
        typer.echo(f"error: {option} {exc}", err=True)
        raise typer.Exit(2) from None


def host_ports(
    texts: Iterable[str] | None, option: str, *, default_host: str | None = LOOPBACK,
    default_port: int | None = None,
) -> tuple[tuple[str, int], ...]:
    """Each of a repeatable ``option``'s values as ``(host, port)`` (see :func:`host_port`)."""
    return tuple(host_port(text, option, default_host=default_host, default_port=default_port)
                 for text in texts or ())


def optional_host_port(
    text: str | None, option: str, *, default_host: str | None = LOOPBACK,
) -> tuple[str, int] | None:
    """:func:`host_port` of an option that may be left out (None, or empty: not served)."""
    return host_port(text, option, default_host=default_host) if text else None
