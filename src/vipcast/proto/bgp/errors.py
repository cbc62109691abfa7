"""The one error type of the BGP codec and FSM, and the one place a NOTIFICATION is built.

Anything a peer can send that we reject surfaces as :class:`BGPError`; the session turns it
into a NOTIFICATION (via :meth:`BGPError.notification`) and a ``SessionDown`` event. Nothing
else may escape the decoders for any input bytes (checked by property tests).
"""

from __future__ import annotations

from .constants import ErrorCode


class BGPError(Exception):
    """A protocol error: the NOTIFICATION code, subcode and data that describe it."""

    def __init__(self, code: int, subcode: int = 0, data: bytes = b"", reason: str = "") -> None:
        self.code = int(code)
        self.subcode = int(subcode)
        self.data = bytes(data)
        self.reason = reason or f"BGP error {self.code}/{self.subcode}"
        super().__init__(self.reason)

    def __repr__(self) -> str:
        return f"BGPError({self.code}, {self.subcode}, {self.data!r}, {self.reason!r})"

    @property
    def is_update_error(self) -> bool:
        return self.code == ErrorCode.UPDATE_MESSAGE
