"""CNISpeaker and BGPPeer.coexistence: what loads, and what check-config refuses, with the field."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from vipcast.core.sessions import bfd_peers, bgp_sessions
from vipcast.spec import Issue, Spec, SpecError, load_documents

NODES = """
apiVersion: v1
kind: Node
metadata: {name: n1, labels: {rack: a}}
status:
  addresses: [{type: InternalIP, address: 192.0.2.11}, {type: InternalIP, address: "2001:db8::11"}]
---
apiVersion: v1
kind: Node
metadata: {name: n2, labels: {rack: b}}
status: {addresses: [{type: InternalIP, address: 192.0.2.12}]}
---
apiVersion: vipcast.io/v1beta1
kind: BFDProfile
metadata: {name: fast}
spec: {receiveInterval: 100, transmitInterval: 100}
"""

CALICO = {
    "apiVersion": "vipcast.io/v1beta1", "kind": "CNISpeaker", "metadata": {"name": "calico"},
    "spec": {"cni": "Calico", "asn": 64512, "routers": [{"peerAddress": "192.0.2.1"}]},
}


def peer(name: str = "tor", **spec: Any) -> dict[str, Any]:
    base = {"myASN": 64513, "peerASN": 65000, "peerAddress": "192.0.2.1"}
    return {"apiVersion": "vipcast.io/v1beta1", "kind": "BGPPeer", "metadata": {"name": name},
            "spec": {**base, **spec}}


def cni(**spec: Any) -> dict[str, Any]:
    return {**CALICO, "spec": {**CALICO["spec"], **spec}}


def load(*docs: dict[str, Any]) -> Spec:
    base = [("base.yaml", d) for d in yaml.safe_load_all(NODES)]
    return load_documents([*base, *(("cni.yaml", d) for d in docs)])


def refused(*docs: dict[str, Any]) -> list[Issue]:
    with pytest.raises(SpecError) as err:
        load(*docs)
    return err.value.issues


def test_separate_identity_with_its_own_address_loads_and_opens_its_session() -> None:
    spec = load(cni(), peer(coexistence="SeparateIdentity", sourceAddress="192.0.2.21",
                            nodeSelectors=[{"matchLabels": {"rack": "a"}}], bfdProfile="fast"))
    (session,) = bgp_sessions(spec, "n1")
    assert session.source_address == "192.0.2.21"
    assert session.session.router_id == "192.0.2.21"  # not the node's 192.0.2.11 (Calico's)
    assert [b.name for b in bfd_peers(spec, ["tor"])] == ["tor"]


def test_a_peer_toward_the_cnis_router_must_choose_a_mode() -> None:
    (issue,) = refused(cni(), peer())
    assert (issue.file, issue.obj, issue.field) == ("cni.yaml", "BGPPeer/tor", "spec.coexistence")
    assert "CNISpeaker calico on n1, n2" in issue.message


def test_a_peer_toward_another_router_needs_no_mode() -> None:
    load(cni(), peer(peerAddress="192.0.2.99"))


def test_separate_identity_without_source_address_is_refused() -> None:
    (issue,) = refused(cni(), peer(coexistence="SeparateIdentity"))
    assert issue.field == "spec.sourceAddress"
    assert "kernel picks the node's address" in issue.message


def test_separate_identity_from_the_nodes_address_collides_with_nodeip() -> None:
    issues = refused(cni(), peer(coexistence="SeparateIdentity", sourceAddress="192.0.2.12"))
    fields = {i.field: i.message for i in issues}
    assert set(fields) == {"spec.sourceAddress", "spec.routerID"}
    assert "source address of CNISpeaker calico on node n2" in fields["spec.sourceAddress"]
    assert "taken from spec.sourceAddress" in fields["spec.routerID"]


def test_collision_only_on_nodes_both_run_on() -> None:
    # 192.0.2.12 is n2's address, but this peer runs on rack a (n1) only
    load(cni(), peer(coexistence="SeparateIdentity", sourceAddress="192.0.2.12",
                     routerID="192.0.2.21", nodeSelectors=[{"matchLabels": {"rack": "a"}}]))


def test_separate_identity_with_the_cnis_explicit_router_id_is_refused() -> None:
    (issue,) = refused(cni(routerID="10.0.0.1"),
                       peer(coexistence="SeparateIdentity", sourceAddress="192.0.2.21",
                            routerID="10.0.0.1"))
    assert (issue.obj, issue.field) == ("BGPPeer/tor", "spec.routerID")
    assert "router ID 10.0.0.1 is the one of CNISpeaker calico" in issue.message


def test_separate_identity_same_explicit_source_refused_without_nodes() -> None:
    docs = [cni(sourceAddress="198.51.100.1"),
            peer(coexistence="SeparateIdentity", sourceAddress="198.51.100.1",
                 routerID="198.51.100.2")]
    with pytest.raises(SpecError) as err:
        load_documents([("only.yaml", d) for d in docs])
    (issue,) = err.value.issues
    assert (issue.file, issue.field) == ("only.yaml", "spec.sourceAddress")


def test_ipv6_separate_identity_checked_against_the_v6_node_ip() -> None:
    docs = [cni(routers=[{"peerAddress": "2001:db8::1"}]),
            peer(coexistence="SeparateIdentity", peerAddress="2001:db8::1",
                 sourceAddress="2001:db8::11")]
    (issue,) = refused(*docs)
    assert issue.field == "spec.sourceAddress"
    assert "node n1" in issue.message


def test_through_daemon_checks_as_port_and_router_id() -> None:
    issues = refused(cni(listenPort=1790, routerID="10.0.0.1"),
                     peer(coexistence="ThroughDaemon", peerAddress="127.0.0.1", myASN=64512,
                          peerASN=64999, routerID="10.0.0.1"))
    assert [i.field for i in issues] == ["spec.peerASN", "spec.peerPort", "spec.routerID"]
    load(cni(listenPort=1790), peer(coexistence="ThroughDaemon", peerAddress="127.0.0.1",
                                    myASN=64512, peerASN=64512, peerPort=1790))


def test_hand_off_needs_a_target_and_the_cnis_as() -> None:
    issues = refused(cni(), peer(coexistence="HandOff"))
    assert {(i.obj, i.field) for i in issues} == {
        ("CNISpeaker/calico", "spec.handOff"), ("BGPPeer/tor", "spec.myASN")}


def test_hand_off_peer_opens_no_session_and_no_bfd() -> None:
    spec = load(cni(handOff={"calico": {}}),
                peer(coexistence="HandOff", myASN=64512, bfdProfile="fast"))
    assert bgp_sessions(spec, "n1") == ()
    assert bfd_peers(spec, ["tor"]) == ()


def test_hand_off_to_frr_k8s_refuses_a_secret_in_another_namespace() -> None:
    (issue,) = refused(cni(handOff={"frrK8s": {"namespace": "frr-k8s-system"}}),
                       peer(coexistence="HandOff", myASN=64512,
                            passwordSecret={"name": "tor", "namespace": "vipcast-system"}))
    assert issue.field == "spec.passwordSecret.namespace"


def test_unknown_or_ambiguous_cni_speaker_is_refused() -> None:
    (issue,) = refused(cni(), peer(coexistence="SeparateIdentity", sourceAddress="192.0.2.21",
                                   cniSpeaker="cilium"))
    assert (issue.field, issue.message) == ("spec.cniSpeaker", "unknown CNISpeaker 'cilium'")
    other = {**cni(), "metadata": {"name": "other"}}
    (issue,) = refused(cni(), other, peer(coexistence="SeparateIdentity",
                                          sourceAddress="192.0.2.21"))
    assert issue.field == "spec.cniSpeaker"
    assert "several CNISpeakers (calico, other)" in issue.message
    (issue,) = refused(peer(coexistence="HandOff"))
    assert issue.field == "spec.coexistence"


@pytest.mark.parametrize(("spec", "field"), [
    ({"routerID": "fe80::1"}, "spec.routerID"),
    ({"sourceAddress": "nodeip"}, "spec.sourceAddress"),
    ({"handOff": {}}, "spec.handOff"),
    ({"handOff": {"calico": {}, "frrK8s": {}}}, "spec.handOff"),
    ({"handOff": {"birdInclude": {"path": "relative.conf"}}}, "spec.handOff.birdInclude.path"),
    ({"cni": "Weave"}, "spec.cni"),
])
def test_bad_cni_speaker_fields_are_named(spec: dict[str, Any], field: str) -> None:
    issues = refused(cni(**spec))
    assert [i.field for i in issues] == [field]
    assert issues[0].obj == "CNISpeaker/calico"


def test_hand_off_goes_only_to_nodes_the_cni_runs_on() -> None:
    from vipcast.core.handoff import hand_off_targets

    on_a = cni(handOff={"calico": {}}, nodeSelectors=[{"matchLabels": {"rack": "a"}}])
    spec = load(on_a, peer(coexistence="HandOff", myASN=64512))
    assert [t.cni for t in hand_off_targets(spec, "n1")] == ["calico"]
    assert hand_off_targets(spec, "n2") == ()  # no CNI daemon on n2: nothing to hand to
    (issue,) = refused(on_a, peer(coexistence="HandOff", myASN=64512,
                                  nodeSelectors=[{"matchLabels": {"rack": "b"}}]))
    assert (issue.obj, issue.field) == ("BGPPeer/tor", "spec.nodeSelectors")
    assert "selects n2, where CNISpeaker calico does not run" in issue.message
