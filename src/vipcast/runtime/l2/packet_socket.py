"""AF_PACKET sockets for the L2 responder: one raw socket per interface, filtered in the kernel
(classic BPF) down to ARP and ICMPv6 Neighbor Solicitations and Advertisements, receiving all
multicast so the solicited-node groups of the VIPs reach it without joining each one.
"""

from __future__ import annotations

import ctypes
import socket
import struct

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_ALLMULTI = 2
SO_ATTACH_FILTER = 26
#: sll_pkttype of a frame this host sent (seen by ETH_P_ALL sockets)
PACKET_OUTGOING = 4

# ldh [12]; ARP -> accept; IPv6 -> next header 58 at [20]; ICMPv6 type at [54]: 135 (a
# solicitation to answer) or 136 (an advertisement: another node's claim of a VIP) -> accept
_BPF_LD_H_ABS, _BPF_LD_B_ABS, _BPF_JEQ_K, _BPF_RET_K = 0x28, 0x30, 0x15, 0x06
NS_FILTER: tuple[tuple[int, int, int, int], ...] = (
    (_BPF_LD_H_ABS, 0, 0, 12),
    (_BPF_JEQ_K, 6, 0, 0x0806),
    (_BPF_JEQ_K, 0, 6, 0x86DD),
    (_BPF_LD_B_ABS, 0, 0, 20),
    (_BPF_JEQ_K, 0, 4, 58),
    (_BPF_LD_B_ABS, 0, 0, 54),
    (_BPF_JEQ_K, 1, 0, 135),
    (_BPF_JEQ_K, 0, 1, 136),
    (_BPF_RET_K, 0, 0, 0x40000),
    (_BPF_RET_K, 0, 0, 0),
)


def attach_filter(sock: socket.socket, program: tuple[tuple[int, int, int, int], ...]) -> None:
    code = b"".join(struct.pack("HBBI", *instruction) for instruction in program)
    buffer = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HL", len(program), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)  # the kernel copies it


def open_packet_socket(ifname: str) -> tuple[socket.socket, bytes]:
    """A non-blocking raw socket bound to ``ifname`` and the interface's MAC address.

    Raises :class:`OSError` if the interface does not exist (or we lack CAP_NET_RAW).
    """
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        attach_filter(sock, NS_FILTER)
        sock.bind((ifname, ETH_P_ALL))
        mreq = struct.pack("iHH8s", socket.if_nametoindex(ifname), PACKET_MR_ALLMULTI, 0, b"")
        sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        sock.setblocking(False)
        mac: bytes = sock.getsockname()[4]
    except OSError:
        sock.close()
        raise
    return sock, mac
