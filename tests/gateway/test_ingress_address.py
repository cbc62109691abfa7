"""The address of the Gateway standing for Ingresses (issue 12), pure: which Ingresses are
vipcast's (class by field, by the legacy annotation, by an IngressClass of vipcast's
controller, or none when vipcast's IngressClass is the default), the Ingress Gateway allocated
from a pool like a Gateway (a pool or an address asked for on the IngressClass), its committed
address read back from the Ingresses' status (never reshuffled), one address never given to
two owners, and the listener bound at the allocated address."""

from __future__ import annotations

from typing import Any

from tests.gateway.gwobjects import endpoint_slice, ready, service, spec_of

from vipcast.alloc import Reason
from vipcast.core.allocation import allocate_spec
from vipcast.core.gateway import translate
from vipcast.core.gateway.address import (
    INGRESS_GATEWAY_KEY,
    GatewayServices,
    gateway_addresses,
    gateway_refusals,
    gateway_service_key,
    ingress_committed,
)
from vipcast.core.incremental import NodePlanner
from vipcast.core.pipeline import Local, NodeIdentity, plan, snapshot
from vipcast.spec import Spec

Doc = dict[str, Any]
V = "vipcast.io/v1beta1"
STAND_IN = gateway_service_key(INGRESS_GATEWAY_KEY)


def _infra(auto: bool = True) -> list[Doc]:
    return [
        {"apiVersion": V, "kind": "IPAddressPool", "metadata": {"name": "main"},
         "spec": {"addresses": ["198.51.100.0/29"], "autoAssign": auto}},
        {"apiVersion": V, "kind": "IPAddressPool", "metadata": {"name": "edge"},
         "spec": {"addresses": ["203.0.113.8/30"], "autoAssign": False}},
        {"apiVersion": V, "kind": "BGPPeer", "metadata": {"name": "r"},
         "spec": {"myASN": 64512, "peerASN": 64500, "peerAddress": "10.0.0.1"}},
        {"apiVersion": V, "kind": "BGPAdvertisement", "metadata": {"name": "all"},
         "spec": {"ipAddressPools": ["main", "edge"]}},
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}},
        service("web"), endpoint_slice("web", endpoints=[ready("10.244.1.10")]),
    ]


def ingress(name: str, *, cls: str | None = None, annotation: str | None = None,
            status: tuple[str, ...] = (), created: str | None = None,
            host: str = "app.example") -> Doc:
    meta: Doc = {"name": name, "namespace": "default"}
    if annotation is not None:
        meta["annotations"] = {"kubernetes.io/ingress.class": annotation}
    if created is not None:
        meta["creationTimestamp"] = created
    spec: Doc = {"rules": [{"host": host, "http": {"paths": [{
        "path": "/", "pathType": "Prefix",
        "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}
    if cls is not None:
        spec["ingressClassName"] = cls
    doc: Doc = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta,
                "spec": spec}
    if status:
        doc["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in status]}}
    return doc


def ingress_class(name: str, controller: str = "vipcast.io/ingress-controller", *,
                  default: bool = False, annotations: dict[str, str] | None = None) -> Doc:
    notes = dict(annotations or {})
    if default:
        notes["ingressclass.kubernetes.io/is-default-class"] = "true"
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": name, "annotations": notes},
            "spec": {"controller": controller}}


def _served(docs: list[Doc]) -> list[str]:
    return sorted(i.name for i in spec_of(docs).served_ingresses())


def test_which_ingresses_are_vipcasts() -> None:
    base = [ingress("field", cls="vipcast"), ingress("legacy", annotation="vipcast"),
            ingress("nginx", cls="nginx"), ingress("classless"),
            ingress("field-wins", cls="nginx", annotation="vipcast")]
    # no IngressClass at all: the name vipcast, by field or legacy annotation (the field wins)
    assert _served(base) == ["field", "legacy"]
    # vipcast's IngressClass marked default: the class-less one too
    assert _served([*base, ingress_class("vipcast", default=True)]) == [
        "classless", "field", "legacy"]
    # another controller's class is the default: not ours; two defaults of different
    # controllers: nobody's (Kubernetes refuses new class-less Ingresses then)
    assert _served([*base, ingress_class("nginx", "k8s.io/ingress-nginx", default=True)]) == [
        "field", "legacy"]
    assert _served([*base, ingress_class("vipcast", default=True),
                    ingress_class("nginx", "k8s.io/ingress-nginx", default=True)]) == [
        "field", "legacy"]
    # a class of another name whose controller is vipcast's is ours too
    assert _served([ingress("edge", cls="edge"), ingress_class("edge")]) == ["edge"]
    # an IngressClass named vipcast of another controller: the name is not ours any more
    assert _served([*base, ingress_class("vipcast", "example.com/other")]) == []


def _allocate(spec: Spec, memory: dict[str, tuple[str, ...]] | None = None) -> Any:
    full = GatewayServices()(spec)
    return full, allocate_spec(full, memory, load_balancer_class=None)


def test_the_ingress_gateway_gets_a_pool_address_and_its_listener_binds_it() -> None:
    spec = spec_of([*_infra(), ingress_class("vipcast", default=True), ingress("a"),
                    ingress("b", cls="vipcast", host="b.example")])
    full, result = _allocate(spec)
    ips = result.assignments[STAND_IN].ips
    assert len(ips) == 1 and ips[0].startswith("198.51.100.")
    addresses = gateway_addresses(result.current())
    assert addresses == {INGRESS_GATEWAY_KEY: ips}
    tr = translate(full, "n1", addresses)
    assert sorted({lis.address for lis in tr.model.listeners}) == [ips[0]]
    (gw,) = [g for g in tr.gateways if g.key == INGRESS_GATEWAY_KEY]
    assert gw.addresses == ips
    assert {c.type: c.status for c in gw.conditions}["Programmed"] == "True"


def test_a_pool_or_an_address_is_asked_for_on_the_ingress_class() -> None:
    pool = ingress_class("vipcast", annotations={"vipcast.io/address-pool": "edge"})
    _, result = _allocate(spec_of([*_infra(), pool, ingress("a", cls="vipcast")]))
    assert result.assignments[STAND_IN].ips[0].startswith("203.0.113.")
    fixed = ingress_class("vipcast", annotations={"vipcast.io/loadBalancerIPs": "198.51.100.5"})
    _, result = _allocate(spec_of([*_infra(), fixed, ingress("a", cls="vipcast")]))
    assert result.assignments[STAND_IN].ips == ("198.51.100.5",)


def test_an_address_held_by_a_service_is_refused_to_the_ingress_gateway() -> None:
    fixed = ingress_class("vipcast", annotations={"vipcast.io/loadBalancerIPs": "198.51.100.5"})
    lb = service("lb")
    lb["spec"]["type"] = "LoadBalancer"
    lb["status"] = {"loadBalancer": {"ingress": [{"ip": "198.51.100.5"}]}}
    full, result = _allocate(spec_of([*_infra(), fixed, lb, ingress("a", cls="vipcast")]))
    assert result.assignments["default/lb"].ips == ("198.51.100.5",)
    stand_in = result.assignments[STAND_IN]
    assert stand_in.ips == () and stand_in.reason is Reason.REQUESTED_TAKEN
    refusals = gateway_refusals(result.assignments)
    reason, message = refusals[INGRESS_GATEWAY_KEY]
    assert reason == "AddressNotUsable" and "default/lb" in message
    tr = translate(full, "n1", gateway_addresses(result.current()), refusals=refusals)
    (gw,) = [g for g in tr.gateways if g.key == INGRESS_GATEWAY_KEY]
    assert gw.addresses == ()
    assert [(c.status, c.reason) for c in gw.conditions if c.type == "Programmed"] == [
        ("False", "AddressNotUsable")]
    assert tr.model.listeners == ()


def test_the_committed_address_is_kept_from_the_ingresses_status() -> None:
    """A new leader (an empty memory) reads the Ingress Gateway's address back from the
    Ingresses' status and keeps it, even though the pool would hand out another first."""
    docs = [*_infra(), ingress("a", cls="vipcast", status=("198.51.100.6",)),
            ingress("b", cls="vipcast", status=("198.51.100.6",), host="b.example")]
    _, result = _allocate(spec_of(docs))
    assert result.assignments[STAND_IN].ips == ("198.51.100.6",)
    assert result.assignments[STAND_IN].reason is Reason.KEPT


def test_the_committed_address_is_what_most_served_ingresses_say() -> None:
    spec = spec_of([
        ingress("old", cls="vipcast", status=("192.0.2.9",), created="2026-01-01T00:00:00Z"),
        ingress("b", cls="vipcast", status=("198.51.100.6",), created="2026-02-01T00:00:00Z"),
        ingress("c", cls="vipcast", status=("198.51.100.6",), created="2026-03-01T00:00:00Z"),
        ingress("new", cls="vipcast", created="2026-04-01T00:00:00Z"),
    ])
    served = spec.served_ingresses()
    assert ingress_committed(served) == ("198.51.100.6",)
    # a tie: the oldest Ingress's
    assert ingress_committed(served[1:]) == ("198.51.100.6",)
    assert ingress_committed([i for i in served if i.name in ("old", "b")]) == ("192.0.2.9",)
    assert ingress_committed([i for i in served if i.name == "new"]) == ()


def test_no_served_ingress_no_stand_in_and_nothing_listens() -> None:
    spec = spec_of([*_infra(), ingress("n", cls="nginx")])
    full, result = _allocate(spec)
    assert STAND_IN not in result.assignments
    assert translate(full, "n1", gateway_addresses(result.current())).model.listeners == ()


def test_the_node_announces_the_ingress_address_only_while_envoy_serves() -> None:
    spec = spec_of([*_infra(), ingress("a", cls="vipcast")])
    planner = NodePlanner()
    full = GatewayServices()(spec)
    duties = planner(full, "n1")
    allocated = gateway_addresses(planner.assignments)
    (vip,) = allocated[INGRESS_GATEWAY_KEY]
    snap = snapshot(full, duties, NodeIdentity("n1"), gateway_addresses=allocated)
    serving = plan(snap, Local(servable=frozenset(), proxy_ready=True))
    assert f"{vip}/32" in {r.prefix for r in serving.bgp}
    assert serving.proxy is not None and {lis.address for lis in serving.proxy.listeners} == {vip}
    dead = plan(snap, Local(servable=frozenset(), proxy_ready=False))
    assert f"{vip}/32" not in {r.prefix for r in dead.bgp}


def _raw(name: str, ips: tuple[str, ...], manager: str | None) -> Doc:
    meta: Doc = {"name": name, "namespace": "default"}
    if manager is not None:
        meta["managedFields"] = [{"manager": manager, "subresource": "status", "fieldsV1": {
            "f:status": {"f:loadBalancer": {"f:ingress": {}}}}}]
    return {"metadata": meta,
            "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}}


def test_the_status_writes_give_served_ingresses_the_address_and_take_back_only_ours() -> None:
    from vipcast.sources.kube.ingress_status import ingress_writes

    objects = [_raw("new", (), None), _raw("kept", ("192.0.2.1",), "vipcast-controller"),
               _raw("moved", ("192.0.2.9",), "vipcast-controller"),
               _raw("left", ("192.0.2.1",), "vipcast-controller"),
               _raw("nginx", ("198.51.100.7",), "nginx-ingress-controller"),
               _raw("taken-over", ("192.0.2.1",), "nginx-ingress-controller")]
    served = {"default/new", "default/kept", "default/moved"}
    writes = {w.name: (w.ips, w.had) for w in ingress_writes(objects, served, ("192.0.2.1",))}
    assert writes == {"new": (("192.0.2.1",), ()), "moved": (("192.0.2.1",), ("192.0.2.9",)),
                      "left": ((), ("192.0.2.1",))}
    # no address to give (none allocated yet): nothing written where nothing stands
    assert [w.name for w in ingress_writes(objects[:1], served, ())] == []


def test_the_stand_ins_for_ingresses_are_not_written_as_gateway_api_objects() -> None:
    from vipcast.core.gateway.ingress import without_ingress_stand_ins

    spec = spec_of([*_infra(), ingress("a", cls="vipcast")])
    full, result = _allocate(spec)
    tr = translate(full, "n1", gateway_addresses(result.current()))
    assert [g.key for g in tr.gateways] == [INGRESS_GATEWAY_KEY] and tr.routes
    real = without_ingress_stand_ins(tr)
    assert real.gateways == () and real.routes == ()
