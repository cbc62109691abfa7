"""Hypothesis: every message encodes and decodes back to itself (4-byte and 2-byte AS
sessions), any split of a stream frames the same messages, and the fast prefix encoder agrees
with ``ipaddress``."""

from __future__ import annotations

import ipaddress

from bgp_strategies import messages, segments, u16, u32, v4_addr, v4_prefix
from hypothesis import given
from hypothesis import strategies as st

from vipcast.proto.bgp.attributes import (
    Aggregator,
    As4Path,
    AsPath,
    Attribute,
    NextHop,
    OriginAttr,
    WireContext,
)
from vipcast.proto.bgp.messages import Message, decode_message, encode_message
from vipcast.proto.bgp.prefixes import encode_prefix
from vipcast.proto.bgp.update import Update
from vipcast.proto.bgp.wire import Framer

ROUNDTRIP_CTX = WireContext(four_octet_as=True, ibgp=True)


def frames(raw: bytes) -> list[Message]:
    framer = Framer(65535)
    framer.feed(raw)
    out = []
    while (item := framer.next_message()) is not None:
        out.append(decode_message(item[0], item[1], ROUNDTRIP_CTX))
    return out


@given(messages)
def test_decode_encode_roundtrip(message: Message) -> None:
    assert frames(encode_message(message, ROUNDTRIP_CTX)) == [message]


TWO_BYTE_CTX = WireContext(four_octet_as=False, ibgp=False)

segments_2byte = st.lists(
    st.tuples(st.sampled_from([1, 2]), st.lists(u16, min_size=1, max_size=8).map(tuple)),
    max_size=4,
).map(tuple)


@given(
    segments_2byte,
    st.one_of(st.none(), segments.filter(bool)),
    st.one_of(st.none(), st.builds(Aggregator, u16, v4_addr)),
    st.lists(v4_prefix, min_size=1, max_size=10),
)
def test_two_byte_session_roundtrip(
    path: tuple[tuple[int, tuple[int, ...]], ...],
    as4: tuple[tuple[int, tuple[int, ...]], ...] | None,
    aggregator: Aggregator | None,
    nlri: list[str],
) -> None:
    """On a session without RFC 6793, AS_PATH/AGGREGATOR are 2-byte and AS4_PATH is kept."""
    attrs: list[Attribute] = [OriginAttr(0), AsPath(path), NextHop("192.0.2.1")]
    if aggregator is not None:
        attrs.append(aggregator)
    if as4 is not None and all(t in (1, 2) for t, _ in as4):
        attrs.append(As4Path(as4))
    update = Update(attributes=tuple(attrs), nlri=tuple(nlri))
    raw = encode_message(update, TWO_BYTE_CTX)
    framer = Framer()
    framer.feed(raw)
    item = framer.next_message()
    assert item is not None
    assert decode_message(item[0], item[1], TWO_BYTE_CTX) == update


@given(st.lists(messages, min_size=1, max_size=4), st.data())
def test_any_split_frames_the_same(batch: list[Message], data: st.DataObject) -> None:
    stream = b"".join(encode_message(m, ROUNDTRIP_CTX) for m in batch)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    framer = Framer(65535)
    got = []
    prev = 0
    for cut in [*cuts, len(stream)]:
        framer.feed(stream[prev:cut])
        prev = cut
        while (item := framer.next_message()) is not None:
            got.append(decode_message(item[0], item[1], ROUNDTRIP_CTX))
    assert got == batch


def _slow_encode(text: str) -> bytes:
    net = ipaddress.ip_network(text)
    return bytes((net.prefixlen,)) + net.network_address.packed[: (net.prefixlen + 7) // 8]


@given(
    st.one_of(
        v4_prefix,
        st.tuples(u32, st.integers(0, 40)).map(lambda t: f"{ipaddress.IPv4Address(t[0])}/{t[1]}"),
        st.from_regex(r"\A[0-9٣.]{1,16}/[0-9]{0,3}\Z"),
    )
)
def test_fast_prefix_encoding_agrees_with_ipaddress(text: str) -> None:
    try:
        expected = _slow_encode(text)
    except ValueError:
        try:
            encode_prefix(text)
        except ValueError:
            return
        raise AssertionError(f"{text!r} accepted by the fast path only") from None
    assert encode_prefix(text)[1] == expected
