"""The object model and the loader: valid configs load, broken ones are refused whole."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from vipcast.sources.files import load_paths
from vipcast.spec import (
    LabelSelector,
    SpecError,
    load_documents,
    parse_community,
    parse_duration,
    requested_ips,
)

GOOD = """
apiVersion: vipcast.io/v1beta1
kind: IPAddressPool
metadata: {name: public, labels: {tier: public}}
spec:
  addresses: ["192.0.2.0/28", "198.51.100.10-198.51.100.20", "2001:db8::/120"]
  avoidBuggyIPs: true
  serviceAllocation:
    priority: 10
    namespaces: [web]
    serviceSelectors: [{matchLabels: {expose: "yes"}}]
---
apiVersion: vipcast.io/v1beta1
kind: BFDProfile
metadata: {name: fast}
spec: {receiveInterval: 100, transmitInterval: 100, detectMultiplier: 3}
---
apiVersion: vipcast.io/v1beta1
kind: BGPPeer
metadata: {name: tor}
spec:
  myASN: 4200000001
  peerASN: 65000
  peerAddress: 203.0.113.1
  holdTime: 9s
  keepaliveTime: 3s
  bfdProfile: fast
  gracefulRestart: true
  passwordSecret: {name: bgp-auth, namespace: vipcast-system}
---
apiVersion: v1
kind: Secret
metadata: {name: bgp-auth, namespace: vipcast-system}
stringData: {password: s3cret}
---
apiVersion: vipcast.io/v1beta1
kind: Community
metadata: {name: aliases}
spec:
  communities: [{name: vip-routes, value: "65000:300"}]
---
apiVersion: vipcast.io/v1beta1
kind: BGPAdvertisement
metadata: {name: to-tor}
spec:
  ipAddressPools: [public]
  communities: [vip-routes, "65000:100", "large:4200000001:1:2", no-export]
  localPref: 200
  peers: [tor]
---
apiVersion: vipcast.io/v1beta1
kind: L2Advertisement
metadata: {name: lan}
spec: {ipAddressPoolSelectors: [{matchLabels: {tier: public}}], interfaces: [eth0]}
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: web
  annotations: {metallb.universe.tf/loadBalancerIPs: "192.0.2.5"}
spec:
  type: LoadBalancer
  ports: [{port: 80, targetPort: 8080}]
  externalTrafficPolicy: Local
  unknownFieldOfNewerKubernetes: true
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-abc, namespace: web, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints:
  - {addresses: [10.1.0.5], nodeName: n1, conditions: {ready: true}}
  - {addresses: [10.1.0.6], nodeName: n2, conditions: {ready: false}}
ports: [{port: 8080, protocol: TCP}]
---
apiVersion: v1
kind: Node
metadata: {name: n1, labels: {rack: a}}
status:
  conditions: [{type: Ready, status: "True"}]
  addresses: [{type: InternalIP, address: 198.18.0.11}]
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def issues_of(tmp_path: Path, text: str) -> list[tuple[str, str, str]]:
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(SpecError) as err:
        load_paths([path])
    assert all(i.file == str(path) for i in err.value.issues)
    return [(i.obj, i.field, i.message) for i in err.value.issues]


def test_good_config_loads_with_every_kind(tmp_path: Path) -> None:
    spec = load_paths([write(tmp_path, "good.yaml", GOOD)])
    pool = spec.pool("public")
    assert pool is not None and pool.spec.avoid_buggy_i_ps
    assert [r.size for r in pool.spec.ranges] == [16, 11, 256]
    peer = spec.peer("tor")
    assert peer is not None and peer.spec.my_asn == 4200000001
    assert peer.spec.hold_time == 9.0 and peer.spec.keepalive_time == 3.0
    assert spec.peer_password(peer) == "s3cret"
    assert spec.resolve_community("vip-routes") == (65000 << 16) | 300
    assert spec.resolve_community("large:4200000001:1:2") == (4200000001, 1, 2)
    web = spec.service("web/web")
    assert web is not None and requested_ips(web) == ("192.0.2.5",)
    (slice_,) = spec.slices_of("web/web")
    assert [e.is_ready for e in slice_.endpoints] == [True, False]
    node = spec.node("n1")
    assert node is not None and node.ready and node.addresses_of() == ("198.18.0.11",)
    assert spec.origins["BGPPeer/tor"].endswith("good.yaml")


def test_directory_of_files_and_list_kind(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD)
    write(tmp_path, "b.yml", """
        apiVersion: v1
        kind: List
        items:
          - {apiVersion: v1, kind: Node, metadata: {name: n2}}
          - {apiVersion: v1, kind: Namespace, metadata: {name: web, labels: {team: a}}}
    """)
    spec = load_paths([tmp_path])
    assert [n.metadata.name for n in spec.nodes] == ["n1", "n2"]
    assert spec.namespace_labels("web")["team"] == "a"


def test_unknown_field_is_refused_with_its_path(tmp_path: Path) -> None:
    found = issues_of(tmp_path, """
        apiVersion: vipcast.io/v1beta1
        kind: IPAddressPool
        metadata: {name: p}
        spec: {addresses: [192.0.2.0/24], autoAsign: false}
    """)
    assert found == [("IPAddressPool/p", "spec.autoAsign", "Extra inputs are not permitted")]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    found = issues_of(tmp_path, """
        apiVersion: vipcast.io/v1beta1
        kind: IPAddressPool
        metadata: {name: a}
        spec: {addresses: [192.0.2.0/24]}
        ---
        apiVersion: vipcast.io/v1beta1
        kind: IPAddressPool
        metadata: {name: b}
        spec: {addresses: ["192.0.2.128-192.0.2.140", "not-an-ip"]}
        ---
        apiVersion: vipcast.io/v1beta1
        kind: IPAddressPool
        metadata: {name: c}
        spec: {addresses: [198.51.100.0/24]}
        ---
        apiVersion: vipcast.io/v1beta1
        kind: IPAddressPool
        metadata: {name: c}
        spec: {addresses: [203.0.113.0/24]}
        ---
        apiVersion: vipcast.io/v1beta1
        kind: BGPPeer
        metadata: {name: p}
        spec: {myASN: 0, peerASN: 65000, peerAddress: 203.0.113.1, holdTime: 2s,
               bfdProfile: nope}
        ---
        apiVersion: vipcast.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: adv}
        spec: {ipAddressPools: [a, missing], peers: [ghost], communities: [undefined-alias],
               nodeSelectors: [{matchLabels: {rack: a},
                                matchExpressions: [{key: rack, operator: NotIn, values: [a]}]}]}
        ---
        apiVersion: vipcast.io/v1beta1
        kind: Frobnicator
        metadata: {name: x}
    """)
    fields = {(obj, field) for obj, field, _ in found}
    assert ("IPAddressPool/b", "spec.addresses") in fields
    assert ("IPAddressPool/c", "metadata.name") in fields
    assert ("BGPPeer/p", "spec.myASN") in fields
    assert ("BGPPeer/p", "spec.holdTime") in fields
    assert ("BGPAdvertisement/adv", "spec.ipAddressPools[1]") in fields
    assert ("BGPAdvertisement/adv", "spec.peers[0]") in fields
    assert ("BGPAdvertisement/adv", "spec.communities[0]") in fields
    assert ("BGPAdvertisement/adv", "spec.nodeSelectors[0]") in fields
    assert ("Frobnicator/x", "kind") in fields


def test_overlapping_pools(tmp_path: Path) -> None:
    found = issues_of(tmp_path, """
        apiVersion: vipcast.io/v1beta1
        kind: IPAddressPool
        metadata: {name: a}
        spec: {addresses: [192.0.2.0/24, "2001:db8::/64"]}
        ---
        apiVersion: vipcast.io/v1beta1
        kind: IPAddressPool
        metadata: {name: b}
        spec: {addresses: ["192.0.2.250-192.0.2.255", "2001:db8:1::/64"]}
        ---
        apiVersion: vipcast.io/v1beta1
        kind: IPAddressPool
        metadata: {name: c}
        spec: {addresses: ["2001:db8::1:0/112"]}
    """)
    assert found == [
        ("IPAddressPool/b", "spec.addresses[0]",
         "192.0.2.250-192.0.2.255 overlaps 192.0.2.0/24 of pool a"),
        ("IPAddressPool/c", "spec.addresses[0]",
         "2001:db8::1:0/112 overlaps 2001:db8::/64 of pool a"),
    ]


def test_aggregation_shorter_than_pool_is_refused(tmp_path: Path) -> None:
    found = issues_of(tmp_path, """
        apiVersion: vipcast.io/v1beta1
        kind: IPAddressPool
        metadata: {name: a}
        spec: {addresses: [192.0.2.0/28]}
        ---
        apiVersion: vipcast.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: agg}
        spec: {aggregationLength: 24}
    """)
    assert found[0][:2] == ("BGPAdvertisement/agg", "spec.aggregationLength")


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.yaml", "kind: [unclosed\n")
    with pytest.raises(SpecError) as err:
        load_paths([path])
    (issue,) = err.value.issues
    assert issue.file == str(path) and "line" in issue.message


def test_missing_path_and_non_mapping_document(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as err:
        load_paths([tmp_path / "nope.yaml"])
    assert "no such file" in err.value.issues[0].message
    with pytest.raises(SpecError):
        load_documents([("x", ["a", "list"])])


def test_nameless_documents_are_located_by_position(tmp_path: Path) -> None:
    """A document without a kind/name to show is found by its position in the file."""
    path = tmp_path / "c.yaml"
    path.write_text(
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n---\n- a list\n---\n"
        "apiVersion: vipcast.io/v1beta1\nkind: BFDProfile\nspec: {}\n"
    )
    with pytest.raises(SpecError) as err:
        load_paths([path])
    found = {(i.file, i.obj, i.field, i.message) for i in err.value.issues}
    assert found == {
        (str(path), "-", "", "a document must be a mapping (an object) (document #2 of the file)"),
        (str(path), "BFDProfile", "metadata", "Field required (document #3 of the file)"),
    }


def test_bad_service_annotations(tmp_path: Path) -> None:
    found = issues_of(tmp_path, """
        apiVersion: v1
        kind: Service
        metadata:
          name: s
          annotations: {vipcast.io/loadBalancerIPs: "192.0.2.1, 192.0.2.2"}
        spec: {type: LoadBalancer, loadBalancerSourceRanges: [bogus]}
    """)
    assert {f for _, f, _ in found} == {
        "metadata.annotations[vipcast.io/loadBalancerIPs]", "spec.loadBalancerSourceRanges[0]"
    }


def test_service_checks_run_on_each_thing_they_check(tmp_path: Path) -> None:
    """A Service's own checks look at its source ranges without any annotation, and at
    MetalLB's address annotation (validate_documents skips them only for a Service with no
    annotation, requested address or source range)."""
    found = issues_of(tmp_path, """
        apiVersion: v1
        kind: Service
        metadata: {name: ranges}
        spec: {type: LoadBalancer, loadBalancerSourceRanges: [10.0.0.0/8, nope]}
        ---
        apiVersion: v1
        kind: Service
        metadata:
          name: metallb
          annotations: {metallb.universe.tf/loadBalancerIPs: "192.0.2.1,192.0.2.2"}
        spec: {type: LoadBalancer}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: plain}
        spec: {type: LoadBalancer, loadBalancerIP: 192.0.2.9}
    """)
    assert sorted(found) == [
        ("Service/default/metallb", "metadata.annotations[vipcast.io/loadBalancerIPs]",
         "at most one requested IP per family"),
        ("Service/default/ranges", "spec.loadBalancerSourceRanges[1]", "'nope' is not a CIDR"),
    ]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90.0), ("1m30s", 90.0), ("300ms", 0.3), (3, 3.0), ("1h", 3600.0)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["90", "s", "1x", "", True])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_communities() -> None:
    assert parse_community("65000:100") == 0xFDE80064
    assert parse_community("no-export") == 0xFFFFFF01
    assert parse_community("1:2:3") == (1, 2, 3)
    assert parse_community("alias-name") is None
    with pytest.raises(ValueError):
        parse_community("70000:1")


def test_selector_matching_and_contradictions() -> None:
    sel = LabelSelector.model_validate(
        {"matchLabels": {"a": "1"}, "matchExpressions": [{"key": "b", "operator": "Exists"}]}
    )
    assert sel.matches({"a": "1", "b": "x"}) and not sel.matches({"a": "1"})
    assert LabelSelector().matches({}) and LabelSelector().contradictions() == []
    bad = LabelSelector.model_validate(
        {"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]},
                              {"key": "a", "operator": "DoesNotExist"}]}
    )
    assert bad.contradictions()


def test_absent_parts_are_the_values_validation_gives() -> None:
    """A Service without status, an endpoint without conditions, a Node without spec/status
    share one default instance each: equal to what validating an empty part gives."""
    from vipcast.spec.kube import (
        EndpointConditions,
        EndpointSlice,
        Node,
        NodeSpec,
        NodeStatus,
        Service,
        ServiceStatus,
    )

    a, b = (Service.model_validate({"metadata": {"name": n}}) for n in ("a", "b"))
    assert a.status is b.status
    assert a.status == ServiceStatus.model_validate({"loadBalancer": {}})
    assert a.status.model_fields_set == ServiceStatus.model_validate({}).model_fields_set
    eps = EndpointSlice.model_validate({"metadata": {"name": "s"}, "endpoints": [
        {"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}]}).endpoints
    assert eps[0].conditions is eps[1].conditions
    assert eps[0].conditions == EndpointConditions.model_validate({}) and eps[0].is_ready
    node = Node.model_validate({"metadata": {"name": "n"}})
    assert node.spec == NodeSpec.model_validate({}) and node.status == NodeStatus.model_validate({})
    assert node.ready
