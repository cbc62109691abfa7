"""Hypothesis: the decoders (messages, framer, UPDATE attributes, capabilities) raise only
BGPError on any bytes, random or shaped like attributes."""

from __future__ import annotations

import struct
from contextlib import suppress

from bgp_strategies import CTXS, u8
from hypothesis import given
from hypothesis import strategies as st

from vipcast.proto.bgp.attributes import WireContext, decode_attributes
from vipcast.proto.bgp.capabilities import decode_capabilities
from vipcast.proto.bgp.constants import MARKER, AttrType
from vipcast.proto.bgp.errors import BGPError
from vipcast.proto.bgp.messages import decode_message
from vipcast.proto.bgp.update import summarize_update
from vipcast.proto.bgp.wire import Framer


@given(st.integers(0, 255), st.binary(max_size=200), CTXS)
def test_decode_any_body_raises_only_bgp_error(
    msg_type: int, body: bytes, ctx: WireContext
) -> None:
    with suppress(BGPError):
        decode_message(msg_type, body, ctx)


@given(st.binary(max_size=300))
def test_framer_any_bytes_raises_only_bgp_error(raw: bytes) -> None:
    framer = Framer()
    framer.feed(MARKER + raw)
    try:
        while framer.next_message() is not None:
            pass
    except BGPError:
        pass


attribute_blobs = st.lists(
    st.tuples(
        st.sampled_from([0x00, 0x40, 0x80, 0xC0, 0xE0, 0x50, 0x90, 0xD0]),
        st.one_of(st.sampled_from(sorted(AttrType)), u8),
        st.binary(max_size=40),
    ),
    max_size=8,
).map(
    lambda items: b"".join(
        bytes((f, t)) + (struct.pack("!H", len(v)) if f & 0x10 else bytes((len(v),))) + v
        for f, t, v in items
    )
)


@given(attribute_blobs, st.binary(max_size=30), st.binary(max_size=30), CTXS, st.booleans())
def test_structured_garbage_update_raises_only_bgp_error(
    attrs: bytes, withdrawn: bytes, nlri: bytes, ctx: WireContext, chop: bool
) -> None:
    body = struct.pack("!H", len(withdrawn)) + withdrawn + struct.pack("!H", len(attrs)) + attrs
    body += nlri
    if chop:
        body = body[: len(body) // 2]
    with suppress(BGPError):
        summarize_update(body, ctx)
    with suppress(BGPError):
        decode_message(2, body, ctx)
    with suppress(BGPError):
        decode_attributes(attrs, ctx)


@given(st.binary(max_size=100))
def test_capabilities_any_bytes(raw: bytes) -> None:
    with suppress(BGPError):
        decode_capabilities(raw)
