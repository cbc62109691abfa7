"""Canonical element values of the ``inet vipcast`` table (pure).

``nft -j list table`` prints addresses compressed and set elements sorted: addresses by family
and value, then numbers, then names. The render writes the same form so a read-back compares
equal to a render; these functions give that form and that order.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence
from typing import Any, Literal

IpFamily = Literal[4, 6]

#: nftables' name of a Kubernetes port protocol
PROTO_NAME = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}


def source_prefixes(
    ranges: Sequence[str], fam: IpFamily
) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network] | None:
    """Collapsed source prefixes of ``fam``; None when the VIP is open to everyone."""
    if not ranges:
        return None
    nets = [ipaddress.ip_network(r, strict=False) for r in ranges]
    mine = [n for n in nets if n.version == fam]
    if any(n.prefixlen == 0 for n in mine):
        return None
    return list(ipaddress.collapse_addresses(mine))  # type: ignore[type-var]


def prefix_value(addr: str, plen: int, fam: IpFamily) -> Any:
    full = 32 if fam == 4 else 128
    if plen == full:
        return addr
    return {"prefix": {"addr": addr, "len": plen}}


@functools.lru_cache(maxsize=1 << 16)
def elem_key(elem: tuple[Any, ...]) -> tuple[Any, ...]:
    """Sort key of a set element (memoised: plans repeat elements from render to render)."""
    return tuple(_part_key(x) for x in elem)


def _part_key(value: Any) -> tuple[int, int, str]:
    if isinstance(value, int):
        return (1, value, "")
    text = str(value)
    if ":" in text or (text[:1].isdigit() and "." in text):
        try:
            fam, number, _ = parsed_ip(text)
        except ValueError:
            return (2, 0, text)
        return (0, fam << 128 | number, "")
    return (2, 0, text)


@functools.lru_cache(maxsize=1 << 16)
def parsed_ip(ip: str) -> tuple[IpFamily, int, str]:
    """(family, integer, canonical text) of an address; memoised (plans repeat addresses)."""
    addr = ipaddress.ip_address(ip)
    return (4 if addr.version == 4 else 6), int(addr), str(addr)


def canon_ip(ip: str) -> str:
    return parsed_ip(ip)[2]


def family_of(ip: str) -> IpFamily:
    return parsed_ip(ip)[0]
