"""What every lab BGP daemon wrapper (FRR, BIRD, GoBGP, ExaBGP) offers about its sessions.

A wrapper reads its daemon's neighbor states its own way (vtysh JSON, birdc, the gobgp CLI,
ExaBGP's event log) in :meth:`BgpDaemon.neighbor_states`; waiting for sessions is written
once here.
"""

from __future__ import annotations

from typing import ClassVar

from vipcast.lab.netns import Netns
from vipcast.lab.process import wait_until


class BgpDaemon:
    """Mixin: ``established``/``wait_established`` over ``neighbor_states()``."""

    #: the daemon's name in messages ("FRR", "BIRD", ...)
    daemon: ClassVar[str]
    netns: Netns

    def neighbor_states(self) -> dict[str, str]:
        """Neighbor address -> BGP state ("Established", "Active", ...)."""
        raise NotImplementedError

    def log_text(self) -> str:
        raise NotImplementedError

    def expected_peers(self, states: dict[str, str]) -> tuple[str, ...]:
        """The neighbors ``established()`` waits for when none is named: every one known."""
        return tuple(states)

    def established(self, *addresses: str) -> bool:
        states = self.neighbor_states()
        wanted = addresses or self.expected_peers(states)
        return all(states.get(a) == "Established" for a in wanted)

    def wait_established(self, *addresses: str, timeout: float = 60.0) -> None:
        wait_until(
            lambda: self.established(*addresses),
            timeout=timeout,
            what=f"{self.daemon} in {self.netns.short}: sessions Established",
            on_timeout=lambda: f"states: {self.neighbor_states()}\n{self.log_text()[-3000:]}",
        )
