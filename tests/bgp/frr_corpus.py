"""The FRR bgpd fuzzing corpus as a conformance set: where it is, and what each file should get.

The corpus (3,234 raw BGP messages, MIT, by Quentin Young) is read from ``$VIPCAST_BGP_CORPUS``,
else from ``<project root>/../shared/corpora/bgp-frr/bgpd``, else from the unchanged copy packed in
``vectors/frr-corpus/bgpd.tar.xz`` (so a clean checkout anywhere runs all of it).

Each file is one peer's byte stream. :func:`codec_outcome` reads it with the codec alone
(framer, message decoders, both UPDATE readers) as a session in Established would, and
:func:`open_sent_outcome` reads an OPEN as a session in OpenSent would; both return a list of
per-message classes, every one of which names its rule in :data:`RULES`. The recorded outcomes
live in ``vectors/frr_corpus_outcomes.json``; ``VIPCAST_REGENERATE_CORPUS_OUTCOMES=1`` rewrites it.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tarfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from vipcast.proto.bgp import (
    EndOfRibReceived,
    NotificationReceived,
    NotificationSent,
    RouteRefreshReceived,
    RoutesReceived,
    Session,
    SessionConfig,
    SessionEvent,
    State,
)
from vipcast.proto.bgp.attributes import MpReach, MpUnreach, WireContext, decode_attributes
from vipcast.proto.bgp.constants import MessageType
from vipcast.proto.bgp.errors import BGPError
from vipcast.proto.bgp.messages import RouteRefresh, decode_message
from vipcast.proto.bgp.update import Update, decode_update, summarize_update
from vipcast.proto.bgp.wire import Framer

ROOT = Path(__file__).resolve().parents[2]
CORPUS_ENV = "VIPCAST_BGP_CORPUS"
REGENERATE_ENV = "VIPCAST_REGENERATE_CORPUS_OUTCOMES"
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpora" / "bgp-frr" / "bgpd"
OUTCOMES = Path(__file__).parent / "vectors" / "frr_corpus_outcomes.json"
PACKED = Path(__file__).parent / "vectors" / "frr-corpus" / "bgpd.tar.xz"
EXPECTED_FILES = 3234

#: the corpus's own OPEN (AS 10, hold time 9 s, IPv4 unicast, route refresh, 4-octet AS,
#: ADD-PATH, FQDN, graceful restart) is what the peer says when the session comes up
PEER_OPEN_FILE = "seed/bgp-open.bin"
LOCAL_ASN, PEER_ASN = 65001, 10
KEEPALIVE = b"\xff" * 16 + b"\x00\x13\x04"


def corpus_dir() -> Path:
    return Path(os.environ.get(CORPUS_ENV) or DEFAULT_CORPUS)


@cache
def corpus() -> dict[str, bytes]:
    directory = corpus_dir()
    if not (directory / "seed").is_dir() or not (directory / "gen").is_dir():
        if not os.environ.get(CORPUS_ENV) and PACKED.is_file():
            return packed_corpus(PACKED)
        pytest.fail(
            f"the FRR bgpd corpus is missing at {directory} (seed/ and gen/ expected): set "
            f"${CORPUS_ENV} or place it at <project>/../shared/corpora/bgp-frr/bgpd"
        )
    return {name: (directory / name).read_bytes() for name in corpus_files(directory)}


def recorded() -> dict[str, dict[str, object]]:
    files: dict[str, dict[str, object]] = json.loads(OUTCOMES.read_text())["files"]
    return files


def packed_corpus(archive: Path) -> dict[str, bytes]:
    """The corpus from its packed copy: ``bgpd/seed/...`` and ``bgpd/gen/...`` members."""
    files: dict[str, bytes] = {}
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            if member.isfile() and len(parts) == 3 and parts[1] in ("seed", "gen"):
                handle = tar.extractfile(member)
                assert handle is not None
                files[f"{parts[1]}/{parts[2]}"] = handle.read()
    return dict(sorted(files.items()))


def corpus_files(directory: Path) -> list[str]:
    """Relative names (``seed/...``, ``gen/...``) of every corpus file, sorted."""
    return sorted(
        f"{sub}/{path.name}"
        for sub in ("seed", "gen")
        for path in (directory / sub).iterdir()
        if path.is_file()
    )


def sha1(data: bytes) -> str:
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


# --------------------------------------------------------------------------- the rules

_TAW = "RFC 7606 §2 treat-as-withdraw: the UPDATE's routes are withdrawn, the session stays"
_RESET = "session reset: NOTIFICATION, then close"

#: every class a message can end in, and the rule that gives that answer
RULES: dict[str, str] = {
    "update": "RFC 4271 §6.3: a well-formed UPDATE, accepted",
    "update/attribute-discard": "RFC 7606 §2 attribute-discard (§7.6 ATOMIC_AGGREGATE, §7.7 "
    "AGGREGATOR, RFC 6793 §6 AS4_*; §3g repeated attributes): the attribute is dropped, the "
    "UPDATE accepted",
    "update/ignored-family": "RFC 4760 §7: MP_REACH/MP_UNREACH for an AFI/SAFI not negotiated is "
    "ignored",
    "end-of-rib": "RFC 4724 §2: End-of-RIB marker",
    "keepalive": "RFC 4271 §4.4: KEEPALIVE",
    "route-refresh": "RFC 2918 §4: ROUTE-REFRESH for a negotiated family: answered",
    "route-refresh/ignored": "RFC 2918 §4: ROUTE-REFRESH for a family not negotiated is "
    "ignored; RFC 7313 §4: BoRR/EoRR subtypes are ignored when enhanced refresh was not "
    "negotiated",
    "notification-received": "RFC 4271 §8.2.2 (Event 25): the peer's NOTIFICATION ends the "
    "session; none is sent back",
    "incomplete": "RFC 4271 §4.1: the header's Length is more than the bytes given: the rest is "
    "waited for (the hold timer bounds the wait)",
    "open-accepted": "RFC 4271 §6.2, §8.2.2 (Event 19): the OPEN is acceptable: KEEPALIVE, "
    "OpenConfirm",
    "treat-as-withdraw 3/1": f"{_TAW} (RFC 7606 §4: the attribute section cannot be parsed)",
    "treat-as-withdraw 3/3": f"{_TAW} (RFC 7606 §3d: a mandatory well-known attribute is missing)",
    "treat-as-withdraw 3/4": f"{_TAW} (RFC 7606 §3c: attribute flags conflict with the type)",
    "treat-as-withdraw 3/5": f"{_TAW} (RFC 7606 §7.1-§7.9, §7.14-§7.15 attribute length; §4 an "
    "attribute overruns the section)",
    "treat-as-withdraw 3/6": f"{_TAW} (RFC 7606 §7.1: undefined ORIGIN)",
    "treat-as-withdraw 3/8": f"{_TAW} (RFC 7606 §7.3 / RFC 4271 §6.3: invalid NEXT_HOP)",
    "treat-as-withdraw 3/9": f"{_TAW} (RFC 7606 §7.11: MP_REACH next hop length does not fit "
    "the AFI)",
    "treat-as-withdraw 3/11": f"{_TAW} (RFC 7606 §7.2: malformed AS_PATH, or a confederation "
    "segment from an external peer)",
    "N1/1": f"RFC 4271 §6.1: Connection Not Synchronized (marker not all ones); {_RESET}",
    "N1/2": f"RFC 4271 §6.1: Bad Message Length (below the type's minimum, above 4096 without "
    f"RFC 8654, KEEPALIVE not 19); {_RESET}",
    "N1/3": f"RFC 4271 §6.1: Bad Message Type; {_RESET}",
    "N2/0": f"RFC 4271 §6.2, §4.5: malformed OPEN (optional parameter or capability lengths), "
    f"unspecific subcode; {_RESET}",
    "N2/1": f"RFC 4271 §6.2: Unsupported Version Number; {_RESET}",
    "N2/2": f"RFC 4271 §6.2, RFC 6793 §4.1: Bad Peer AS; {_RESET}",
    "N2/3": f"RFC 4271 §6.2, RFC 6286 §2.2: Bad BGP Identifier; {_RESET}",
    "N2/4": f"RFC 4271 §6.2 / RFC 5492 §3: Unsupported Optional Parameter; {_RESET}",
    "N2/6": f"RFC 4271 §6.2: Unacceptable Hold Time (1 or 2 s); {_RESET}",
    "N3/1": f"RFC 4271 §6.3: Malformed Attribute List (withdrawn or attribute length overruns "
    f"the message; RFC 7606 §3g repeated MP_REACH/MP_UNREACH); {_RESET}",
    "N3/2": f"RFC 4271 §6.3: Unrecognized Well-known Attribute (unknown type without the "
    f"Optional bit); {_RESET}",
    "N3/4": f"RFC 7606 §3c with §7.11: flags error on MP_REACH/MP_UNREACH; {_RESET}",
    "N3/5": f"RFC 7606 §4 with §7.11: MP_REACH/MP_UNREACH overruns the section; {_RESET}",
    "N3/9": f"RFC 7606 §7.11, RFC 4760 §7: malformed MP_REACH/MP_UNREACH; {_RESET}",
    "N3/10": f"RFC 4271 §6.3, RFC 7606 §5.3: NLRI or withdrawn routes cannot be parsed "
    f"(Invalid Network Field); {_RESET}",
    "N5/1": f"RFC 6608 §4: unexpected message in OpenSent; {_RESET}",
    "N5/2": f"RFC 6608 §4: unexpected message in OpenConfirm; {_RESET}",
    "N5/3": f"RFC 6608 §4: unexpected message in Established (an OPEN after the exchange); "
    f"{_RESET}",
    "N7/1": f"RFC 7313 §5: ROUTE-REFRESH of invalid length; {_RESET}",
}


def is_rejection(cls: str) -> bool:
    return cls.startswith(("N", "treat-as-withdraw"))


# --------------------------------------------------------------------------- sessions


def session_config(**overrides: object) -> SessionConfig:
    return SessionConfig(LOCAL_ASN, PEER_ASN, "192.0.2.1", passive=True, **overrides)  # type: ignore[arg-type]


def open_sent_session() -> Session:
    session = Session(session_config())
    session.start(0.0)
    session.connection_made(0.0, "192.0.2.1")
    assert session.state is State.OPEN_SENT
    session.data_to_send()
    drain(session)
    return session


def established_session(peer_open: bytes) -> Session:
    session = open_sent_session()
    session.receive_data(peer_open + KEEPALIVE, 0.0)
    assert session.state is State.ESTABLISHED, session.state
    session.data_to_send()
    drain(session)
    return session


def drain(session: Session) -> list[SessionEvent]:
    out = []
    while (event := session.next_event()) is not None:
        out.append(event)
    return out


@dataclass(frozen=True)
class Negotiation:
    """What the Established session agreed with the corpus's OPEN (read back from a session)."""

    ctx: WireContext
    max_len: int
    route_refresh: bool

    @classmethod
    def of(cls, session: Session) -> Negotiation:
        n = session.negotiated
        assert n is not None
        ctx = WireContext(four_octet_as=n.four_octet_as, ibgp=n.ibgp, families=n.families)
        return cls(ctx, n.max_message_len, n.route_refresh)


# --------------------------------------------------------------------------- classifiers


def _error_class(error: BGPError) -> str:
    return f"N{error.code}/{error.subcode}"


def _update_class(body: bytes, ctx: WireContext) -> str:
    """Both UPDATE readers must agree; the summary's outcome is the class."""
    try:
        summary = summarize_update(body, ctx)
    except BGPError as error:
        try:
            decode_update(body, ctx)
        except BGPError as again:
            assert (again.code, again.subcode) == (error.code, error.subcode), (error, again)
            return _error_class(error)
        raise AssertionError(f"summarize_update raised {error!r}, decode_update did not") from None
    update = decode_update(body, ctx)
    assert update.treat_as_withdraw == summary.treat_as_withdraw
    if summary.withdraw_reason is not None:
        first = summary.withdraw_reason
        return f"treat-as-withdraw {first.code}/{first.subcode}"
    if summary.end_of_rib is not None:
        return "end-of-rib"
    if summary.discarded:
        return "update/attribute-discard"
    if _ignored_family(body, ctx, update):
        return "update/ignored-family"
    return "update"


def _ignored_family(body: bytes, ctx: WireContext, update: Update) -> bool:
    """An MP attribute was present but its family is not negotiated (RFC 4760 §7)."""
    (wlen,) = struct.unpack_from("!H", body)
    (alen,) = struct.unpack_from("!H", body, 2 + wlen)
    section = decode_attributes(body[4 + wlen : 4 + wlen + alen], ctx)
    kept = {type(a) for a in update.attributes}
    return (section.mp_reach is not None and MpReach not in kept) or (
        section.mp_unreach is not None and MpUnreach not in kept
    )


def codec_outcome(data: bytes, nego: Negotiation) -> list[str]:
    """Per-message classes of a byte stream received in Established (codec only)."""
    framer = Framer(nego.max_len)
    framer.feed(data)
    out: list[str] = []
    while True:
        try:
            item = framer.next_message()
        except BGPError as error:
            return [*out, _error_class(error)]
        if item is None:
            return [*out, "incomplete"] if framer.buffered else out
        msg_type, body = item
        try:
            cls = _message_class(msg_type, body, nego)
        except BGPError as error:
            return [*out, _error_class(error)]
        out.append(cls)
        if cls.startswith("N") or cls == "notification-received":
            return out


def _message_class(msg_type: int, body: bytes, nego: Negotiation) -> str:
    if msg_type == MessageType.UPDATE:
        return _update_class(body, nego.ctx)
    if msg_type == MessageType.OPEN:
        return "N5/3"  # RFC 6608 §4, whatever the OPEN holds
    if msg_type == MessageType.KEEPALIVE:
        decode_message(msg_type, body, nego.ctx)
        return "keepalive"
    if msg_type == MessageType.NOTIFICATION:
        decode_message(msg_type, body, nego.ctx)
        return "notification-received"
    message = decode_message(msg_type, body, nego.ctx)
    assert isinstance(message, RouteRefresh)
    if message.family in nego.ctx.families and message.subtype == 0:
        return "route-refresh"
    return "route-refresh/ignored"


def open_sent_outcome(data: bytes) -> list[str]:
    """Classes of a byte stream received in OpenSent, from a sans-IO session."""
    session = open_sent_session()
    session.receive_data(data, 1.0)
    return session_classes(session, drain(session))


def session_classes(session: Session, events: list[SessionEvent]) -> list[str]:
    """What a sans-IO session did with a stream, in the classes the codec uses (coarser:
    a session does not say which attribute it discarded, and it answers an ignored-family
    UPDATE like any other)."""
    out: list[str] = []
    for event in events:
        if isinstance(event, NotificationSent):
            note = event.notification
            out.append(f"N{note.code}/{note.subcode}")
        elif isinstance(event, NotificationReceived):
            out.append("notification-received")
        elif isinstance(event, RoutesReceived):
            out.append("treat-as-withdraw" if event.treat_as_withdraw else "update")
        elif isinstance(event, EndOfRibReceived):
            out.append("end-of-rib")
        elif isinstance(event, RouteRefreshReceived):
            out.append("route-refresh")
    if session.state is State.OPEN_CONFIRM:
        out.append("open-accepted")
    return out


def coarse(classes: list[str]) -> list[str]:
    """The codec's classes as a session reports them (see :func:`session_classes`)."""
    out = []
    for cls in classes:
        if cls.startswith("treat-as-withdraw"):
            out.append("treat-as-withdraw")
        elif cls.startswith("update"):
            out.append("update")
        elif cls in ("keepalive", "incomplete", "route-refresh/ignored"):
            continue  # a session says nothing about these
        else:
            out.append(cls)
    return out
