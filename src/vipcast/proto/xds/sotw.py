"""The server side of one xDS state-of-the-world stream (ADS), sans I/O.

Per resource type the stream remembers what the client subscribed to, the version and nonce it
was last sent, and what it accepted. The caller feeds requests (:meth:`SotwStream.receive`,
which returns what they meant: an ACK, a NACK, nothing) and asks what to send now
(:meth:`SotwStream.due`), given the current version of every type. Rules (the xDS protocol):

- a request whose ``response_nonce`` is not the last one sent for its type is stale: ignored;
- a request carrying ``error_detail`` is a NACK of the version last sent: the client keeps its
  last good configuration, and the same version is not sent again (only a new one is);
- otherwise a request with a nonce ACKs ``version_info``;
- a type is (re)sent when its version moved past what was last sent, or when the subscribed
  names changed (a new cluster's endpoints are wanted), or on the first request of a type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Request:
    type_url: str
    version_info: str = ""
    response_nonce: str = ""
    resource_names: frozenset[str] = frozenset()
    error: str | None = None


@dataclass(frozen=True)
class Send:
    """Send ``version`` of ``type_url`` with ``nonce``: all resources, or only ``names``."""

    type_url: str
    version: str
    nonce: str
    names: frozenset[str] | None


@dataclass(frozen=True)
class Acked:
    type_url: str
    version: str


@dataclass(frozen=True)
class Nacked:
    type_url: str
    version: str
    message: str


Outcome = Acked | Nacked


@dataclass
class _TypeState:
    names: frozenset[str] = frozenset()
    sent_version: str | None = None
    nonce: str = ""
    acked_version: str | None = None
    nacked_version: str | None = None
    resend: bool = True


@dataclass
class SotwStream:
    #: types whose subscription is a wildcard (LDS, CDS): names are not filtered
    wildcard_types: frozenset[str]
    _types: dict[str, _TypeState] = field(default_factory=dict)
    _counter: int = 0

    def receive(self, req: Request) -> Outcome | None:
        ts = self._types.get(req.type_url)
        if ts is None:
            ts = self._types[req.type_url] = _TypeState()
        elif req.response_nonce and req.response_nonce != ts.nonce:
            return None  # stale: answers a response superseded since
        outcome: Outcome | None = None
        if req.response_nonce and ts.sent_version is not None:
            if req.error is not None:
                ts.nacked_version = ts.sent_version
                outcome = Nacked(req.type_url, ts.sent_version, req.error)
            else:
                ts.acked_version = req.version_info
                outcome = Acked(req.type_url, req.version_info)
        if not req.response_nonce:
            ts.resend = True  # a (re)subscription: answer it even at an unchanged version
        names = frozenset() if req.type_url in self.wildcard_types else req.resource_names
        if names != ts.names:
            ts.names = names
            ts.resend = True
        return outcome

    def due(self, versions: Mapping[str, str], order: Sequence[str]) -> list[Send]:
        """What to send now, in ``order`` (types the client has not asked for are skipped)."""
        out: list[Send] = []
        for type_url in order:
            ts = self._types.get(type_url)
            version = versions.get(type_url)
            if ts is None or version is None:
                continue
            if version == ts.sent_version and not ts.resend:
                continue
            self._counter += 1
            ts.nonce = str(self._counter)
            ts.sent_version = version
            ts.resend = False
            names = None if type_url in self.wildcard_types else ts.names
            out.append(Send(type_url, version, ts.nonce, names))
        return out

    def acked(self, type_url: str) -> str | None:
        ts = self._types.get(type_url)
        return ts.acked_version if ts else None
