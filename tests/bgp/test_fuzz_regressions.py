"""Inputs that fuzzing or the FRR corpus once caught getting a wrong answer, replayed.

Each vector in ``vectors/fuzz_regressions.json`` names the session state it arrives in, the
classes the session must answer with (``frr_corpus.session_classes``) and the rule.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from frr_corpus import PEER_ASN, drain, established_session, open_sent_session, session_classes

from vipcast.proto.bgp.capabilities import FourOctetAs, Multiprotocol, RouteRefreshCapability
from vipcast.proto.bgp.constants import IPV4_UNICAST
from vipcast.proto.bgp.messages import Open, encode_message

VECTORS = {
    name: vector
    for name, vector in json.loads(
        (Path(__file__).parent / "vectors" / "fuzz_regressions.json").read_text()
    ).items()
    if not name.startswith("_")
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
