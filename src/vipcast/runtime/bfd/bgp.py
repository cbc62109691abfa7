"""BFD for the BGP speaker: one BFD session per BGP peer that names a BFDProfile.

The agent keeps a :class:`BgpBfd` beside its speaker and hands it the peers after every
reload, and tells it when each BGP session enters or leaves Established
(:meth:`BgpBfd.bgp_changed`). Each peer's BFD and BGP states feed the binding of
:mod:`vipcast.proto.bfd.client` (RFC 5882): once BGP is Established and BFD Up, a path
failure calls ``on_down`` with the BGPPeer's name, and the speaker drops that BGP session at
once instead of waiting for the hold timer; a BFD session the router ends or replaces (FRR 8.4
does at every Established) keeps BGP up::

    bfd = BgpBfd(BfdManager(registry=registry), on_down=lambda name, change: ...)
    speaker.add_session_listener(bfd.bgp_changed)
    bfd.configure(bfd_peers(spec, [p.name for p in desired.peers]))
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from vipcast.core.desired import BfdPeer
from vipcast.core.ports import Timer
from vipcast.core.sessions import bfd_peers
from vipcast.proto.bfd import State, StateChanged
from vipcast.proto.bfd.client import Action, Binding, Client, bfd_input, initial, reason
from vipcast.proto.bfd.client import Input as BindingInput
from vipcast.runtime.bfd.manager import BfdHandle, BfdManager, BfdStatus

__all__ = ["BfdPeer", "BgpBfd", "DownCallback", "bfd_peers"]

DownCallback = Callable[[str, StateChanged], None]


class BgpBfd:
    """Keeps one BFD session per configured peer whose BGP session is Established, and
    turns their path failures into BGP drops.

    A peer's BFD session starts when its BGP session reaches Established and is closed
    (AdminDown to the peer) when BGP leaves Established or the peer's BFD is no longer
    configured. So no BFD session of ours is Up toward a router before the BGP session it
    protects: FRR 8.4 registers a neighbour's BFD session before Established and replaces it
    at Established, and a session Up across that hand-over costs one BGP flap on the
    router's side (``docs/bfd.md``). Each session's changes feed the RFC 5882 binding of
    :mod:`vipcast.proto.bfd.client`: only a path failure while armed calls ``on_down``.
    """

    def __init__(
        self,
        manager: BfdManager,
        on_down: DownCallback,
        log: logging.Logger | None = None,
    ) -> None:
        self.manager = manager
        self._on_down = on_down
        self._log = log or logging.getLogger("vipcast.bfd")
        #: the configured peers (wanted), and the running sessions of some of them
        self._wanted: dict[str, BfdPeer] = {}
        self._peers: dict[str, BfdPeer] = {}
        self._handles: dict[str, BfdHandle] = {}
        self._bindings: dict[str, Client] = {}
        #: the timers of bindings that wait for BFD Up a bounded time (RECOVERING)
        self._timers: dict[str, Timer] = {}
        #: BGPPeer names whose BGP session is Established now
        self._established: set[str] = set()
        #: peers whose sockets could not be opened at the last attempt, with the reason
        self._failed: dict[str, str] = {}
        #: the last BFD Down that kept BGP up, per peer (for status)
        self._kept: dict[str, str] = {}
        self._sync_pending = False

    def configure(self, peers: Sequence[BfdPeer]) -> list[str]:
        """Make the sessions follow ``peers`` (needs a running loop); returns the changes.

        A running session whose peer is gone or moved (address, local address, hop mode,
        interface) is closed; new timers retime it (Poll Sequence). A peer is started here if
        its BGP session is already Established, otherwise at Established. A peer whose
        sockets cannot be opened (address not local yet, port taken) is reported as
        ``failed NAME: reason`` and retried at the next call or the next Established.
        """
        self._wanted = {p.name: p for p in peers}
        changes: list[str] = []
        for name in list(self._handles):
            old, new = self._peers[name], self._wanted.get(name)
            if new == old:
                continue
            if new is not None and _same_path(old, new):
                self._handles[name].reconfigure(new.config)
                self._peers[name] = new
                self._bindings[name].recovery_s = new.config.recovery_timeout_s
                self._arm(name)
                changes.append(f"retimed {name}")
                continue
            self._stop(name)
            changes.append(f"removed {name}")
        for name in list(self._failed):
            if name not in self._wanted:
                del self._failed[name]
        for name in self._wanted:
            if name not in self._handles and name in self._established:
                changes.append(self._start(name))
        return changes

    def bgp_changed(self, name: str, established: bool) -> None:
        """The BGP session of BGPPeer ``name`` entered (True) or left (False) Established.

        The binding moves now; the session itself is started or closed on the next turn of
        the loop (this is called from inside the speaker, and from inside a BFD callback when
        a BFD failure drops BGP).
        """
        if established:
            self._established.add(name)
        else:
            self._established.discard(name)
        if name in self._bindings:
            self._feed(name, BindingInput.BGP_UP if established else BindingInput.BGP_DOWN)
        if not self._sync_pending:
            self._sync_pending = True
            asyncio.get_running_loop().call_soon(self._sync)

    def handles(self) -> Mapping[str, BfdHandle]:
        return self._handles

    def bindings(self) -> Mapping[str, Binding]:
        """BGPPeer name -> where its BGP and BFD sessions stand together."""
        return {name: client.binding for name, client in self._bindings.items()}

    def failed(self) -> Mapping[str, str]:
        """BGPPeer name -> why its sockets could not be opened at the last attempt."""
        return self._failed

    def waiting(self) -> list[str]:
        """Configured peers without a session because their BGP is not Established."""
        return sorted(set(self._wanted) - set(self._handles) - set(self._failed))

    def kept(self) -> Mapping[str, str]:
        """BGPPeer name -> why its last BFD Down left BGP up (peers that had one)."""
        return self._kept

    def status(self) -> dict[str, BfdStatus]:
        """BGPPeer name -> its BFD session, for ``vipcast status``."""
        return {
            name: replace(
                h.status(),
                binding=self._bindings[name].binding.name,
                kept=self._kept.get(name),
                recovery_left_s=self._left(name),
            )
            for name, h in sorted(self._handles.items())
        }

    def _left(self, name: str) -> float | None:
        deadline = self._bindings[name].deadline()
        if deadline is None:
            return None
        return round(max(0.0, deadline - self.manager.now()), 3)

    def close(self) -> None:
        """AdminDown to every peer and release the sockets."""
        handles = list(self._handles.values())
        self._handles.clear()
        self._peers.clear()
        self._bindings.clear()
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._wanted.clear()
        for handle in handles:
            handle.close()

    # ---- internals ------------------------------------------------------------------------

    def _sync(self) -> None:
        """Start the sessions of Established peers, close those of the others."""
        self._sync_pending = False
        for name in list(self._handles):
            if name not in self._established:
                self._stop(name)
                self._log.info("bfd %s: BGP left Established: session closed", name)
        for name in self._wanted:
            if name not in self._handles and name in self._established:
                self._log.info("bfd %s: BGP Established: %s", name, self._start(name))

    def _start(self, name: str) -> str:
        peer = self._wanted[name]
        try:
            handle = self.manager.add_peer(
                peer.address, peer.local, peer.config, peer.multihop, peer.interface
            )
        except OSError as exc:
            self._failed[name] = str(exc)
            self._log.warning("bfd %s: cannot open sockets: %s", name, exc)
            return f"failed {name}: {exc}"
        self._failed.pop(name, None)
        handle.on_change(functools.partial(self._bfd_changed, name))
        self._bindings[name] = Client(
            recovery_s=peer.config.recovery_timeout_s,
            binding=initial(name in self._established, handle.state is State.UP),
            since=self.manager.now(),
        )
        self._handles[name] = handle
        self._peers[name] = peer
        return f"added {name}"

    def _stop(self, name: str) -> None:
        self._handles.pop(name).close()
        del self._peers[name]
        self._bindings.pop(name, None)
        self._arm(name)

    def _bfd_changed(self, name: str, change: StateChanged) -> None:
        event = bfd_input(change)
        handle = self._handles.get(name)
        if event is not None and name in self._bindings and handle is not None:
            self._feed(name, event, change)

    def _feed(self, name: str, event: BindingInput, change: StateChanged | None = None) -> None:
        client = self._bindings[name]
        before = client.binding
        # the binding moves before the action: dropping BGP reports back at once
        action = client.feed(event, self.manager.now())
        self._moved(name, before, event)
        if change is None:
            return
        if action is Action.DROP:
            self._log.warning("bfd %s: down (%s): dropping the BGP session", name, reason(change))
            self._on_down(name, change)
        elif action is Action.KEEP:
            why = reason(change)
            self._kept[name] = why
            self._log.warning("bfd %s: down (%s): not a path failure, keeping the BGP session "
                              "until BFD is Up again", name, why)  # fmt: skip
        elif before in (Binding.IDLE, Binding.BFD_UP) and event in _DOWNS:
            self._log.info("bfd %s: down (%s) while BGP is not Established", name, reason(change))

    def _moved(self, name: str, before: Binding, event: BindingInput) -> None:
        after = self._bindings[name].binding
        if after is not before:
            self._log.debug("bfd %s: binding %s -> %s (%s)", name, before.name, after.name,
                            event.value)  # fmt: skip
            if after is Binding.RECOVERING:
                client = self._bindings[name]
                bound = f"{client.recovery_s:g} s" if client.recovery_s > 0 else "no bound"
                self._log.info("bfd %s: waiting for BFD Up again (%s)", name, bound)
        self._arm(name)

    def _arm(self, name: str) -> None:
        """Keep one timer at the binding's deadline (none when nothing is bounded)."""
        client = self._bindings.get(name)
        deadline = client.deadline() if client is not None else None
        timer = self._timers.get(name)
        if timer is not None and (deadline is None or timer.when() != deadline):
            timer.cancel()
            del self._timers[name]
            timer = None
        if deadline is not None and timer is None:
            self._timers[name] = self.manager.call_at(
                deadline, functools.partial(self._expired, name, deadline)
            )

    def _expired(self, name: str, deadline: float) -> None:
        self._timers.pop(name, None)
        client, handle = self._bindings.get(name), self._handles.get(name)
        if client is None or handle is None:
            return
        before = client.binding
        session = handle.session
        # the loop may wake a hair early; the binding must see its deadline reached
        action = client.expire(max(self.manager.now(), deadline), session.remote_state)
        self._moved(name, before, BindingInput.RECOVERY_EXPIRED)
        if action is not Action.DROP:
            return
        why = f"BFD not Up again within {client.recovery_s:g} s of the remote ending its session"
        self._kept.pop(name, None)
        self._log.warning("bfd %s: %s: dropping the BGP session", name, why)
        still = StateChanged(session.state, session.state, session.local_diag,
                             session.remote_state, session.remote_diag)  # fmt: skip
        self._on_down(name, still)


_DOWNS = (BindingInput.BFD_FAILED, BindingInput.BFD_ENDED, BindingInput.BFD_DISABLED)


def _same_path(a: BfdPeer, b: BfdPeer) -> bool:
    return (a.address, a.local, a.multihop, a.interface) == (
        b.address,
        b.local,
        b.multihop,
        b.interface,
    )
