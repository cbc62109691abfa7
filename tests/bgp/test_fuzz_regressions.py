"""Inputs that fuzzing or the FRR corpus once caught getting a wrong answer, replayed.

Each vector in ``vectors/fuzz_regressions.json`` either names the session state it arrives in,
the classes the session must answer with (``frr_corpus.session_classes``) and the rule, or the
fuzz target that crashed on it (replayed by ``tests/fuzz/test_regressions.py``; the ones with a
value to check are checked here too).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from frr_corpus import PEER_ASN, drain, established_session, open_sent_session, session_classes

from vipcast.proto.bgp.attributes import OpaqueAttribute, WireContext, encode_attribute
from vipcast.proto.bgp.capabilities import FourOctetAs, Multiprotocol, RouteRefreshCapability
from vipcast.proto.bgp.constants import IPV4_UNICAST
from vipcast.proto.bgp.messages import Open, encode_message
from vipcast.proto.bgp.update import decode_update

VECTORS = {
    name: vector
    for name, vector in json.loads(
        (Path(__file__).parent / "vectors" / "fuzz_regressions.json").read_text()
    ).items()
    if not name.startswith("_") and "state" in vector
}
#: the peer's OPEN: AS 10, IPv4 unicast, route refresh, 4-octet AS
PEER_OPEN = encode_message(
    Open(
        PEER_ASN,
        90,
        "10.0.1.1",
        (Multiprotocol(IPV4_UNICAST), RouteRefreshCapability(), FourOctetAs(PEER_ASN)),
    )
)


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_regression_vector_gets_the_rfc_answer(name: str) -> None:
    vector = VECTORS[name]
    if vector["state"] == "established":
        session = established_session(PEER_OPEN)
    else:
        session = open_sent_session()
    session.receive_data(bytes.fromhex(vector["hex"]), 1.0)
    assert session_classes(session, drain(session)) == vector["answer"], vector["rule"]


def test_unknown_attribute_keeps_only_the_flags_of_its_value() -> None:
    """RFC 4271 §4.3: low four flag bits ignored on receipt, zero when sent; Extended Length
    is framing. Found by fuzzing (decode(encode(x)) != x)."""
    body = bytes.fromhex(
        "0000000f400101004003040c000001fdfc0000"  # ORIGIN, NEXT_HOP, type 252 flags 0xFD
    )
    update = decode_update(body, WireContext())
    assert OpaqueAttribute(0xE0, 252, b"") in update.attributes
    assert encode_attribute(OpaqueAttribute(0xEF, 252, b""), WireContext()) == b"\xe0\xfc\x00"
