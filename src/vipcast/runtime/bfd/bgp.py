"""BFD for the BGP speaker: one BFD session per BGP peer that names a BFDProfile.

The agent keeps a :class:`BgpBfd` beside its speaker and hands it the peers after every
reload; when a session falls from Up to Down the ``on_down`` callback gets the BGPPeer's name,
and the speaker drops that BGP session at once instead of waiting for the hold timer::

    bfd = BgpBfd(BfdManager(registry=registry), on_down=lambda name, change: ...)
    bfd.configure(bfd_peers(spec, [p.name for p in desired.peers]))
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence

from vipcast.core.desired import BfdPeer
from vipcast.core.sessions import bfd_peers
from vipcast.proto.bfd import StateChanged
from vipcast.runtime.bfd.manager import BfdHandle, BfdManager, BfdStatus

__all__ = ["BfdPeer", "BgpBfd", "DownCallback", "bfd_peers"]

DownCallback = Callable[[str, StateChanged], None]


class BgpBfd:
    """Keeps the BFD sessions equal to the configured peers and reports their failures."""

    def __init__(
        self,
        manager: BfdManager,
        on_down: DownCallback,
        log: logging.Logger | None = None,
    ) -> None:
        self.manager = manager
        self._on_down = on_down
        self._log = log or logging.getLogger("vipcast.bfd")
        self._peers: dict[str, BfdPeer] = {}
        self._handles: dict[str, BfdHandle] = {}

    def configure(self, peers: Sequence[BfdPeer]) -> list[str]:
        """Make the sessions equal to ``peers`` (needs a running loop); returns the changes.

        A peer whose sockets cannot be opened (address not local yet, port taken) is
        reported as ``failed NAME: reason`` and retried at the next call.
        """
        wanted = {p.name: p for p in peers}
        changes: list[str] = []
        for name in list(self._handles):
            old, new = self._peers[name], wanted.get(name)
            if new == old:
                continue
            if new is not None and _same_path(old, new):
                self._handles[name].reconfigure(new.config)
                self._peers[name] = new
                changes.append(f"retimed {name}")
                continue
            self._handles.pop(name).close()
            del self._peers[name]
            changes.append(f"removed {name}")
        for name, peer in wanted.items():
            if name in self._handles:
                continue
            try:
                handle = self.manager.add_peer(
                    peer.address, peer.local, peer.config, peer.multihop, peer.interface
                )
            except OSError as exc:
                changes.append(f"failed {name}: {exc}")
                self._log.warning("bfd %s: cannot open sockets: %s", name, exc)
                continue
            handle.on_down(functools.partial(self._down, name))
            self._handles[name] = handle
            self._peers[name] = peer
            changes.append(f"added {name}")
        return changes

    def handles(self) -> Mapping[str, BfdHandle]:
        return self._handles

    def status(self) -> dict[str, BfdStatus]:
        """BGPPeer name -> its BFD session, for ``vipcast status``."""
        return {name: h.status() for name, h in sorted(self._handles.items())}

    def close(self) -> None:
        """AdminDown to every peer and release the sockets."""
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()
        self._peers.clear()

    def _down(self, name: str, change: StateChanged) -> None:
        self._log.warning("bfd %s: down (%s): dropping the BGP session", name, change.diag.name)
        self._on_down(name, change)


def _same_path(a: BfdPeer, b: BfdPeer) -> bool:
    return (a.address, a.local, a.multihop, a.interface) == (
        b.address,
        b.local,
        b.multihop,
        b.interface,
    )
