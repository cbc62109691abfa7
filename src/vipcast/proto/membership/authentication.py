"""Authentication of the membership protocol: which datagrams count. Every datagram carries a
truncated HMAC-SHA256 (checked by the codec); a sender's boot counts only once proven fresh by
an answer that echoes a nonce this node chose. Until then its requests are answered, it is
challenged, and what it says is held back (see docs/membership.md)."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from vipcast.proto.membership.codec import Datagram, Kind
from vipcast.proto.membership.detection import _Pending
from vipcast.proto.membership.host import MemberHost
from vipcast.proto.membership.members import Member, RumorQueue

#: kinds that answer a nonce of ours (they prove the sender's boot fresh)
ANSWERS = frozenset({Kind.ACK, Kind.RESPONSE, Kind.SYNC, Kind.SERVING})
#: kinds that ask for an answer (answered even before the sender is proven fresh)
REQUESTS = frozenset({Kind.PING, Kind.CHALLENGE, Kind.SYNC_REQ, Kind.PULL})


class Verdict(Enum):
    ACCEPTED = "accepted"
    MALFORMED = "malformed"
    BAD_MAC = "bad-mac"
    REPLAY = "replay"
    UNKNOWN_MEMBER = "unknown-member"
    SELF = "self"
    #: the sender's boot is not proven fresh yet: challenged, content ignored
    CHALLENGED = "challenged"
    #: an answer to no request of ours (late, or recorded)
    STALE = "stale"



class AuthenticationMixin(MemberHost):
    """Mixed into :class:`~vipcast.proto.membership.protocol.Membership`."""

    if TYPE_CHECKING:
        _pending: dict[int, _Pending]
        _suspects: dict[str, float]
        _accusers: dict[str, tuple[float, int, set[str]]]
        _wanting: set[str]
        _rumors: RumorQueue

        def _transmits(self) -> int: ...
        def _handle(self, member: Member, d: Datagram, now: float) -> None: ...

    def _authenticate(self, member: Member, d: Datagram, now: float) -> Verdict:
        if d.kind in ANSWERS:
            pending = self._pending.get(d.token) if d.token else None
            if pending is None or d.sender not in pending.peers:
                return Verdict.STALE
            if d.boot in member.retired:
                return Verdict.REPLAY
            # an echo of our own fresh nonce: this boot of the sender is alive now
            if not member.verified or member.boot != d.boot:
                restarted = member.boot not in (0, d.boot)
                was = member.state
                member.adopt_boot(d.boot, d.incarnation)
                if restarted or was != member.state:
                    self._suspects.pop(member.name, None)
                    self._accusers.pop(member.name, None)
                    self._wanting.discard(member.name)
                    self._dirty = True
                if restarted:
                    self._rumors.push(member.rumor(), self._transmits())
            return Verdict.ACCEPTED if member.accept(d.boot, d.sequence) else Verdict.REPLAY
        if member.verified and d.boot == member.boot:
            return Verdict.ACCEPTED if member.accept(d.boot, d.sequence) else Verdict.REPLAY
        if d.boot in member.retired:
            return Verdict.REPLAY
        # not proven fresh: answer a request (harmless: the answer goes to the member's own
        # address and echoes its nonce), challenge the sender, and ignore the content
        if d.kind in REQUESTS:
            self._handle(member, d, now)
        member.held = d
        self._challenge(member, now)
        return Verdict.CHALLENGED

    def _challenge(self, member: Member, now: float) -> None:
        if now < member.challenged_at + self.timers.request_timeout:
            return
        member.challenged_at = now
        token = self._nonce("challenge", member.name, now)
        self._send(member.name, Kind.CHALLENGE, token=token, rumors=False)
