"""NLRI prefix encoding (RFC 4271 §4.3): ``length(1) + ceil(length/8) address bytes``.

Two decoders: :func:`decode_nlri` builds prefix strings (tests, tools); :func:`count_nlri`
only validates and counts, which is what the session does with received routes.
"""

from __future__ import annotations

import ipaddress

from .constants import AFI, ErrorCode, Family, UpdateSubcode
from .errors import BGPError

_ADDR_BYTES: dict[int, int] = {AFI.IPV4: 4, AFI.IPV6: 16}


_V4_FAMILY = Family(AFI.IPV4, 1)
_V6_FAMILY = Family(AFI.IPV6, 1)


#: canonical decimal text of an octet / an IPv4 prefix length -> its value (no leading zeros,
#: no signs or spaces: anything else is not in the table and takes the ipaddress path)
_OCTETS: dict[str, int] = {str(i): i for i in range(256)}
_V4_LENGTHS: dict[str, int] = {str(i): i for i in range(33)}
_LENGTH_BYTE: tuple[bytes, ...] = tuple(bytes((n,)) for n in range(33))


def _encode_v4(prefix: str) -> bytes | None:
    """Fast path for canonical ``a.b.c.d/len``; None means "let ipaddress decide"."""
    addr, _, length = prefix.partition("/")
    plen = _V4_LENGTHS.get(length)
    parts = addr.split(".")
    if plen is None or len(parts) != 4:
        return None
    octet = _OCTETS.get
    a, b, c, d = octet(parts[0]), octet(parts[1]), octet(parts[2]), octet(parts[3])
    if a is None or b is None or c is None or d is None:
        return None
    value = (a << 24) | (b << 16) | (c << 8) | d
    if value & ((1 << (32 - plen)) - 1):
        return None  # host bits set: ipaddress raises the ValueError
    return _LENGTH_BYTE[plen] + value.to_bytes(4, "big")[: (plen + 7) // 8]


def encode_prefix(prefix: str) -> tuple[Family, bytes]:
    """``"192.0.2.0/24"`` -> (IPv4 unicast, b"\\x18\\xc0\\x00\\x02"). ValueError if invalid."""
    fast = _encode_v4(prefix)
    if fast is not None:
        return _V4_FAMILY, fast
    net = ipaddress.ip_network(prefix)
    plen = net.prefixlen
    packed = net.network_address.packed[: (plen + 7) // 8]
    return (_V4_FAMILY if net.version == 4 else _V6_FAMILY), bytes((plen,)) + packed


def _invalid(reason: str) -> BGPError:
    return BGPError(
        ErrorCode.UPDATE_MESSAGE, UpdateSubcode.INVALID_NETWORK_FIELD, reason=f"NLRI: {reason}"
    )


def count_nlri(data: bytes | memoryview, afi: int) -> int:
    """Validate a run of encoded prefixes and return how many there are."""
    maxbits = _ADDR_BYTES.get(afi, 16) * 8
    off, end, n = 0, len(data), 0
    while off < end:
        plen = data[off]
        if plen > maxbits:
            raise _invalid(f"prefix length {plen} > {maxbits}")
        off += 1 + (plen + 7) // 8
        n += 1
    if off != end:
        raise _invalid("prefix runs past the end of its field")
    return n


def decode_nlri(data: bytes | memoryview, afi: int) -> tuple[str, ...]:
    """Decode a run of encoded prefixes to normalised strings (host bits cleared)."""
    size = _ADDR_BYTES.get(afi)
    if size is None:
        raise _invalid(f"unsupported AFI {afi}")
    out: list[str] = []
    off, end = 0, len(data)
    while off < end:
        plen = data[off]
        if plen > size * 8:
            raise _invalid(f"prefix length {plen} > {size * 8}")
        nbytes = (plen + 7) // 8
        if off + 1 + nbytes > end:
            raise _invalid("prefix runs past the end of its field")
        raw = bytes(data[off + 1 : off + 1 + nbytes]).ljust(size, b"\0")
        off += 1 + nbytes
        if size == 4:
            net: ipaddress.IPv4Network | ipaddress.IPv6Network = ipaddress.IPv4Network(
                (raw, plen), strict=False
            )
        else:
            net = ipaddress.IPv6Network((raw, plen), strict=False)
        out.append(str(net))
    return tuple(out)
