"""The one error the L2 codecs raise: malformed or unsupported bytes from the wire."""

from __future__ import annotations


class L2Error(ValueError):
    """A frame, ARP packet or ICMPv6 message that cannot be decoded."""
