"""One BGP session over one TCP connection at a time, sans-IO (aioquic style).

The driver feeds bytes, connection changes and the time in; it takes bytes, a deadline and
events out. The FSM decisions come from :mod:`.fsm`'s tables; this class only executes the
actions they name. See ``docs/bgp-session-api.md`` for the driver's side of the contract.
"""

from __future__ import annotations

import enum
import ipaddress
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from .adj_rib_out import AdjRibOut
from .attributes import WireContext
from .capabilities import (
    Capability,
    ExtendedMessage,
    FourOctetAs,
    GracefulRestart,
    Multiprotocol,
    RouteRefreshCapability,
)
from .config import SessionConfig, SessionStats, idle_hold
from .constants import (
    IPV4_UNICAST,
    IPV6_UNICAST,
    LARGE_HOLD_TIME,
    MAX_MESSAGE_LEN,
    CeaseSubcode,
    ErrorCode,
    Family,
    FsmSubcode,
    HeaderSubcode,
    MessageType,
    State,
)
from .errors import BGPError
from .events import (
    CloseWanted,
    ConnectWanted,
    EndOfRibReceived,
    Established,
    NotificationReceived,
    NotificationSent,
    RouteRefreshReceived,
    RoutesReceived,
    SessionDown,
    SessionEvent,
    StateChanged,
)
from .fsm import Action, Event, is_fsm_error, transition
from .messages import (
    Keepalive,
    Notification,
    Open,
    RouteRefresh,
    decode_message,
    encode_message,
    shutdown_data,
)
from .negotiation import Negotiated, my_as_field, negotiate
from .packing import Outbound, RouteAttributes, end_of_rib
from .update import UpdateSummary, summarize_update
from .wire import Framer

_KEEPALIVE_BYTES = encode_message(Keepalive())


class Timer(enum.Enum):
    CONNECT_RETRY = Event.CONNECT_RETRY_EXPIRES
    HOLD = Event.HOLD_EXPIRES
    KEEPALIVE = Event.KEEPALIVE_EXPIRES
    IDLE_HOLD = Event.AUTOMATIC_START


_FSM_SUBCODE = {
    State.OPEN_SENT: FsmSubcode.UNEXPECTED_IN_OPEN_SENT,
    State.OPEN_CONFIRM: FsmSubcode.UNEXPECTED_IN_OPEN_CONFIRM,
    State.ESTABLISHED: FsmSubcode.UNEXPECTED_IN_ESTABLISHED,
}


@dataclass
class _Down:
    """Why the session is going down, collected before SESSION_DOWN reports it."""

    reason: str = "connection lost"
    notification: Notification | None = None
    sent: bool = False


class Session:
    """A sans-IO BGP speaker for one peer (see the module docstring)."""

    def __init__(self, config: SessionConfig) -> None:
        self.config = config
        self.state = State.IDLE
        self.negotiated: Negotiated | None = None
        self.peer_router_id: str | None = None
        self.stats = SessionStats()
        self._out = bytearray()
        self._events: deque[SessionEvent] = deque()
        self._framer = Framer()
        self._deadlines: dict[Timer, float] = {}
        self._connected = False
        self._local_address: str | None = None
        self._auto_restart = False
        #: drops in a row (RFC 4271 §8.1.1 DampPeerOscillations): each one the session went
        #: down and restarts on its own; a session Established for ``stable_time`` ends the row
        self.oscillations = 0
        self._up_since: float | None = None
        self._shutdown_message = ""
        self._error: BGPError | None = None
        self._pending: UpdateSummary | RouteRefresh | None = None
        self._offered: Negotiated | None = None
        self._down = _Down()
        self._ctx = WireContext()
        self._outbound: Outbound | None = None
        self._rib = AdjRibOut()
        self.local_open = self._build_open()

    # ------------------------------------------------------------------ driver inputs

    def start(self, now: float) -> None:
        """ManualStart (with passive TCP establishment if configured)."""
        self._auto_restart = True
        self._dispatch(
            Event.MANUAL_START_PASSIVE if self.config.passive else Event.MANUAL_START, now
        )

    def stop(self, now: float, message: str = "") -> None:
        """ManualStop: Cease/Administrative Shutdown (RFC 9003 ``message``), no auto-restart."""
        self._auto_restart = False
        self._shutdown_message = message
        self._down = _Down("administrative shutdown")
        self._dispatch(Event.MANUAL_STOP, now)

    def connection_made(self, now: float, local_address: str | None = None) -> None:
        self._connected = True
        self._local_address = local_address
        self._framer.clear()
        self._out.clear()
        self._dispatch(Event.CONNECTION_MADE, now)

    def connection_lost(self, now: float) -> None:
        if not self._connected and self.state is not State.CONNECT:
            return  # we closed it ourselves, or there was none
        self._connected = False
        self._framer.clear()
        self._down = _Down("connection lost")
        self._dispatch(Event.CONNECTION_LOST, now)

    def resolve_collision(self, now: float) -> None:
        """This connection lost a collision (RFC 4271 §6.8): Cease/Collision, then close."""
        self._down = _Down("connection collision resolution")
        self._dispatch(Event.COLLISION_DUMP, now)

    def receive_data(self, data: bytes, now: float) -> None:
        if not self._connected:
            return
        self._framer.feed(data)
        while self._connected:
            try:
                item = self._framer.next_message()
                if item is None:
                    return
                self.stats.messages_received += 1
                self._receive(item[0], item[1], now)
            except BGPError as error:
                self._fail(error, now)

    def handle_timer(self, now: float) -> None:
        """Fire the timers due at ``now``, each at most once (re-armed ones wait for a call)."""
        due = sorted(
            ((when, timer) for timer, when in self._deadlines.items() if when <= now),
            key=lambda item: item[0],
        )
        for when, timer in due:
            if self._deadlines.get(timer) != when:
                continue  # stopped or re-armed by an earlier timer's actions
            del self._deadlines[timer]
            event = timer.value
            if timer is Timer.HOLD:
                self._down = _Down("hold timer expired")
            elif timer is Timer.IDLE_HOLD and self.config.passive:
                event = Event.AUTOMATIC_START_PASSIVE
            self._dispatch(event, now)

    def set_routes(self, routes: Mapping[str, RouteAttributes]) -> None:
        """Replace the desired Adj-RIB-Out; the difference goes out if Established."""
        self._rib.set_desired(routes)
        if self.state is State.ESTABLISHED:
            self._sync()

    def update_routes(self, changes: Mapping[str, RouteAttributes | None]) -> None:
        """Change only these prefixes of the desired Adj-RIB-Out (None: withdraw); the
        difference goes out if Established."""
        self._rib.update_desired(changes)
        if self.state is State.ESTABLISHED:
            self._sync()

    # ------------------------------------------------------------------ driver outputs

    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    def next_deadline(self) -> float | None:
        return min(self._deadlines.values(), default=None)

    def idle_hold_until(self) -> float | None:
        """When the automatic restart is due (None: no idle hold is running)."""
        return self._deadlines.get(Timer.IDLE_HOLD)

    def next_event(self) -> SessionEvent | None:
        return self._events.popleft() if self._events else None

    # ------------------------------------------------------------------ receiving

    def _receive(self, msg_type: int, body: bytes, now: float) -> None:
        if msg_type == MessageType.UPDATE:
            self.stats.updates_received += 1
            if self.state is State.ESTABLISHED:
                self._pending = summarize_update(body, self._ctx)
            self._dispatch(Event.UPDATE_RECEIVED, now)
        elif msg_type == MessageType.KEEPALIVE:
            self.stats.keepalives_received += 1
            self._dispatch(Event.KEEPALIVE_RECEIVED, now)
        elif msg_type == MessageType.NOTIFICATION:
            message = decode_message(msg_type, body, self._ctx)
            assert isinstance(message, Notification)
            self.stats.notifications_received += 1
            self.stats.last_error = f"received NOTIFICATION {message.describe()}"
            self._events.append(NotificationReceived(message))
            self._down = _Down(self.stats.last_error, message, sent=False)
            self._dispatch(Event.NOTIFICATION_RECEIVED, now)
        elif msg_type == MessageType.OPEN:
            self._receive_open(body, now)
        else:  # ROUTE_REFRESH (the framer rejects unknown types)
            if not self.config.route_refresh:
                raise BGPError(
                    ErrorCode.MESSAGE_HEADER,
                    HeaderSubcode.BAD_MESSAGE_TYPE,
                    bytes((msg_type,)),
                    "ROUTE-REFRESH without the capability",
                )
            message = decode_message(msg_type, body, self._ctx)
            assert isinstance(message, RouteRefresh)
            self._pending = message
            self._dispatch(Event.UPDATE_RECEIVED, now)

    def _receive_open(self, body: bytes, now: float) -> None:
        if is_fsm_error(self.state, Event.OPEN_RECEIVED):
            # RFC 6608 §4: an OPEN after the OPEN exchange is an unexpected message, whatever
            # its content: FSM error with the state's subcode, not an OPEN error from decoding
            self._dispatch(Event.OPEN_RECEIVED, now)
            return
        remote = decode_message(MessageType.OPEN, body, self._ctx)
        assert isinstance(remote, Open)
        self.peer_router_id = remote.router_id
        if Action.NEGOTIATE in transition(self.state, Event.OPEN_RECEIVED).actions:
            self._offered = negotiate(
                self.local_open,
                remote,
                local_asn=self.config.local_asn,
                expected_peer_asn=self.config.peer_asn,
                keepalive_time=self.config.keepalive_time,
            )
        self._dispatch(Event.OPEN_RECEIVED, now)

    def _fail(self, error: BGPError, now: float) -> None:
        self._error = error
        self._dispatch(Event.MESSAGE_ERROR, now)

    # ------------------------------------------------------------------ the FSM

    def _dispatch(self, event: Event, now: float) -> None:
        old = self.state
        step = transition(old, event)
        self.state = step.next_state
        if self.state is not old:
            self._events.append(StateChanged(old, self.state))
        for action in step.actions:
            self._act(action, old, now)

    def _act(self, action: Action, old: State, now: float) -> None:
        """Execute one FSM action (the names are documented in :class:`.fsm.Action`)."""
        cfg = self.config
        if action is Action.CONNECT:
            if not cfg.passive:
                self._events.append(ConnectWanted())
        elif action is Action.CLOSE:
            if self._connected:
                self._connected = False
                self._framer.clear()
                self._events.append(CloseWanted())
        elif action is Action.SEND_OPEN:
            self._send(encode_message(self.local_open))
        elif action is Action.SEND_KEEPALIVE:
            self.stats.keepalives_sent += 1
            self._send(_KEEPALIVE_BYTES)
        elif action is Action.SEND_ERROR:
            error = self._error or BGPError(ErrorCode.FSM, 0)
            self._notify(Notification.from_error(error), error.reason)
        elif action is Action.SEND_FSM_ERROR:
            subcode = _FSM_SUBCODE.get(old, FsmSubcode.UNSPECIFIED)
            self._notify(Notification(ErrorCode.FSM, subcode), f"unexpected event in {old.value}")
        elif action is Action.SEND_HOLD_EXPIRED:
            self._notify(Notification(ErrorCode.HOLD_TIMER_EXPIRED), "hold timer expired")
        elif action is Action.SEND_CEASE_SHUTDOWN:
            data = shutdown_data(self._shutdown_message)
            note = Notification(ErrorCode.CEASE, CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, data)
            self._notify(note, "administrative shutdown")
        elif action is Action.SEND_CEASE_COLLISION:
            note = Notification(ErrorCode.CEASE, CeaseSubcode.CONNECTION_COLLISION_RESOLUTION)
            self._notify(note, "connection collision resolution")
        elif action is Action.START_CONNECT_RETRY:
            if not cfg.passive:
                self._deadlines[Timer.CONNECT_RETRY] = now + cfg.connect_retry_time
        elif action is Action.STOP_CONNECT_RETRY:
            self._deadlines.pop(Timer.CONNECT_RETRY, None)
        elif action is Action.START_HOLD_LARGE:
            self._deadlines[Timer.HOLD] = now + LARGE_HOLD_TIME
        elif action is Action.RESTART_HOLD:
            self._restart(Timer.HOLD, self.negotiated.hold_time if self.negotiated else 0, now)
        elif action is Action.RESTART_KEEPALIVE:
            ka = self.negotiated.keepalive_time if self.negotiated else 0
            self._restart(Timer.KEEPALIVE, ka, now)
        elif action is Action.STOP_TIMERS:
            for timer in (Timer.CONNECT_RETRY, Timer.HOLD, Timer.KEEPALIVE):
                self._deadlines.pop(timer, None)
        elif action is Action.START_IDLE_HOLD:
            if self._auto_restart:
                self.oscillations += 1
                self._deadlines[Timer.IDLE_HOLD] = now + idle_hold(cfg, self.oscillations)
        elif action is Action.STOP_IDLE_HOLD:
            self._deadlines.pop(Timer.IDLE_HOLD, None)
        elif action is Action.NEGOTIATE:
            self._adopt(self._offered)
        elif action is Action.SESSION_UP:
            self._up_since = now
            self._session_up()
        elif action is Action.SESSION_DOWN:
            if self._up_since is not None and now - self._up_since >= cfg.stable_time:
                self.oscillations = 0  # a stable session ended: its drop starts a new row
            self._up_since = None
            self._session_down()
        elif action is Action.PROCESS_MESSAGE:
            self._process(self._pending)
            self._pending = None

    def _restart(self, timer: Timer, seconds: float, now: float) -> None:
        if seconds > 0:
            self._deadlines[timer] = now + seconds
        else:
            self._deadlines.pop(timer, None)

    # ------------------------------------------------------------------ action helpers

    def _send(self, data: bytes) -> None:
        self._out += data
        self.stats.messages_sent += 1

    def _notify(self, note: Notification, reason: str) -> None:
        if not self._connected:
            return
        self._send(encode_message(note))
        self.stats.notifications_sent += 1
        self.stats.last_error = f"sent NOTIFICATION {note.describe()}: {reason}"
        self._events.append(NotificationSent(note))
        self._down = _Down(reason, note, sent=True)

    def _build_open(self) -> Open:
        cfg = self.config
        families = sorted(cfg.families, key=lambda f: (f.afi, f.safi))
        caps: list[Capability] = [Multiprotocol(f) for f in families]
        if cfg.route_refresh:
            caps.append(RouteRefreshCapability())
        caps.append(FourOctetAs(cfg.local_asn))
        if cfg.extended_messages:
            caps.append(ExtendedMessage())
        if cfg.graceful_restart:
            caps.append(
                GracefulRestart(
                    restart_time=cfg.restart_time,
                    restarting=cfg.restarting,
                    families=tuple((f, False) for f in families),
                )
            )
        return Open(my_as_field(cfg.local_asn), cfg.hold_time, cfg.router_id, tuple(caps))

    def _adopt(self, negotiated: Negotiated | None) -> None:
        if negotiated is None:
            return
        self.negotiated = negotiated
        self._offered = None
        self._framer.max_len = negotiated.max_message_len
        self._ctx = WireContext(
            four_octet_as=negotiated.four_octet_as,
            ibgp=negotiated.ibgp,
            families=negotiated.families,
        )
        self._outbound = Outbound(
            local_asn=self.config.local_asn,
            ibgp=negotiated.ibgp,
            four_octet_as=negotiated.four_octet_as,
            max_message_len=negotiated.max_message_len,
            next_hop_v4=self._next_hop_v4(),
            next_hop_v6=self._next_hop_v6(),
            update_len=self.config.update_size,
        )

    def _next_hop_v4(self) -> bytes | None:
        addr = self.config.next_hop_v4 or self._local_address
        if addr is None:
            return None
        ip = ipaddress.ip_address(addr)
        return ip.packed if ip.version == 4 else None

    def _next_hop_v6(self) -> bytes | None:
        addr = self.config.next_hop_v6 or self._local_address
        if addr is None:
            return None
        ip = ipaddress.ip_address(addr)
        if ip.version != 6:
            return None
        hop = ip.packed
        if self.config.next_hop_v6_link_local:
            hop += ipaddress.IPv6Address(self.config.next_hop_v6_link_local).packed
        return hop

    def _session_up(self) -> None:
        assert self.negotiated is not None
        self.stats.established_count += 1
        self._events.append(Established(self.negotiated))
        self._rib.forget_sent()
        self._sync()
        for family in sorted(self.negotiated.families, key=lambda f: (f.afi, f.safi)):
            self._send(end_of_rib(family))
            self.stats.updates_sent += 1

    def _session_down(self) -> None:
        down = self._down
        self._events.append(SessionDown(down.reason, down.notification, down.sent))
        if not down.sent and down.notification is None:
            self.stats.last_error = down.reason
        self.negotiated = None
        self.peer_router_id = None
        self._outbound = None
        self._ctx = WireContext()
        self._framer.max_len = MAX_MESSAGE_LEN
        self._rib.forget_sent()
        self.stats.prefixes_advertised = 0
        self._down = _Down()
        self._error = None

    def _process(self, pending: UpdateSummary | RouteRefresh | None) -> None:
        if isinstance(pending, UpdateSummary):
            self.stats.prefixes_received += pending.announced
            self.stats.withdrawals_received += pending.withdrawn
            if pending.end_of_rib is not None:
                self._events.append(EndOfRibReceived(pending.end_of_rib))
            else:
                self._events.append(
                    RoutesReceived(pending.announced, pending.withdrawn, pending.treat_as_withdraw)
                )
        elif isinstance(pending, RouteRefresh):
            negotiated = self.negotiated
            if negotiated is None or pending.family not in negotiated.families:
                return  # RFC 2918 §4: ignore families we did not negotiate
            if pending.subtype != 0:
                return  # RFC 7313 BoRR/EoRR markers: we did not offer enhanced refresh
            self._events.append(RouteRefreshReceived(pending.family))
            self._resend(pending.family)

    # ------------------------------------------------------------------ Adj-RIB-Out

    def _sendable(self) -> frozenset[Family]:
        out, negotiated = self._outbound, self.negotiated
        if out is None or negotiated is None:
            return frozenset()
        fams = set()
        if out.next_hop_v4 is not None and IPV4_UNICAST in negotiated.families:
            fams.add(IPV4_UNICAST)
        if out.next_hop_v6 is not None and IPV6_UNICAST in negotiated.families:
            fams.add(IPV6_UNICAST)
        return frozenset(fams)

    def _sync(self) -> None:
        if self._outbound is not None:
            self._send_updates(self._rib.sync(self._outbound, self._sendable()))
        self.stats.prefixes_advertised = len(self._rib.sent)

    def _resend(self, family: Family) -> None:
        if self._outbound is not None:
            self._send_updates(self._rib.resend(family, self._outbound))

    def _send_updates(self, messages: list[bytes]) -> None:
        for message in messages:
            self._out += message
        self.stats.messages_sent += len(messages)
        self.stats.updates_sent += len(messages)


__all__ = ["Session", "SessionConfig", "SessionStats"]
