"""What the membership protocol's parts (failure detection, state transfer, the view) use of
the :class:`~vipcast.proto.membership.protocol.Membership` they are mixed into: its name, its
member table, its random source and timers, the table-changed mark and its way to send."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from vipcast.proto.membership.codec import Kind
from vipcast.proto.membership.members import Member

if TYPE_CHECKING:
    from vipcast.proto.membership.config import Timers


class MemberHost:
    """Declarations only (for the type checker): the mixins' common base."""

    if TYPE_CHECKING:
        node: str
        members: dict[str, Member]
        rng: random.Random
        timers: Timers
        _dirty: bool

        def _nonce(
            self, purpose: str, peer: str, now: float, lifetime: float | None = None
        ) -> int: ...
        def _send(self, to: str, kind: Kind, **kwargs: Any) -> None: ...
