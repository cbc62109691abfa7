"""Make the node accept its VIPs: ``local`` routes in the kernel's ``local`` table, via pyroute2.

A VIP the node announces (BGP) or owns (L2) is installed as ``local VIP dev lo table local
proto vipcast``: the kernel then treats the address as its own (the nftables DNAT runs before
routing, so forwarded service ports never need it; it matters for ports without a service and
for ICMP). A route rather than an address on an interface keeps ``ip addr`` clean and lets the
L2 responder decide alone what is answered on the LAN.

Only routes carrying our protocol number are ever listed or removed, so routes somebody else
installed for the same address are left alone. Add and remove are idempotent (``EEXIST`` and
``ESRCH``/``ENOENT`` are outcomes, not errors).

pyroute2's ``IPRoute`` is blocking; call these methods from a worker thread in asyncio code.
pyroute2 is imported by the first call (in that thread), not with this module: an agent
without a dataplane never loads it, one with a dataplane not before its first plan.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vipcast.dataplane.netns_switch import inside

if TYPE_CHECKING:
    from pyroute2 import IPRoute

#: our route protocol number (``ip route ... proto 249``); 249 is unassigned in rt_protos
RTPROT_VIPCAST = 249
RT_TABLE_LOCAL = 255
RTN_LOCAL = 2
RT_SCOPE_HOST = 254


class RouteError(OSError):
    """The kernel refused a route change for a reason other than "already so"."""


@dataclass(frozen=True)
class VipChange:
    """What one :meth:`LocalVips.sync` did."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)


class LocalVips:
    """The set of VIPs this node accepts, as local routes marked with our protocol number."""

    def __init__(
        self, netns: str | None = None, device: str = "lo", proto: int = RTPROT_VIPCAST
    ) -> None:
        self._netns = netns
        self._device = device
        self._proto = proto

    def current(self) -> frozenset[str]:
        """VIPs we installed (and nobody removed)."""
        from pyroute2 import IPRoute

        with inside(self._netns), IPRoute() as ipr:
            found: set[str] = set()
            for family in (socket.AF_INET, socket.AF_INET6):
                for msg in ipr.get_routes(family=family, table=RT_TABLE_LOCAL):
                    if msg["proto"] != self._proto or msg["type"] != RTN_LOCAL:
                        continue
                    dst = msg.get_attr("RTA_DST")
                    if dst is not None:
                        found.add(str(ipaddress.ip_address(dst)))
            return frozenset(found)

    def sync(self, vips: Iterable[str]) -> VipChange:
        """Install exactly ``vips`` (ours only): add the missing, remove the stale."""
        want = frozenset(str(ipaddress.ip_address(v)) for v in vips)
        have = self.current()
        add = sorted(want - have, key=_order)
        remove = sorted(have - want, key=_order)
        if not add and not remove:
            return VipChange()
        from pyroute2 import IPRoute

        with inside(self._netns), IPRoute() as ipr:
            index = ipr.link_lookup(ifname=self._device)
            if not index:
                raise RouteError(errno.ENODEV, f"no interface {self._device!r}")
            for vip in add:
                self._change(ipr, "add", vip, index[0])
            for vip in remove:
                self._change(ipr, "del", vip, index[0])
        return VipChange(tuple(add), tuple(remove))

    def clear(self) -> VipChange:
        """Remove every route of ours."""
        return self.sync(())

    def _change(self, ipr: IPRoute, command: str, vip: str, oif: int) -> None:
        from pyroute2.netlink.exceptions import NetlinkError

        addr = ipaddress.ip_address(vip)
        try:
            ipr.route(
                command,
                dst=f"{addr}/{addr.max_prefixlen}",
                family=socket.AF_INET if addr.version == 4 else socket.AF_INET6,
                table=RT_TABLE_LOCAL,
                type=RTN_LOCAL,
                proto=self._proto,
                scope=RT_SCOPE_HOST,
                oif=oif,
            )
        except NetlinkError as exc:
            done = errno.EEXIST if command == "add" else errno.ESRCH
            if exc.code in (done, errno.ENOENT):
                return
            raise RouteError(exc.code, f"{command} local route {vip}: {exc}") from exc


def _order(vip: str) -> tuple[int, int]:
    addr = ipaddress.ip_address(vip)
    return (addr.version, int(addr))
