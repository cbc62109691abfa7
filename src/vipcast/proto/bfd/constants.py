"""BFD numbers (RFC 5880 §4, RFC 5881, RFC 5883) as enums and named constants."""

from __future__ import annotations

from enum import IntEnum

VERSION = 1

#: RFC 5881 §4: single-hop control packets go to this UDP port.
SINGLE_HOP_PORT = 3784
#: RFC 5883 §5: multihop control packets go to this UDP port.
MULTIHOP_PORT = 4784
#: RFC 5881 §4: the source port of a session lies in this range.
SOURCE_PORT_MIN = 49152
SOURCE_PORT_MAX = 65535
#: RFC 5881 §5: single-hop packets are sent, and must arrive, with TTL / hop limit 255.
SINGLE_HOP_TTL = 255

#: Length of the mandatory section of a control packet.
MANDATORY_LENGTH = 24
#: RFC 5880 §6.8.3: while a session is not Up, it transmits no faster than once a second.
SLOW_TX_US = 1_000_000
#: How long a BFD client binding waits for Up again after the remote replaced or ended (not
#: disabled) an Up session, before its BGP session is dropped (seconds): five slow (1 s)
#: transmission intervals, room for a new session's three-way handshake at that rate, and
#: well below BGP hold times (9 s in the lab, 90 s and more in the field).
DEFAULT_RECOVERY_S = 5.0


class State(IntEnum):
    """``Sta`` field and ``bfd.SessionState`` (RFC 5880 §4.1)."""

    ADMIN_DOWN = 0
    DOWN = 1
    INIT = 2
    UP = 3


class Diag(IntEnum):
    """``Diag`` field and ``bfd.LocalDiag`` (RFC 5880 §4.1)."""

    NONE = 0
    CONTROL_DETECTION_TIME_EXPIRED = 1
    ECHO_FUNCTION_FAILED = 2
    NEIGHBOR_SIGNALED_SESSION_DOWN = 3
    FORWARDING_PLANE_RESET = 4
    PATH_DOWN = 5
    CONCATENATED_PATH_DOWN = 6
    ADMINISTRATIVELY_DOWN = 7
    REVERSE_CONCATENATED_PATH_DOWN = 8


class AuthType(IntEnum):
    """``Auth Type`` of the optional authentication section (RFC 5880 §4.1)."""

    RESERVED = 0
    SIMPLE_PASSWORD = 1
    KEYED_MD5 = 2
    METICULOUS_KEYED_MD5 = 3
    KEYED_SHA1 = 4
    METICULOUS_KEYED_SHA1 = 5


#: ``Auth Len`` each digest type must carry (RFC 5880 §4.3, §4.4).
AUTH_DIGEST_LENGTHS: dict[AuthType, int] = {
    AuthType.KEYED_MD5: 24,
    AuthType.METICULOUS_KEYED_MD5: 24,
    AuthType.KEYED_SHA1: 28,
    AuthType.METICULOUS_KEYED_SHA1: 28,
}
