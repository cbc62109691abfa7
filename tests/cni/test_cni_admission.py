"""The admission webhook (pure review) on the coexistence objects: a change that creates a
collision with a CNI's speaker is denied naming object and field, whichever side changes."""

from __future__ import annotations

from typing import Any

from vipcast.sources.kube.admission import review

V = "vipcast.io/v1beta1"
CNI = {"apiVersion": V, "kind": "CNISpeaker", "metadata": {"name": "calico"},
       "spec": {"asn": 64512, "sourceAddress": "198.51.100.1",
                "routers": [{"peerAddress": "192.0.2.1"}]}}


def _peer(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": V, "kind": "BGPPeer", "metadata": {"name": "tor"},
            "spec": {"myASN": 64513, "peerASN": 65000, "peerAddress": "192.0.2.1", **spec}}


def _req(obj: dict[str, Any]) -> dict[str, Any]:
    return {"request": {"uid": "u", "kind": {"kind": obj["kind"]}, "operation": "CREATE",
                        "name": obj["metadata"]["name"], "object": obj}}


def test_a_peer_colliding_with_the_cni_is_denied() -> None:
    out = review(_req(_peer(coexistence="SeparateIdentity", sourceAddress="198.51.100.1",
                            routerID="198.51.100.2")), {"CNISpeaker": [CNI]})
    resp = out["response"]
    assert resp["allowed"] is False and resp["status"]["code"] == 422
    assert "BGPPeer/tor spec.sourceAddress" in resp["status"]["message"]


def test_a_cni_speaker_that_makes_a_peer_collide_is_denied() -> None:
    peer = _peer(coexistence="SeparateIdentity", sourceAddress="198.51.100.1",
                 routerID="198.51.100.2")
    # applied before its CNISpeaker: allowed with a warning (a dangling reference)
    first = review(_req(peer), {})["response"]
    assert first["allowed"] is True
    assert any("unknown CNISpeaker" in w for w in first["warnings"])
    out = review(_req(CNI), {"BGPPeer": [_peer()]})
    resp = out["response"]
    assert resp["allowed"] is False
    assert "BGPPeer/tor spec.coexistence" in resp["status"]["message"]


def test_a_separate_peer_from_its_own_address_is_allowed() -> None:
    out = review(_req(_peer(coexistence="SeparateIdentity", sourceAddress="198.51.100.21")),
                 {"CNISpeaker": [CNI]})
    assert out["response"]["allowed"] is True
