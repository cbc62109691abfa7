"""Evidence that the routers moved away from a draining node: a count of new connections to
the node's VIPs, from an nftables counter of its own (libnftables JSON).

While a drain is in its GRACEFUL_SHUTDOWN phase the agent installs the table ``inet
vipcast_drain``: one base chain on prerouting (priority -150, after conntrack; policy accept,
it only counts) with a counter per family for packets to the VIPs in conntrack state NEW.
When the count stops moving for the quiet period (:func:`vipcast.core.drain.routers_moved`)
no router sends the node new connections any more, and the wait ends before the grace. The
table is removed when the phase ends. It is independent of the data plane's own table.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

import nftables

FAMILY = "inet"
TABLE = "vipcast_drain"
CHAIN = "new"


class CounterError(Exception):
    """nftables refused or is not usable here (the drain falls back to the grace)."""


def _rule(proto: str, addresses: list[str]) -> dict[str, Any]:
    right: Any = addresses[0] if len(addresses) == 1 else {"set": addresses}
    return {"add": {"rule": {"family": FAMILY, "table": TABLE, "chain": CHAIN, "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": proto, "field": "daddr"}},
                   "right": right}},
        {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "new"}},
        {"counter": {"packets": 0, "bytes": 0}},
    ]}}}


class NewConnectionCounter:
    """The counter table of one drain (install, read, remove)."""

    def _run(self, commands: list[dict[str, Any]]) -> Any:
        ctx = nftables.Nftables()
        ctx.set_json_output(True)
        rc, out, err = ctx.json_cmd({"nftables": commands})
        if rc != 0:
            raise CounterError(f"nftables: {str(err).strip() or rc}")
        return out

    def install(self, addresses: Sequence[str]) -> None:
        """(Re)create the table counting new connections to ``addresses`` (from zero)."""
        v4 = sorted(a for a in addresses if ipaddress.ip_address(a).version == 4)
        v6 = sorted(a for a in addresses if ipaddress.ip_address(a).version == 6)
        table = {"family": FAMILY, "name": TABLE}
        commands: list[dict[str, Any]] = [
            {"add": {"table": table}},
            {"delete": {"table": table}},
            {"add": {"table": table}},
            {"add": {"chain": {"family": FAMILY, "table": TABLE, "name": CHAIN,
                               "type": "filter", "hook": "prerouting", "prio": -150,
                               "policy": "accept"}}},
        ]
        if v4:
            commands.append(_rule("ip", v4))
        if v6:
            commands.append(_rule("ip6", v6))
        self._run(commands)

    def read(self) -> int:
        """New connections counted since :meth:`install`."""
        out = self._run([{"list": {"table": {"family": FAMILY, "name": TABLE}}}])
        total = 0
        for item in out.get("nftables", []) if isinstance(out, dict) else []:
            rule = item.get("rule") if isinstance(item, dict) else None
            for expr in rule.get("expr", []) if isinstance(rule, dict) else []:
                counter = expr.get("counter") if isinstance(expr, dict) else None
                if isinstance(counter, dict):
                    total += int(counter.get("packets", 0))
        return total

    def remove(self) -> None:
        table = {"family": FAMILY, "name": TABLE}
        self._run([{"add": {"table": table}}, {"delete": {"table": table}}])
