"""The six places where vipcast's allocator once differed from MetalLB's (issue 18).

Each test states what MetalLB does (read from its controller and allocator, translated here
into the allocator's or ``vipcast plan``'s inputs) and checks vipcast against it. Where vipcast
keeps its own answer (CIDRs with host bits), the test checks the documented, warned difference
and that ``vipcast convert metallb`` gives a config that allocates as MetalLB would.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry
from typer.testing import CliRunner

from vipcast.alloc import IPRange, MatchLabels, PoolInput, Reason, ServiceInput, allocate
from vipcast.app.controller import Controller
from vipcast.cli.main import app
from vipcast.core.allocation import allocate_spec
from vipcast.core.notices import metallb_capacity, notices
from vipcast.core.plan_document import plan_document
from vipcast.spec import Spec, SpecError, load_documents, parse_range

runner = CliRunner()


def pool(name: str, *ranges: str, **kw: object) -> PoolInput:
    return PoolInput(name, tuple(IPRange.parse(r) for r in ranges), **kw)  # type: ignore[arg-type]


def svc(name: str, ns: str = "default", **kw: object) -> ServiceInput:
    return ServiceInput(ns, name, **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------- 1. one pool per service


def test_1_dual_stack_request_across_two_pools_is_refused() -> None:
    """MetalLB: the requested addresses must all lie in one pool (its pool lookup for a set of
    addresses finds none otherwise), so an IPv4 from one pool and an IPv6 from another is
    refused: the Service gets no address."""
    pools = [pool("v4", "192.0.2.0/24"), pool("v6", "2001:db8::/64")]
    dual = {"ip_families": (4, 6), "ip_family_policy": "RequireDualStack"}
    r = allocate(pools, [svc("x", requested_ips=("192.0.2.5", "2001:db8::5"), **dual)], {})
    x = r.assignments["default/x"]
    assert x.ips == () and x.reason is Reason.REQUESTED_REFUSED
    assert "one pool per service" in x.message and "192.0.2.5 and 2001:db8::5" in x.message
    # the same request inside one dual pool is granted (MetalLB: granted)
    both = [pool("ds", "192.0.2.0/24", "2001:db8::/64")]
    r = allocate(both, [svc("x", requested_ips=("192.0.2.5", "2001:db8::5"), **dual)], {})
    assert r.assignments["default/x"].ips == ("192.0.2.5", "2001:db8::5")
    assert r.assignments["default/x"].pool == "ds"


def test_1_same_rule_for_held_addresses() -> None:
    """The rule applies to held addresses as to requested ones. MetalLB re-checks a Service's
    current addresses as one set: split across pools they are not allowed, it clears them
    and allocates again — from the dual pool, its lowest free pair (here the held IPv4 and
    the pool's first IPv6). vipcast keeps the preferred family and replaces the other from
    the same pool, which here is the same pair; the reason names the rule."""
    pools = [pool("ds", "192.0.2.0/30", "2001:db8::/126"), pool("v6", "2001:db8:1::/126")]
    service = svc("x", ip_families=(4, 6), ip_family_policy="RequireDualStack")
    r = allocate(pools, [service], {"default/x": ("192.0.2.0", "2001:db8:1::")})
    x = r.assignments["default/x"]
    metallb = ("192.0.2.0", "2001:db8::")
    assert x.ips == metallb and x.pool == "ds" and x.ok
    assert x.invalidated == (
        ("2001:db8:1::", "not in pool ds of the service's other address "
         "(rule: one pool per service)"),
    )
    # fed back, it stays
    again = allocate(pools, [service], r.current())
    assert again.assignments["default/x"].reason is Reason.KEPT


def test_1_prefer_dual_stack_takes_both_families_from_one_pool_or_one_family() -> None:
    """MetalLB, ipFamilies [IPv4, IPv6] with an IPv4-only and an IPv6-only pool:
    PreferDualStack gets the first family from the first pool that has it (one pool);
    RequireDualStack gets nothing ("no suitable pool")."""
    pools = [pool("a-v6", "2001:db8::/64"), pool("b-v4", "192.0.2.0/24")]
    r = allocate(
        pools,
        [
            svc("pref", ip_families=(4, 6), ip_family_policy="PreferDualStack"),
            svc("pref6", ip_families=(6, 4), ip_family_policy="PreferDualStack"),
            svc("req", ip_families=(4, 6), ip_family_policy="RequireDualStack"),
        ],
        {},
    )
    a = r.assignments
    assert a["default/pref"].ips == ("192.0.2.0",) and a["default/pref"].pool == "b-v4"
    assert "one pool per service" in a["default/pref"].message
    assert a["default/pref6"].ips == ("2001:db8::",) and a["default/pref6"].pool == "a-v6"
    assert a["default/req"].ips == () and a["default/req"].reason is Reason.NO_POOL
    # a PreferDualStack service holding one family adds the other only from that pool
    # (MetalLB: "additional family" from the current pool only)
    later = [*pools, pool("c-ds", "198.51.100.0/24", "2001:db8:2::/64")]
    r2 = allocate(later, [svc("pref", ip_families=(4, 6), ip_family_policy="PreferDualStack")],
                  r.current())
    assert r2.assignments["default/pref"].ips == ("192.0.2.0",)
    assert r2.assignments["default/pref"].reason is Reason.KEPT


# ---------------------------------------------------------------- 2. families from ipFamilies


def test_2_prefer_dual_stack_with_one_family_uses_the_pinned_pool() -> None:
    """MetalLB: a Service whose ipFamilies (and ClusterIPs) hold IPv4 only is an IPv4 Service
    whatever its policy; pools pinned to its namespace are tried first, by priority. So it
    gets one IPv4 from the pinned priority pool, not two addresses from a general one."""
    pools = [
        pool("general", "198.51.100.0/24", "2001:db8::/64"),
        pool("team", "192.0.2.0/24", namespaces=("team",), priority=1, pinned=True),
    ]
    r = allocate(
        pools, [svc("web", "team", ip_families=(4,), ip_family_policy="PreferDualStack")], {}
    )
    web = r.assignments["team/web"]
    assert web.ips == ("192.0.2.0",) and web.pool == "team"
    assert "families from ipFamilies" in web.message and "priority 1" in web.message


def test_2_one_family_prefer_dual_stack_with_single_family_pools() -> None:
    """MetalLB, an IPv4-only and an IPv6-only pool, ipFamilies [IPv4], PreferDualStack:
    IPv4 only, from one pool."""
    pools = [pool("a-v6", "2001:db8::/64"), pool("b-v4", "192.0.2.0/24")]
    r = allocate(pools, [svc("x", ip_families=(4,), ip_family_policy="PreferDualStack")], {})
    assert r.assignments["default/x"].ips == ("192.0.2.0",)
    assert r.assignments["default/x"].pool == "b-v4"


def test_2_pinned_tier_before_a_general_dual_pool() -> None:
    """MetalLB, ipFamilies [IPv4, IPv6], PreferDualStack, a pinned IPv4-only pool and a
    general dual pool: the pinned pools are searched first and one of them gives the first
    family, so that is the answer; the general pools are not looked at."""
    pools = [
        pool("general", "198.51.100.0/24", "2001:db8::/64"),
        pool("pinned", "192.0.2.0/24", service_selectors=(MatchLabels((("t", "x"),)),)),
    ]
    prefer = {"ip_families": (4, 6), "ip_family_policy": "PreferDualStack"}
    r = allocate(pools, [svc("x", labels={"t": "x"}, **prefer), svc("y", **prefer)], {})
    assert r.assignments["default/x"].ips == ("192.0.2.0",)
    assert "first tier" in r.assignments["default/x"].message
    # not pinned for y: the general dual pool, both families
    assert r.assignments["default/y"].ips == ("198.51.100.0", "2001:db8::")


def test_2_empty_ip_families_in_standalone_files() -> None:
    """No API server settles ipFamilies in standalone files: empty means IPv4, and IPv4 then
    IPv6 under a dual-stack policy (what a dual-stack cluster's API server would write)."""
    pools = [pool("ds", "192.0.2.0/24", "2001:db8::/64")]
    r = allocate(
        pools,
        [svc("s", ip_families=()), svc("p", ip_families=(), ip_family_policy="PreferDualStack")],
        {},
    )
    assert r.assignments["default/s"].ips == ("192.0.2.1",)
    assert r.assignments["default/p"].ips == ("192.0.2.0", "2001:db8::")


# ---------------------------------------------------------------- 3. priority 0


def test_3_priority_zero_is_unset() -> None:
    """MetalLB: priority 0 is the unset value and sorts after every pool with a priority;
    pools with a serviceAllocation (even one that only says priority 0) still come before
    pools without one."""
    pools = [
        pool("a-zero", "192.0.2.0/24", priority=0, pinned=True),
        pool("b-five", "198.51.100.0/24", priority=5, pinned=True),
    ]
    r = allocate(pools, [svc("x")], {})
    assert r.assignments["default/x"].pool == "b-five"
    assert "priority 5" in r.assignments["default/x"].message
    pools = [pool("a-general", "203.0.113.0/24"), pool("z-zero", "192.0.2.0/24", priority=0,
                                                       pinned=True)]
    r = allocate(pools, [svc("x")], {})
    assert r.assignments["default/x"].pool == "z-zero"
    assert "0 counts as unset" in r.assignments["default/x"].message


# ---------------------------------------------------------------- 4. one way to request


BOTH = """
apiVersion: vipcast.io/v1beta1
kind: IPAddressPool
metadata: {name: p}
spec: {addresses: [192.0.2.0/24]}
---
apiVersion: v1
kind: Service
metadata:
  name: both
  namespace: default
  annotations: {metallb.universe.tf/loadBalancerIPs: 192.0.2.7}
spec: {type: LoadBalancer, loadBalancerIP: 192.0.2.8, ports: [{port: 80}]}
"""


def _load(text: str) -> Spec:
    import yaml

    return load_documents([("test.yaml", d) for d in yaml.safe_load_all(text)])


def test_4_both_load_balancer_ip_and_annotation_refuse_the_service() -> None:
    """MetalLB refuses a Service that sets both spec.loadBalancerIP and the loadBalancerIPs
    annotation: no address for a new Service; one that already has an address keeps it
    (the error stops it before its state is cleared)."""
    spec = _load(BOTH)
    r = allocate_spec(spec)
    both = r.assignments["default/both"]
    assert both.ips == () and both.reason is Reason.REQUEST_INVALID
    assert "one way to request" in both.message and "loadBalancerIP" in both.message
    held = allocate_spec(spec, {"default/both": ("192.0.2.20",)})
    kept = held.assignments["default/both"]
    assert kept.ips == ("192.0.2.20",) and kept.reason is Reason.REQUEST_INVALID
    warnings = notices(spec)
    assert [w.name for w in warnings] == ["default/both"]
    assert "one way to request" in warnings[0].message


# ---------------------------------------------------------------- 5. CIDRs with host bits


def test_5_host_bits_refused_with_metallbs_reading_named() -> None:
    """MetalLB reads 1000::1/127 as 1000::/127; vipcast refuses it (documented difference:
    a CIDR with host bits is as likely a typo for one address as a network) and says what
    MetalLB would have read."""
    with pytest.raises(ValueError, match=r"host bits set.*MetalLB would read it as 1000::/127"):
        parse_range("1000::1/127")
    with pytest.raises(SpecError, match="CIDRs with host bits"):
        _load("apiVersion: vipcast.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\n"
              "spec: {addresses: ['1000::1/127']}\n")


METALLB = """
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: zero, namespace: metallb-system}
spec:
  addresses: [198.51.100.10/30]
  serviceAllocation: {priority: 0, namespaces: [apps]}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: five, namespace: metallb-system}
spec:
  addresses: [192.0.2.9/31, 1000::1/127]
  serviceAllocation: {priority: 5, namespaces: [apps]}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: general, namespace: metallb-system}
spec:
  addresses: [203.0.113.0/24]
"""

SERVICES = """
apiVersion: v1
kind: Namespace
metadata: {name: apps}
""" + "".join(
    f"""---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec: {{type: LoadBalancer, ipFamilies: [{fam}], ports: [{{port: 80}}]}}
"""
    for name, ns, fam in (
        ("a", "apps", "IPv4"), ("b", "apps", "IPv6"), ("c", "apps", "IPv4"),
        ("d", "apps", "IPv4"), ("e", "other", "IPv4"),
    )
)


def test_5_and_3_converted_metallb_config_allocates_as_metallb(tmp_path: Path) -> None:
    """``convert metallb``, then ``plan``: the addresses MetalLB gives.

    MetalLB reads 198.51.100.10/30 as 198.51.100.8/30, 192.0.2.9/31 as 192.0.2.8/31 and
    1000::1/127 as 1000::/127. Services in ``apps`` try the pools pinned to ``apps`` first,
    by priority with 0 last: ``five``, then ``zero``. a, c: the two IPv4 of five; b: its first
    IPv6; d: five is full, so zero's first; e (another namespace): the general pool.
    """
    source = tmp_path / "metallb.yaml"
    source.write_text(METALLB)
    config = tmp_path / "config"
    config.mkdir()
    res = runner.invoke(app, ["convert", "metallb", str(source), "-o",
                              str(config / "pools.yaml")])
    assert res.exit_code == 0, res.output
    assert "host bits" in res.output and "priority 0" in res.output
    (config / "services.yaml").write_text(SERVICES)
    res = runner.invoke(app, ["check-config", str(config)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["plan", str(config), "--json", "--no-save"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    got = {key: tuple(s["ips"]) for key, s in doc["services"].items()}
    metallb = {
        "apps/a": ("192.0.2.8",),
        "apps/b": ("1000::",),
        "apps/c": ("192.0.2.9",),
        "apps/d": ("198.51.100.8",),
        "other/e": ("203.0.113.0",),
    }
    assert got == metallb
    # unconverted (priority 0 kept), vipcast ranks the same: 0 is unset
    kept = METALLB.replace("metallb.io/v1beta1", "vipcast.io/v1beta1").replace(
        "namespace: metallb-system", "namespace: x").replace(
        "198.51.100.10/30", "198.51.100.8/30").replace("192.0.2.9/31", "192.0.2.8/31").replace(
        "1000::1/127", "1000::/127").replace(", namespace: x", "")
    spec = _load(kept + "---\n" + SERVICES)
    r = allocate_spec(spec)
    assert {k: a.ips for k, a in r.assignments.items()} == metallb
    assert any("priority 0 counts as unset" in w.message for w in notices(spec))


# ---------------------------------------------------------------- 6. capacity


def test_6_capacity_leaves_out_buggy_addresses() -> None:
    """MetalLB's pool total with avoidBuggyIPs: a /24 plus a /25 counts 254 + 127 = 381."""
    p = pool("p", "192.0.2.0/24", "198.51.100.0/25", avoid_buggy_ips=True)
    r = allocate([p], [svc("x")], {})
    assert r.pool_usage == {"p": (1, 381)}
    assert plan_document(r, {})["pools"] == {"p": {"used": 1, "total": 381}}
    assert metallb_capacity(
        (parse_range("192.0.2.0/24"), parse_range("198.51.100.0/25")), True
    ) == 381
    # the controller's metrics: the same figure
    registry = CollectorRegistry()
    controller = Controller(object(), registry=registry)  # type: ignore[arg-type]
    controller.pool_usage = r.pool_usage  # what a leader's round stores
    text = generate_latest(registry).decode()
    assert 'vipcast_pool_addresses_total{pool="p"} 381.0' in text
    assert 'vipcast_pool_addresses_in_use{pool="p"} 1.0' in text
    # without the flag every address counts (MetalLB: 384)
    assert allocate([pool("p", "192.0.2.0/24", "198.51.100.0/25")], [], {}).pool_usage == {
        "p": (0, 384)
    }


def test_6_capacity_is_exact_where_metallbs_formula_is_not() -> None:
    """A range cut into blocks where one is a lone .255 /32: MetalLB counts that block as -1
    (first and last address both buggy); vipcast counts what it can hand out (0), and
    check-config warns with both figures."""
    text = textwrap.dedent("""\
        apiVersion: vipcast.io/v1beta1
        kind: IPAddressPool
        metadata: {name: p}
        spec: {addresses: [192.0.2.255-192.0.3.1], avoidBuggyIPs: true}
    """)
    spec = _load(text)
    r = allocate_spec(spec)
    assert r.pool_usage == {"p": (0, 1)}  # only 192.0.3.1
    assert metallb_capacity(spec.pools[0].spec.ranges, True) == 0
    (warning,) = notices(spec)
    assert "capacity 1" in warning.message and "would report 0" in warning.message
