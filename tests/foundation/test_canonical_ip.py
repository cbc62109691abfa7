"""``spec.load.canonical_ip`` (every Service's requested address, at validation and twice in
the planner) is ``str(ipaddress.ip_address(text))``: the same text, or the same ValueError."""

from __future__ import annotations

import ipaddress

from hypothesis import example, given, settings
from hypothesis import strategies as st

from vipcast.spec.load import canonical_ip

quad_parts = st.one_of(
    st.integers(0, 300).map(str),
    st.sampled_from(["00", "01", "010", "0", "255", "256", "+1", "-1", " 1", "1 ", "1_0", "",
                     "\u0661", "\u00b2", "0x1", "1\n", "99", "100", "199", "200", "249", "250"]),
)
quads = st.lists(quad_parts, min_size=3, max_size=5).map(".".join)
addresses = st.one_of(
    quads,
    st.integers(0, 2**32 - 1).map(lambda v: str(ipaddress.IPv4Address(v))),
    st.integers(0, 2**128 - 1).map(lambda v: str(ipaddress.IPv6Address(v))),
    st.integers(0, 2**128 - 1).map(lambda v: ipaddress.IPv6Address(v).exploded),
    st.text(alphabet="0123456789.:abcdefABCDEF \n", max_size=20),
)


def reference(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


@settings(max_examples=500, deadline=None)
@given(addresses)
@example("198.18.0.1")
@example("198.018.0.1")
@example("1.2.3.4\n")
@example("\u0661.2.3.4")
@example("255.255.255.255")
@example("256.1.1.1")
@example("2001:DB8::1")
def test_canonical_ip_is_what_ipaddress_writes(text: str) -> None:
    want = reference(text)
    try:
        got: str | None = canonical_ip(text)
    except ValueError:
        got = None
    assert got == want
