"""The server side of an xDS state-of-the-world stream, sans I/O."""

from __future__ import annotations

from vipcast.proto.xds import Acked, Nacked, Request, SotwStream

LDS, EDS = "lds", "eds"
ORDER = (EDS, LDS)


def test_ack_nack_stale_and_resubscription() -> None:
    s = SotwStream(frozenset({LDS}))
    assert s.receive(Request(LDS)) is None  # first request: nothing to ACK
    [send] = s.due({LDS: "v1"}, ORDER)
    assert (send.type_url, send.version, send.names) == (LDS, "v1", None)
    assert s.due({LDS: "v1"}, ORDER) == []  # nothing new
    assert s.receive(Request(LDS, "v1", send.nonce)) == Acked(LDS, "v1")
    [send2] = s.due({LDS: "v2"}, ORDER)
    # a NACK of v2: reported, v2 is not sent again, v3 is
    got = s.receive(Request(LDS, "v1", send2.nonce, error="bad regex"))
    assert got == Nacked(LDS, "v2", "bad regex")
    assert s.due({LDS: "v2"}, ORDER) == []
    assert s.acked(LDS) == "v1"
    [send3] = s.due({LDS: "v3"}, ORDER)
    # an answer to the superseded response is stale: ignored
    assert s.receive(Request(LDS, "v1", send2.nonce)) is None
    assert s.receive(Request(LDS, "v3", send3.nonce)) == Acked(LDS, "v3")


def test_named_subscriptions_are_answered_when_they_change() -> None:
    s = SotwStream(frozenset({LDS}))
    s.receive(Request(EDS, resource_names=frozenset({"a"})))
    [send] = s.due({EDS: "e1", LDS: "l1"}, ORDER)
    assert send.names == frozenset({"a"})
    s.receive(Request(EDS, "e1", send.nonce, frozenset({"a"})))
    assert s.due({EDS: "e1"}, ORDER) == []
    # a new cluster's endpoints are wanted: same version, sent again with both names
    s.receive(Request(EDS, "e1", send.nonce, frozenset({"a", "b"})))
    [again] = s.due({EDS: "e1"}, ORDER)
    assert again.names == frozenset({"a", "b"}) and again.nonce != send.nonce
