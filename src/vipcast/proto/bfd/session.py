"""One BFD session (RFC 5880 asynchronous mode), sans-IO.

The caller feeds it received packets with :meth:`Session.receive_packet` and wakes it at
:meth:`Session.next_deadline` with :meth:`Session.handle_timer`; after each call it drains
:meth:`Session.packets_to_send` (payloads for the peer's BFD port) and
:meth:`Session.next_event`. Time is always the caller's ``now`` in seconds, and the jitter of
§6.8.7 comes from an injected source of numbers in [0, 1).

Timer negotiation (§6.8.2-§6.8.4):

* the session advertises ``bfd.DesiredMinTxInterval``: the configured value while Up, and at
  least one second otherwise (§6.8.3);
* it transmits every ``max(tx in use, remote RequiredMinRxInterval)``, jittered to 75-100 %
  (75-90 % with a detect multiplier of 1); a remote RequiredMinRxInterval of zero stops it;
* it declares the remote dead after ``remote DetectMult * max(rx in use, remote
  DesiredMinTxInterval)`` without a valid packet;
* a change of either advertised interval while Up runs a Poll Sequence; an increase of the TX
  interval or a decrease of the RX interval only takes effect when the Final arrives;
* on entering Init or Up the session transmits at once (on Up with the Poll of the change to
  the configured intervals) and restarts its periodic timer from there: the remote moves on
  in its handshake and answers the Poll within one round trip, instead of waiting for the
  next slow (about one second) periodic packet. FRR's bfdd sends on Up the same way.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from vipcast.proto.bfd.constants import (
    DEFAULT_RECOVERY_S,
    SINGLE_HOP_TTL,
    SLOW_TX_US,
    Diag,
    State,
)
from vipcast.proto.bfd.fsm import RX_INPUT, Input, step
from vipcast.proto.bfd.packet import BFDPacketError, ControlPacket, DropReason, decode

Jitter = Callable[[], float]
_US = 1e-6


@dataclass(frozen=True)
class SessionConfig:
    """What the operator chose for one session. Intervals in microseconds."""

    desired_min_tx_us: int = 300_000
    required_min_rx_us: int = 300_000
    detect_mult: int = 3
    #: wait for the remote to speak first (§6.1)
    passive: bool = False
    #: RFC 5883 multihop: accept packets whose TTL is at least ``minimum_ttl``;
    #: single hop (RFC 5881) demands exactly 255
    multihop: bool = False
    minimum_ttl: int = 254
    #: for the client (:mod:`vipcast.proto.bfd.client`): seconds to wait for Up again after
    #: the remote replaced or ended an Up session, before its client counts a path failure
    #: (0: no bound)
    recovery_timeout_s: float = DEFAULT_RECOVERY_S

    def __post_init__(self) -> None:
        if not 1 <= self.detect_mult <= 255:
            raise ValueError("detect_mult must be 1-255")
        if self.desired_min_tx_us <= 0 or self.required_min_rx_us < 0:
            raise ValueError("intervals must be positive")
        if not 1 <= self.minimum_ttl <= 255:
            raise ValueError("minimum_ttl must be 1-255")
        if self.recovery_timeout_s < 0:
            raise ValueError("recovery_timeout_s must not be negative")


@dataclass(frozen=True)
class StateChanged:
    """The session moved from ``old`` to ``new``; ``diag`` is the local diagnostic now.

    ``remote_state`` and ``remote_diag`` are what the remote said last; ``remote_new`` is
    True when the packet that moved the session came from a different remote session (its My
    Discriminator is not the one this session knew): the remote started over. A client tells
    a path failure from a session the remote ended with them (:mod:`vipcast.proto.bfd.client`).
    """

    old: State
    new: State
    diag: Diag
    remote_state: State = State.DOWN
    remote_diag: int = 0
    remote_new: bool = False


def jittered(interval_us: int, detect_mult: int, draw: float) -> float:
    """The delay in seconds before the next periodic packet (§6.8.7), ``draw`` in [0, 1)."""
    span = 0.15 if detect_mult == 1 else 0.25
    return interval_us * (0.75 + span * min(max(draw, 0.0), 1.0)) * _US


class Session:
    """The state variables of §6.8.1 and the procedures that move them."""

    def __init__(self, config: SessionConfig, local_discr: int, jitter: Jitter) -> None:
        if not 0 < local_discr <= 0xFFFF_FFFF:
            raise ValueError("local discriminator must be a non-zero 32-bit value")
        self.config = config
        self.local_discr = local_discr
        self._jitter = jitter
        self.state = State.DOWN
        self.remote_state = State.DOWN
        self.remote_discr = 0
        self.local_diag = Diag.NONE
        self.remote_diag = 0
        # advertised values (bfd.DesiredMinTxInterval, bfd.RequiredMinRxInterval)
        self.desired_min_tx_us = max(config.desired_min_tx_us, SLOW_TX_US)
        self.required_min_rx_us = config.required_min_rx_us
        # values in force while a Poll Sequence is pending (§6.8.3)
        self._tx_in_use_us = self.desired_min_tx_us
        self._rx_in_use_us = self.required_min_rx_us
        self.remote_min_rx_us = 1
        self.remote_desired_min_tx_us = 0
        self.remote_detect_mult = 0
        self.remote_demand = False
        self.polling = False
        self._poll_again = False
        self._started = False
        self._next_tx: float | None = None
        self._detect_at: float | None = None
        self._outbox: list[bytes] = []
        self._events: deque[StateChanged] = deque()

    # ------------------------------------------------------------------ inputs

    def start(self, now: float) -> None:
        """Begin transmitting (at once, unless passive and the remote is still unknown)."""
        self._started = True
        self._next_tx = now

    def receive_packet(self, data: bytes, now: float, ttl: int | None) -> DropReason | None:
        """Decode and process one datagram; return why it was dropped, or None if accepted."""
        try:
            packet = decode(data)
        except BFDPacketError as exc:
            return exc.reason
        return self.receive_control(packet, now, ttl)

    def receive_control(
        self, packet: ControlPacket, now: float, ttl: int | None
    ) -> DropReason | None:
        """Process a decoded packet (the reception procedure of §6.8.6)."""
        reason = self._check(packet, ttl)
        if reason is not None:
            return reason
        newly_known = self.remote_discr == 0
        remote_new = not newly_known and packet.my_discr != self.remote_discr
        self.remote_discr = packet.my_discr
        self.remote_state = packet.state
        self.remote_diag = packet.diag
        self.remote_demand = packet.demand
        self.remote_detect_mult = packet.detect_mult
        self.remote_desired_min_tx_us = packet.desired_min_tx_us
        old_remote_rx = self.remote_min_rx_us
        self.remote_min_rx_us = packet.required_min_rx_us
        if packet.final and self.polling:
            self._finish_poll()
        self._detect_at = now + self.detection_time_us * _US
        if self.remote_min_rx_us != old_remote_rx:
            self._reschedule(now)
        if self.config.passive and newly_known and self._started:
            self._next_tx = now  # a passive session answers as soon as the remote is known
        if self.state is State.ADMIN_DOWN:
            return DropReason.ADMIN_DOWN
        self._apply(RX_INPUT[packet.state], now, remote_new=remote_new)
        if packet.poll:
            self._outbox.append(self._control(final=True).encode())
        return None

    def handle_timer(self, now: float) -> None:
        """Do whatever is due at ``now``: declare the remote dead, send a periodic packet."""
        if self._detect_at is not None and now >= self._detect_at:
            self._detect_at = None
            self._expire(now)
        if self._next_tx is not None and now >= self._next_tx:
            if self._may_transmit():
                self._outbox.append(self._control(poll=self.polling).encode())
            interval = self.tx_interval_us
            self._next_tx = (
                now + jittered(interval, self.config.detect_mult, self._jitter())
                if interval
                else None
            )

    def admin_down(self, now: float) -> None:
        """Take the session administratively down (§6.8.16); the remote is told at once."""
        self._apply(Input.ADMIN_DOWN, now)
        self._outbox.append(self._control().encode())

    def admin_up(self, now: float) -> None:
        """Leave AdminDown; the session starts over from Down."""
        self._apply(Input.ADMIN_UP, now)
        if self._started and self._next_tx is None:
            self._next_tx = now

    def reconfigure(self, config: SessionConfig, now: float) -> None:
        """Adopt new intervals/multiplier; a Poll Sequence follows if the session is Up."""
        self.config = config
        self._renegotiate(now)

    # ------------------------------------------------------------------ outputs

    def packets_to_send(self) -> list[bytes]:
        """Payloads queued since the last call, oldest first."""
        out, self._outbox = self._outbox, []
        return out

    def next_event(self) -> StateChanged | None:
        """The oldest state change not yet taken, or None."""
        return self._events.popleft() if self._events else None

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` must next be called, or None if nothing is pending."""
        times = [t for t in (self._next_tx, self._detect_at) if t is not None]
        return min(times) if times else None

    @property
    def tx_interval_us(self) -> int:
        """The periodic transmission interval before jitter; 0 when periodic TX is off."""
        if self.remote_min_rx_us == 0:
            return 0
        return max(self._tx_in_use_us, self.remote_min_rx_us)

    @property
    def rx_interval_us(self) -> int:
        """The negotiated receive interval: how often the remote sends to us, before jitter."""
        return max(self._rx_in_use_us, self.remote_desired_min_tx_us)

    @property
    def detection_time_us(self) -> int:
        """How long the remote may stay silent before the session goes down."""
        return self.remote_detect_mult * self.rx_interval_us

    # ------------------------------------------------------------------ internals

    def _check(self, packet: ControlPacket, ttl: int | None) -> DropReason | None:
        if packet.your_discr not in (0, self.local_discr):
            return DropReason.NO_SESSION
        if packet.auth is not None:  # vipcast runs BFD without authentication
            return DropReason.AUTH_MISMATCH
        if ttl is not None:
            floor = self.config.minimum_ttl if self.config.multihop else SINGLE_HOP_TTL
            if ttl < floor:
                return DropReason.BAD_TTL
        return None

    def _may_transmit(self) -> bool:
        if self.config.passive and self.remote_discr == 0:
            return False
        both_up = self.state is State.UP and self.remote_state is State.UP
        return not (self.remote_demand and both_up and not self.polling)

    def _control(self, *, poll: bool = False, final: bool = False) -> ControlPacket:
        return ControlPacket(
            state=self.state,
            my_discr=self.local_discr,
            your_discr=self.remote_discr,
            diag=self.local_diag,
            detect_mult=self.config.detect_mult,
            desired_min_tx_us=self.desired_min_tx_us,
            required_min_rx_us=self.required_min_rx_us,
            poll=poll and not final,
            final=final,
        )

    def _apply(self, event: Input, now: float, *, remote_new: bool = False) -> None:
        move = step(self.state, event)
        if move is None:
            return
        new, diag = move
        old = self.state
        self.state = new
        if diag is not Diag.NONE or new is State.UP:
            self.local_diag = diag
        self._events.append(
            StateChanged(old, new, self.local_diag, self.remote_state, self.remote_diag, remote_new)
        )
        if new is State.ADMIN_DOWN:
            self._next_tx = None
            self._detect_at = None
        self._renegotiate(now)
        if new in (State.INIT, State.UP):
            self._transmit_now(now)

    def _transmit_now(self, now: float) -> None:
        """Send one packet at once (Poll if polling) and count the next interval from now."""
        if not self._started or not self._may_transmit():
            return
        self._outbox.append(self._control(poll=self.polling).encode())
        interval = self.tx_interval_us
        self._next_tx = (
            now + jittered(interval, self.config.detect_mult, self._jitter()) if interval else None
        )

    def _expire(self, now: float) -> None:
        """A Detection Time passed in silence (§6.8.1, §6.8.4)."""
        self._apply(Input.DETECTION_TIMEOUT, now)
        self.remote_discr = 0
        self.remote_state = State.DOWN
        self.remote_min_rx_us = 1
        self.remote_demand = False
        self._reschedule(now)

    def _renegotiate(self, now: float) -> None:
        """Recompute the advertised intervals for the current state (§6.8.3)."""
        cfg = self.config
        want_tx = (
            cfg.desired_min_tx_us
            if self.state is State.UP
            else max(cfg.desired_min_tx_us, SLOW_TX_US)
        )
        want_rx = cfg.required_min_rx_us
        if (want_tx, want_rx) == (self.desired_min_tx_us, self.required_min_rx_us):
            return
        up = self.state is State.UP
        if not up or want_tx < self._tx_in_use_us:
            self._tx_in_use_us = want_tx
        if not up or want_rx > self._rx_in_use_us:
            self._rx_in_use_us = want_rx
        self.desired_min_tx_us, self.required_min_rx_us = want_tx, want_rx
        if up:
            if self.polling:
                self._poll_again = True
            self.polling = True
        else:
            self.polling = self._poll_again = False
        self._reschedule(now)

    def _finish_poll(self) -> None:
        self._tx_in_use_us = self.desired_min_tx_us
        self._rx_in_use_us = self.required_min_rx_us
        self.polling, self._poll_again = self._poll_again, False

    def _reschedule(self, now: float) -> None:
        """Bring the next periodic packet forward if the interval just shrank."""
        if not self._started or self.state is State.ADMIN_DOWN:
            return
        interval = self.tx_interval_us
        if interval == 0:
            self._next_tx = None
            return
        soonest = now + jittered(interval, self.config.detect_mult, self._jitter())
        if self._next_tx is None or self._next_tx > soonest:
            self._next_tx = soonest
