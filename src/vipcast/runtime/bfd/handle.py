"""What the rest of vipcast holds of one BFD session: :class:`BfdHandle` and its status.

The handle belongs to a :class:`vipcast.runtime.bfd.manager.BfdManager`, which owns the sockets and
timers; the handle carries the callbacks and counters and answers status questions.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from vipcast.core.ports import Timer
from vipcast.core.sessions import bfd_config
from vipcast.proto.bfd import Session, SessionConfig, State, StateChanged
from vipcast.spec.objects import BFDProfileSpec

ChangeCallback = Callable[[StateChanged], None]


class SessionOwner(Protocol):
    """The manager side a handle calls back into."""

    def now(self) -> float: ...

    def pump(self, handle: BfdHandle) -> None: ...

    def release(self, handle: BfdHandle) -> None: ...


#: the BFD session parameters of a spec profile (kept under its old name here)
session_config = bfd_config


@dataclass(frozen=True)
class BfdStatus:
    """One session as ``vipcast status`` shows it. Intervals in milliseconds."""

    peer: str
    local: str | None
    multihop: bool
    state: str
    remote_state: str
    local_diag: str
    remote_diag: int
    local_discr: int
    remote_discr: int
    tx_interval_ms: float
    detection_time_ms: float
    remote_min_rx_ms: float
    remote_detect_mult: int
    #: clock time (the manager's clock) of the last state change
    since: float
    packets_sent: int
    packets_received: int
    packets_dropped: int
    #: negotiated receive interval (how often the remote sends), before jitter
    rx_interval_ms: float = 0.0
    #: this side's configured detect multiplier
    detect_mult: int = 0
    #: the diagnostic of the last state change that carried one (NONE: never failed)
    last_diag: str = "NONE"
    #: seconds the session has been Up; None when it is not Up
    uptime_s: float | None = None
    #: a Poll Sequence (RFC 5880 §6.5) is pending: the intervals shown are still converging
    polling: bool = False
    #: for a BGP peer's session: where BGP and BFD stand together
    #: (:class:`vipcast.proto.bfd.client.Binding` name: IDLE, BFD_UP, WAITING, DISABLED,
    #: RECOVERING, ARMED)
    binding: str | None = None
    #: for a BGP peer's session: why the last BFD Down left BGP up (None: none did)
    kept: str | None = None
    #: for a BGP peer's session in RECOVERING: seconds left before BGP is dropped unless BFD
    #: comes Up again (None: no bound running)
    recovery_left_s: float | None = None


@dataclass(eq=False)
class BfdHandle:
    """One BFD session as the rest of vipcast sees it."""

    manager: SessionOwner = field(repr=False)
    peer: str
    local: str | None
    multihop: bool
    interface: str | None
    session: Session = field(repr=False)
    tx: socket.socket = field(repr=False)
    listener_key: tuple[str, int, int]
    dest: tuple[str, int] | tuple[str, int, int, int]
    users: int = 1
    since: float = 0.0
    sent: int = 0
    received: int = 0
    dropped: int = 0
    #: the diagnostic of the last state change that carried one
    last_diag: str = "NONE"
    closed: bool = False
    #: the session's Poll Sequence was running at the last pump (its end is logged)
    was_polling: bool = False
    _timer: Timer | None = field(default=None, repr=False)
    _on_change: list[ChangeCallback] = field(default_factory=list, repr=False)
    _on_down: list[ChangeCallback] = field(default_factory=list, repr=False)
    _on_up: list[ChangeCallback] = field(default_factory=list, repr=False)
    _changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def state(self) -> State:
        return self.session.state

    def on_down(self, callback: ChangeCallback) -> None:
        """Call ``callback`` each time the session falls from Up to Down (not remote AdminDown)."""
        self._on_down.append(callback)

    def on_up(self, callback: ChangeCallback) -> None:
        """Call ``callback`` each time the session comes Up."""
        self._on_up.append(callback)

    def on_change(self, callback: ChangeCallback) -> None:
        """Call ``callback`` on every state change."""
        self._on_change.append(callback)

    async def wait_for(self, state: State, timeout: float) -> bool:
        """Wait until the session is in ``state``; False if ``timeout`` seconds pass first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.session.state is not state:
            remaining = deadline - loop.time()
            if remaining <= 0 or self.closed:
                return False
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can drop a cancel of
            # the waiting task (see runtime/envoy/process.py)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._changed.wait()
        return True

    def status(self) -> BfdStatus:
        s = self.session
        return BfdStatus(
            peer=self.peer,
            local=self.local,
            multihop=self.multihop,
            state=s.state.name,
            remote_state=s.remote_state.name,
            local_diag=s.local_diag.name,
            remote_diag=s.remote_diag,
            local_discr=s.local_discr,
            remote_discr=s.remote_discr,
            tx_interval_ms=s.tx_interval_us / 1000,
            detection_time_ms=s.detection_time_us / 1000,
            remote_min_rx_ms=s.remote_min_rx_us / 1000,
            remote_detect_mult=s.remote_detect_mult,
            since=self.since,
            packets_sent=self.sent,
            packets_received=self.received,
            packets_dropped=self.dropped,
            rx_interval_ms=s.rx_interval_us / 1000,
            detect_mult=s.config.detect_mult,
            last_diag=self.last_diag,
            uptime_s=self._uptime(),
            polling=s.polling,
        )

    def _uptime(self) -> float | None:
        if self.session.state is not State.UP:
            return None
        return round(max(0.0, self.manager.now() - self.since), 3)

    def reconfigure(self, profile: BFDProfileSpec | SessionConfig) -> None:
        """New intervals for a running session (a Poll Sequence if Up)."""
        self.session.reconfigure(session_config(profile, self.multihop), self.manager.now())
        self.manager.pump(self)

    def close(self) -> None:
        """Release this user's hold; the last one tells the peer AdminDown and frees sockets."""
        self.manager.release(self)
