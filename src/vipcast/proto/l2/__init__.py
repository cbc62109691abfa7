"""Sans-IO ARP and NDP: codecs and the responder decision for LAN-announced VIPs."""

from vipcast.proto.l2.arp import ArpOp, ArpPacket, decode_arp
from vipcast.proto.l2.errors import L2Error
from vipcast.proto.l2.ethernet import EthernetFrame, decode_frame, format_mac, parse_mac
from vipcast.proto.l2.responder import (
    Decision,
    Outcome,
    OwnedAddresses,
    announcements,
    claim_of,
    decide,
    gratuitous_arp,
    owner_probes,
    unsolicited_na,
)

__all__ = [
    "ArpOp",
    "ArpPacket",
    "Decision",
    "EthernetFrame",
    "L2Error",
    "Outcome",
    "OwnedAddresses",
    "announcements",
    "claim_of",
    "decide",
    "decode_arp",
    "decode_frame",
    "format_mac",
    "gratuitous_arp",
    "owner_probes",
    "parse_mac",
    "unsolicited_na",
]
