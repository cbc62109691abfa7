"""BGP sessions driven by hand with a fake clock: two wired back to back (``Pair``), or one
fed bytes (``opened``, ``established``), and what they sent and reported."""

from __future__ import annotations

from typing import TypeVar

from vipcast.proto.bgp import (
    IPV4_UNICAST,
    CloseWanted,
    Session,
    SessionConfig,
    SessionEvent,
    State,
)
from vipcast.proto.bgp.attributes import WireContext
from vipcast.proto.bgp.capabilities import FourOctetAs, Multiprotocol
from vipcast.proto.bgp.messages import Keepalive, Message, Open, decode_message, encode_message
from vipcast.proto.bgp.wire import Framer

A_CFG = SessionConfig(65001, 65002, "192.0.2.1", hold_time=90, next_hop_v6="2001:db8::1")
B_CFG = SessionConfig(65002, 65001, "192.0.2.2", hold_time=30, passive=True)
E = TypeVar("E")


def drain(session: Session) -> list[SessionEvent]:
    out = []
    while (event := session.next_event()) is not None:
        out.append(event)
    return out


def messages(raw: bytes, ctx: WireContext | None = None) -> list[Message]:
    framer = Framer(65535)
    framer.feed(raw)
    out = []
    while (item := framer.next_message()) is not None:
        out.append(decode_message(item[0], item[1], ctx or WireContext()))
    return out


class Pair:
    """Two sessions over an in-memory 'TCP' with a fake clock."""

    def __init__(self, a: SessionConfig = A_CFG, b: SessionConfig = B_CFG) -> None:
        self.a, self.b = Session(a), Session(b)
        self.now = 0.0
        self.events: dict[str, list[SessionEvent]] = {"a": [], "b": []}
        self.wire: dict[str, list[Message]] = {"a": [], "b": []}  # what each side sent

    def connect(self) -> None:
        self.a.start(self.now)
        self.b.start(self.now)
        self.a.connection_made(self.now, "192.0.2.1")
        self.b.connection_made(self.now, "192.0.2.2")
        self.pump()

    def pump(self) -> None:
        for _ in range(100):
            moved = False
            for name, src, dst in (("a", self.a, self.b), ("b", self.b, self.a)):
                data = src.data_to_send()
                if data:
                    moved = True
                    self.wire[name] += messages(data)
                    dst.receive_data(data, self.now)
            for name, src, dst in (("a", self.a, self.b), ("b", self.b, self.a)):
                new = drain(src)
                self.events[name] += new
                if any(isinstance(e, CloseWanted) for e in new):
                    data = src.data_to_send()
                    self.wire[name] += messages(data)
                    dst.receive_data(data, self.now)
                    dst.connection_lost(self.now)
                    moved = True
            if not moved:
                return
        raise AssertionError("pump did not settle")

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.a.handle_timer(self.now)
        self.b.handle_timer(self.now)
        self.pump()


def state(session: Session) -> State:
    """The state, read through a call so mypy does not narrow it between steps."""
    return session.state


def of(kind: type[E], events: list[SessionEvent]) -> list[E]:
    return [e for e in events if isinstance(e, kind)]


def open_bytes(**kw: object) -> bytes:
    base: dict[str, object] = {
        "asn": 65002,
        "hold_time": 90,
        "router_id": "192.0.2.2",
        "capabilities": (Multiprotocol(IPV4_UNICAST), FourOctetAs(65002)),
    }
    base.update(kw)
    return encode_message(Open(**base))  # type: ignore[arg-type]


def opened(config: SessionConfig = A_CFG) -> Session:
    s = Session(config)
    s.start(0)
    s.connection_made(0, "192.0.2.1")
    s.data_to_send()
    drain(s)
    return s


def established(config: SessionConfig = A_CFG, peer_open: bytes | None = None) -> Session:
    s = opened(config)
    s.receive_data((peer_open or open_bytes()) + encode_message(Keepalive()), 1)
    assert s.state is State.ESTABLISHED
    s.data_to_send()
    drain(s)
    return s
