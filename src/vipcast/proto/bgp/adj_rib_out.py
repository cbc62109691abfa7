"""What we want to advertise to one peer versus what it has been sent: the diff as UPDATEs.

Prefixes are encoded once when they first appear (``set_desired``) and the encoding is kept
while the prefix is desired or advertised; routes with equal attributes are packed together.
"""

from __future__ import annotations

from collections.abc import Mapping

from .constants import Family
from .packing import Outbound, RouteAttributes, pack_announcements, pack_withdrawals
from .prefixes import encode_prefix


class AdjRibOut:
    def __init__(self) -> None:
        self.desired: dict[str, RouteAttributes] = {}
        self.sent: dict[str, RouteAttributes] = {}
        self._encoded: dict[str, tuple[Family, bytes]] = {}
        #: prefixes changed since the last sync; None: compare everything
        self._dirty: set[str] | None = None

    def set_desired(self, routes: Mapping[str, RouteAttributes]) -> None:
        """Replace the desired routes (ValueError for an invalid prefix, nothing changed)."""
        encoded = self._encoded
        fresh = {p: encode_prefix(p) for p in routes if p not in encoded}
        encoded.update(fresh)
        self.desired = dict(routes)
        self._dirty = None

    def update_desired(self, changes: Mapping[str, RouteAttributes | None]) -> None:
        """Change only these prefixes (None: no longer desired); the next :meth:`sync` looks
        at them alone (ValueError for an invalid prefix, nothing changed)."""
        encoded = self._encoded
        fresh = {p: encode_prefix(p) for p, a in changes.items()
                 if a is not None and p not in encoded}
        encoded.update(fresh)
        desired = self.desired
        for prefix, attrs in changes.items():
            if attrs is None:
                desired.pop(prefix, None)
            else:
                desired[prefix] = attrs
        if self._dirty is not None:
            self._dirty.update(changes)

    def forget_sent(self) -> None:
        """The peer forgot everything (the session went down)."""
        self.sent = {}
        self._dirty = None
        self._prune()

    def sync(self, out: Outbound, sendable: frozenset[Family]) -> list[bytes]:
        """UPDATEs that bring the peer from ``sent`` to ``desired`` (withdrawals first)."""
        dirty, self._dirty = self._dirty, set()
        if dirty is not None:
            return self._sync_changed(dirty, out, sendable)
        desired, sent, encoded = self.desired, self.sent, self._encoded
        withdraw: dict[Family, list[bytes]] = {}
        for prefix in [p for p in sent if p not in desired]:
            family, nlri = encoded[prefix]
            withdraw.setdefault(family, []).append(nlri)
            del sent[prefix]
        groups: dict[tuple[Family, RouteAttributes], list[bytes]] = {}
        # consecutive prefixes usually share one attributes object: reuse its group without
        # hashing the attributes again
        last_attrs: RouteAttributes | None = None
        last_family: Family | None = None
        group: list[bytes] = []
        for prefix, attrs in desired.items():
            if sent and sent.get(prefix) == attrs:
                continue
            family, nlri = encoded[prefix]
            if attrs is not last_attrs or family is not last_family:
                if family not in sendable:
                    continue
                group = groups.setdefault((family, attrs), [])
                last_attrs, last_family = attrs, family
            group.append(nlri)
            sent[prefix] = attrs
        messages: list[bytes] = []
        for family, items in withdraw.items():
            messages += pack_withdrawals(family, items, out)
        for (family, attrs), items in groups.items():
            messages += pack_announcements(family, attrs, items, out)
        self._prune()
        return messages

    def _sync_changed(
        self, dirty: set[str], out: Outbound, sendable: frozenset[Family]
    ) -> list[bytes]:
        """:meth:`sync` when only the ``dirty`` prefixes may differ (the same UPDATEs)."""
        desired, sent, encoded = self.desired, self.sent, self._encoded
        withdraw: dict[Family, list[bytes]] = {}
        groups: dict[tuple[Family, RouteAttributes], list[bytes]] = {}
        for prefix in sorted(dirty):
            attrs = desired.get(prefix)
            if attrs is None:
                if prefix in sent:
                    family, nlri = encoded[prefix]
                    withdraw.setdefault(family, []).append(nlri)
                    del sent[prefix]
                continue
            if sent.get(prefix) == attrs:
                continue
            family, nlri = encoded[prefix]
            if family not in sendable:
                continue
            groups.setdefault((family, attrs), []).append(nlri)
            sent[prefix] = attrs
        messages: list[bytes] = []
        for family, items in withdraw.items():
            messages += pack_withdrawals(family, items, out)
        for (family, attrs), items in groups.items():
            messages += pack_announcements(family, attrs, items, out)
        for prefix in dirty:
            if prefix not in desired and prefix not in sent:
                encoded.pop(prefix, None)
        return messages

    def resend(self, family: Family, out: Outbound) -> list[bytes]:
        """Everything advertised in ``family`` again (answer to ROUTE-REFRESH)."""
        groups: dict[RouteAttributes, list[bytes]] = {}
        for prefix, attrs in self.sent.items():
            fam, nlri = self._encoded[prefix]
            if fam == family:
                groups.setdefault(attrs, []).append(nlri)
        messages: list[bytes] = []
        for attrs, items in groups.items():
            messages += pack_announcements(family, attrs, items, out)
        return messages

    def _prune(self) -> None:
        encoded, desired, sent = self._encoded, self.desired, self.sent
        if len(encoded) > len(desired):
            for prefix in [p for p in encoded if p not in desired and p not in sent]:
                del encoded[prefix]


#: above this many new prefixes, a route change is worth sending in two parts
HEAD_START = 1000


def head_start(
    previous: Mapping[str, RouteAttributes],
    routes: Mapping[str, RouteAttributes],
    limit: int = HEAD_START,
) -> dict[str, RouteAttributes] | None:
    """The routes to set first when ``routes`` adds more than ``limit`` prefixes to
    ``previous``: what stays (with its new attributes) plus the first ``limit`` new prefixes,
    so that about one UPDATE goes out before the rest is encoded. None for smaller changes."""
    if len(routes) - len(previous) <= limit:
        return None
    head: dict[str, RouteAttributes] = {}
    added = 0
    for prefix, attrs in routes.items():
        if prefix in previous:
            head[prefix] = attrs
        elif added < limit:
            head[prefix] = attrs
            added += 1
    return head
