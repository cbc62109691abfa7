"""Address ranges of pools: CIDRs and ``first-last`` ranges, IPv4 and IPv6."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, order=True)
class AddressRange:
    """An inclusive range of addresses of one family, as integers for fast arithmetic."""

    version: int
    first: int
    last: int
    text: str  # as the user wrote it
    #: prefix length when written as a CIDR, else None
    prefixlen: int | None = None

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    def overlaps(self, other: AddressRange) -> bool:
        return (
            self.version == other.version
            and self.first <= other.last
            and other.first <= self.last
        )

    def contains(self, address: IPAddress) -> bool:
        return address.version == self.version and self.first <= int(address) <= self.last

    def address(self, value: int) -> IPAddress:
        return ipaddress.ip_address(value) if self.version == 4 else ipaddress.IPv6Address(value)


def parse_range(text: str) -> AddressRange:
    """Parse ``192.0.2.0/28``, ``192.0.2.10-192.0.2.20``, ``2001:db8::/120`` or a single IP.

    Raises ValueError with a user-facing message.
    """
    text = text.strip()
    if "-" in text:
        first_s, _, last_s = text.partition("-")
        try:
            first = ipaddress.ip_address(first_s.strip())
            last = ipaddress.ip_address(last_s.strip())
        except ValueError as exc:
            raise ValueError(f"{text!r} is not a valid address range: {exc}") from None
        if first.version != last.version:
            raise ValueError(f"{text!r} mixes IPv4 and IPv6")
        if int(last) < int(first):
            raise ValueError(f"{text!r}: the last address is before the first")
        return AddressRange(first.version, int(first), int(last), text)
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(f"{text!r} is not a valid CIDR or range: {exc}") from None
        raise ValueError(
            f"{text!r} has host bits set: vipcast refuses it, MetalLB would read it as "
            f"{loose} — write {loose}, or a range (docs/allocation.md, \"CIDRs with host "
            "bits\"; `vipcast convert metallb` rewrites it)"
        ) from None
    return AddressRange(
        net.version, int(net.network_address), int(net.broadcast_address), text, net.prefixlen
    )


def parse_ip(text: str) -> IPAddress:
    """One IP address, or ValueError with a clear message."""
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a valid IP address") from None


def parse_host_port(
    text: str, *, default_host: str | None = None, default_port: int | None = None
) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT``, ``:PORT``, and (with the defaults given) ``PORT``,
    ``HOST``, ``[V6]`` or a bare ``V6`` → ``(host, port)``; the host comes back without
    brackets. A bare port needs ``default_host``, a missing port ``default_port``; an IPv6
    address with a port needs brackets. ValueError names the text and what is wrong.
    """
    text = text.strip()
    host: str
    port_text: str | None
    if not text:
        raise ValueError("empty address: expected HOST:PORT")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not host:
            raise ValueError(f"{text!r}: unclosed or empty '[' (expected [IPV6]:PORT)")
        if rest and not rest.startswith(":"):
            raise ValueError(f"{text!r}: expected ':PORT' after ']'")
        port_text = rest[1:] if rest else None
        if ":" not in host:
            raise ValueError(f"{text!r}: brackets are for IPv6 addresses only")
    elif text.isdigit() and default_host is not None:
        host, port_text = default_host, text
    elif text.count(":") > 1:  # a bare IPv6 address: no port can follow it
        if default_port is None:
            raise ValueError(f"{text!r}: write an IPv6 address with its port as [IPV6]:PORT")
        host, port_text = text, None
    elif ":" in text:
        host, _, port_text = text.partition(":")
        if not host:
            if default_host is None:
                raise ValueError(f"{text!r}: no host before ':PORT'")
            host = default_host
    else:
        host, port_text = text, None
    if port_text is None:
        if default_port is None:
            raise ValueError(f"{text!r}: no port (expected HOST:PORT)")
        return host, default_port
    try:
        return host, parse_port(port_text)
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from None


def parse_port(text: str) -> int:
    """A TCP/UDP port, 0 to 65535, or ValueError naming it."""
    if not text.isdigit() or int(text) > 65535:
        raise ValueError(f"port {text!r} is not a number from 0 to 65535")
    return int(text)
