"""The hand-off (coexistence mode ``HandOff``, docs/cni.md) on a real API server serving the REAL
upstream CRDs of Calico (BGPConfiguration) and FRR-K8s (FRRConfiguration), installed unchanged
from ``deploy/cni-crds``: what vipcast writes must pass their schemas, and must come back as
written (a field the schema does not know would be pruned, and the comparison would fail).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import ApiError
from lightkube.generic_resource import create_global_resource

from vipcast.app.controller import Controller, ControllerConfig
from vipcast.core.desired import BGPRoute, HandOffNeighbor, HandOffTarget, NatRule, NodePlan
from vipcast.core.handoff import frr_configuration, handed_routes
from vipcast.sources.kube.conditions import handed_off_condition, merged
from vipcast.sources.kube.handoff import (
    BGP_CONFIGURATIONS,
    FRR_CONFIGURATIONS,
    FrrK8sHandOff,
    write_calico,
)
from vipcast.sources.kube.leader import ElectionConfig
from vipcast.sources.kube.status import apply_conditions
from vipcast.spec.objects import BFDProfileSpec

from .conftest import run
from .harness.cluster import Cluster
from .kubetools import client, eventually, ingress_ips, lb_service

pytestmark = pytest.mark.slow

CNI_CRDS = Path(__file__).parents[2] / "deploy" / "cni-crds" / "crds"
V = "vipcast.io/v1beta1"


@pytest.fixture(scope="session")
def cni_crds(vipcast_crds: Cluster) -> Cluster:
    """The session cluster with vipcast's CRDs and the CNIs' upstream CRDs, unchanged."""
    vipcast_crds.apply_crds([yaml.safe_load(p.read_text())
                             for p in sorted(CNI_CRDS.glob("*.yaml"))])
    return vipcast_crds


def _target(namespace: str) -> HandOffTarget:
    return HandOffTarget(
        cni="frr", asn=64512, kind="frrK8s", namespace=namespace,
        neighbors=(
            HandOffNeighbor(name="tor", address="192.0.2.1", my_asn=64512, peer_asn=65000,
                            bfd_profile="fast", bfd=BFDProfileSpec(receive_interval=100,
                                                                   transmit_interval=100),
                            password_secret="tor-password"),
            HandOffNeighbor(name="tor6", address="2001:db8::1", my_asn=64512, peer_asn=65000,
                            port=1179, ebgp_multi_hop=True),
        ))


def _plan(target: HandOffTarget | None, *routes: BGPRoute) -> NodePlan:
    nat = tuple(NatRule(service=r.services[0], vip=r.prefix.split("/")[0], port=80,
                        protocol="TCP", backends=()) for r in routes)
    return NodePlan(node="n1", bgp=routes, nat=nat,
                    hand_off=(target,) if target is not None else ())


ROUTES = (
    BGPRoute(prefix="198.51.100.10/32", peers=("tor",), services=("ns/a",),
             communities=(65000 << 16 | 100,), large_communities=((64512, 1, 2),),
             local_pref=200),
    BGPRoute(prefix="198.51.100.11/32", peers=("tor", "other"), services=("ns/b",)),
    BGPRoute(prefix="2001:db8:5::10/128", peers=("tor6",), services=("ns/c",)),
)


def test_frr_configuration_is_accepted_as_written_and_follows_the_plan(
        cni_crds: Cluster, namespace: str) -> None:
    async def go() -> None:
        c = client(cni_crds.kubeconfig, namespace)
        writer = FrrK8sHandOff(c, "n1")
        task = asyncio.create_task(writer.run(seed=1))
        target = _target(namespace)

        async def stored() -> dict[str, Any] | None:
            try:
                obj = await c.get(FRR_CONFIGURATIONS, "vipcast-n1", namespace=namespace)
            except ApiError:
                return None
            return dict(obj.to_dict())

        try:
            plan = _plan(target, *ROUTES)
            await writer.apply(plan)
            wanted = frr_configuration("n1", target, handed_routes(plan, target))
            got = await eventually(stored, 20, what="the FRRConfiguration")
            # accepted, nothing pruned (the server adds its defaults: disableMP, ...)
            assert _holds(got["spec"], wanted["spec"]), (got["spec"], wanted["spec"])
            assert got["metadata"]["labels"] == wanted["metadata"]["labels"]
            (router,) = got["spec"]["bgp"]["routers"]
            tor = next(n for n in router["neighbors"] if n["address"] == "192.0.2.1")
            assert tor["toAdvertise"]["allowed"]["prefixes"] == [
                "198.51.100.10/32", "198.51.100.11/32"]
            assert tor["passwordSecret"] == {"name": "tor-password", "namespace": namespace}
            assert {"community": "65000:100", "prefixes": ["198.51.100.10/32"]} in \
                tor["toAdvertise"]["withCommunity"]
            # a VIP withdrawn from the node: the object follows
            await writer.apply(_plan(target, ROUTES[0]))
            await eventually(lambda: _prefixes(stored), 20, what="one prefix left")
            # the node hands nothing to FRR-K8s any more: its object goes
            await writer.apply(_plan(None, *ROUTES))
            await eventually(lambda: _absent(stored), 20, what="the object deleted")
            # the writer records its delete only once its own DELETE call has returned, which
            # may be after this test's GET on another connection already saw the object gone:
            # wait for the writer's record itself, then check it: two writes (one per plan
            # seen above), exactly one delete, no error
            await eventually(lambda: _recorded(writer, namespace, None), 20,
                             what="the writer's record of its delete")
            assert (writer.errors, writer.writes, writer.deletes) == (0, 2, 1)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await c.close()

    run(go(), 60)


def _holds(got: Any, wanted: Any) -> bool:
    """Everything in ``wanted`` is in ``got`` with the same value (``got`` may hold more)."""
    if isinstance(wanted, dict):
        return isinstance(got, dict) and all(
            k in got and _holds(got[k], v) for k, v in wanted.items())
    if isinstance(wanted, list):
        return (isinstance(got, list) and len(got) == len(wanted)
                and all(_holds(g, w) for g, w in zip(got, wanted, strict=True)))
    return bool(got == wanted)


async def _prefixes(stored: Any) -> bool:
    got = await stored()
    return bool(got) and got["spec"]["bgp"]["routers"][0]["prefixes"] == ["198.51.100.10/32"]


async def _absent(stored: Any) -> bool:
    return await stored() is None


async def _recorded(writer: FrrK8sHandOff, namespace: str, body: dict[str, Any] | None) -> bool:
    """The writer has recorded ``body`` as written in ``namespace`` (None: its delete): it
    does so after its own call returned and its counters (writes, deletes, errors) moved."""
    await asyncio.sleep(0)
    return namespace in writer.written and writer.written[namespace] == body


def test_calico_list_is_written_into_the_existing_object_only(cni_crds: Cluster) -> None:
    async def go() -> None:
        c = client(cni_crds.kubeconfig)
        name = "calico-write"
        await c.create(BGP_CONFIGURATIONS.from_dict({
            "apiVersion": "crd.projectcalico.org/v1", "kind": "BGPConfiguration",
            "metadata": {"name": name},
            "spec": {"asNumber": 64512, "nodeToNodeMeshEnabled": False,
                     "serviceClusterIPs": [{"cidr": "10.96.0.0/12"}]}}))
        try:
            entries = [{"cidr": "198.51.100.10/32"}, {"cidr": "2001:db8:5::10/128"}]
            assert await write_calico(c, name, entries) is None
            obj = (await c.get(BGP_CONFIGURATIONS, name)).to_dict()
            assert obj["spec"]["serviceLoadBalancerIPs"] == entries
            # Calico's own settings are left as they were
            assert obj["spec"]["asNumber"] == 64512
            assert obj["spec"]["serviceClusterIPs"] == [{"cidr": "10.96.0.0/12"}]
            assert await write_calico(c, name, []) is None
            obj = (await c.get(BGP_CONFIGURATIONS, name)).to_dict()
            assert not obj["spec"].get("serviceLoadBalancerIPs")
            # a missing BGPConfiguration is reported, never created
            problem = await write_calico(c, "absent", entries)
            assert problem is not None and "not found" in problem
            with pytest.raises(ApiError):
                await c.get(BGP_CONFIGURATIONS, "absent")
        finally:
            await c.delete(BGP_CONFIGURATIONS, name)
            await c.close()

    run(go(), 60)


def _ours(kind: str, plural: str, name: str, spec: dict[str, Any]) -> Any:
    res = create_global_resource("vipcast.io", "v1beta1", kind, plural)
    return res, res.from_dict({"apiVersion": V, "kind": kind, "metadata": {"name": name},
                               "spec": spec})


def test_controller_hands_allocated_vips_to_calico(cni_crds: Cluster, namespace: str) -> None:
    """The leader writes one /32 per allocated VIP of the hand-off pool into Calico's
    BGPConfiguration (never the pool's CIDR), and takes it out when the Service goes."""
    async def go() -> None:
        c = client(cni_crds.kubeconfig, namespace)
        bgp_conf = f"calico-{namespace}"
        objects = [
            _ours("IPAddressPool", "ipaddresspools", f"p-{namespace}",
                  {"addresses": ["198.51.100.240/29"],
                   "serviceAllocation": {"namespaces": [namespace]}}),
            _ours("CNISpeaker", "cnispeakers", f"calico-{namespace}",
                  {"cni": "Calico", "asn": 64512,
                   "routers": [{"peerAddress": "192.0.2.1", "peerASN": 65000}],
                   "handOff": {"calico": {"bgpConfiguration": bgp_conf}}}),
            _ours("CNISpeaker", "cnispeakers", f"nowhere-{namespace}",
                  {"cni": "Calico", "asn": 64512,
                   "handOff": {"calico": {"bgpConfiguration": f"absent-{namespace}"}}}),
            _ours("BGPPeer", "bgppeers", f"tor-{namespace}",
                  {"coexistence": "HandOff", "cniSpeaker": f"calico-{namespace}",
                   "myASN": 64512, "peerASN": 65000, "peerAddress": "192.0.2.1"}),
            _ours("BGPAdvertisement", "bgpadvertisements", f"adv-{namespace}",
                  {"ipAddressPools": [f"p-{namespace}"], "peers": [f"tor-{namespace}"]}),
        ]
        await c.create(BGP_CONFIGURATIONS.from_dict({
            "apiVersion": "crd.projectcalico.org/v1", "kind": "BGPConfiguration",
            "metadata": {"name": bgp_conf}, "spec": {"asNumber": 64512}}))
        for _res, obj in objects:
            await c.create(obj)
        await c.create(lb_service("web", namespace))
        await c.create(lb_service("api", namespace))
        ctl = Controller(c, ControllerConfig(
            identity="cni", election=ElectionConfig(
                name=f"cni-{namespace}", namespace=namespace, lease_duration=2,
                renew_deadline=1.5, retry_period=0.2),
            resync=1, debounce=0.02))
        task = asyncio.create_task(ctl.run())

        async def cidrs() -> list[str]:
            obj = (await c.get(BGP_CONFIGURATIONS, bgp_conf)).to_dict()
            return [e["cidr"] for e in obj["spec"].get("serviceLoadBalancerIPs") or []]

        try:
            web = await eventually(lambda: ingress_ips(c, "web", namespace), 30, what="web IP")
            api = await eventually(lambda: ingress_ips(c, "api", namespace), 30, what="api IP")
            want = sorted(f"{ip}/32" for ip in (*web, *api))

            async def both() -> bool:
                return sorted(await cidrs()) == want
            await eventually(both, 30, what="both VIPs in serviceLoadBalancerIPs")
            assert "198.51.100.240/29" not in await cidrs()
            # each CNISpeaker says how its hand-off went; a missing BGPConfiguration is named
            speakers = objects[1][0]

            async def handed_off(name: str) -> dict[str, Any] | None:
                obj = (await c.get(speakers, name)).to_dict()
                conds = (obj.get("status") or {}).get("conditions") or []
                return next((x for x in conds if x["type"] == "vipcast.io/HandedOff"), None)

            ok = await eventually(lambda: handed_off(f"calico-{namespace}"), 30,
                                  what="HandedOff on the CNISpeaker")
            assert (ok["status"], ok["reason"]) == ("True", "Written")
            assert f"2 serviceLoadBalancerIPs in BGPConfiguration {bgp_conf}" == ok["message"]
            bad = await eventually(lambda: handed_off(f"nowhere-{namespace}"), 30,
                                   what="HandedOff on the CNISpeaker without its object")
            assert (bad["status"], bad["reason"]) == ("False", "BGPConfigurationNotFound")
            assert f"absent-{namespace}" in bad["message"]
            with pytest.raises(ApiError):
                await c.get(BGP_CONFIGURATIONS, f"absent-{namespace}")
            from lightkube.resources.core_v1 import Service
            await c.delete(Service, "api", namespace=namespace)

            async def only_web() -> bool:
                return await cidrs() == [f"{web[0]}/32"]
            await eventually(only_web, 30, what="api's VIP taken out")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            # the Services too: a status address left behind counts as taken by any later
            # controller of the shared cluster whose pool covers it (a later test's pool of
            # two was found full)
            from lightkube.resources.core_v1 import Service as Svc
            for name in ("web", "api"):
                with contextlib.suppress(ApiError):
                    await c.delete(Svc, name, namespace=namespace)
            for res, obj in objects:
                await c.delete(res, obj.metadata.name)
            await c.delete(BGP_CONFIGURATIONS, bgp_conf)
            await c.close()

    run(go(), 90)


def _chart_rules(values: list[str], account: str) -> list[tuple[str | None, dict[str, Any]]]:
    """(namespace or None, rule) the chart rendered with ``values`` grants ``account``."""
    docs = _render(values)
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d
             for d in docs if d["kind"] in ("Role", "ClusterRole")}
    rules: list[tuple[str | None, dict[str, Any]]] = []
    for b in docs:
        if b["kind"] in ("RoleBinding", "ClusterRoleBinding") and any(
                s["name"] == account for s in b["subjects"]):
            ref = b["roleRef"]
            ns = b["metadata"].get("namespace") if ref["kind"] == "Role" else None
            rules.extend((ns, r) for r in roles[(ref["kind"], ns, ref["name"])]["rules"])
    return rules


def _render(values: list[str]) -> list[dict[str, Any]]:
    """The chart's documents rendered with ``values`` (``--set`` items)."""
    import os
    import subprocess
    import tempfile

    from .harness.cluster import DEFAULT_BIN_DIR, missing_tool

    helm = Path(os.environ.get("HELM", DEFAULT_BIN_DIR / "helm"))
    missing_tool("chart RBAC of the hand-off", os.access(helm, os.X_OK),
                 f"no helm at {helm} (run scripts/install-helm.sh)")
    chart = Path(__file__).parents[2] / "deploy" / "helm" / "vipcast"
    with tempfile.TemporaryDirectory(prefix="vc-helm-") as scratch:
        env = {**os.environ, "HOME": scratch, "HELM_CACHE_HOME": f"{scratch}/c",
               "HELM_CONFIG_HOME": f"{scratch}/f", "HELM_DATA_HOME": f"{scratch}/d"}
        out = subprocess.run(
            [str(helm), "template", "vipcast", str(chart), "--namespace", "vipcast-system",
             *(a for v in values for a in ("--set", v))],
            env=env, capture_output=True, text=True, timeout=60, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def _allowed(rules: list[tuple[str | None, dict[str, Any]]], call: dict[str, str]) -> bool:
    """RBAC's answer for one audited call, resourceNames and namespaces included."""
    resource = call["resource"] + (f"/{call['subresource']}" if call["subresource"] else "")
    for ns, rule in rules:
        if ns is not None and call["namespace"] != ns:
            continue
        names = rule.get("resourceNames")
        if names and call.get("name", "") not in names:
            continue
        if (call["group"] in rule["apiGroups"] and resource in rule["resources"]
                and call["verb"] in rule["verbs"]):
            return True
    return False


def test_chart_rbac_allows_exactly_the_hand_off_writes(cni_crds: Cluster, namespace: str
                                                       ) -> None:
    """The chart's roles (rendered with cniHandOff values) cover every call the hand-off
    writers make, by name and namespace -- and nothing beside them in those groups."""
    bgp_conf = f"rbac-{namespace}"
    values = [f"cniHandOff.calicoBGPConfigurations[0]={bgp_conf}",
              f"cniHandOff.frrK8sNamespace={namespace}"]
    ctl_rules = _chart_rules(values, "vipcast-controller")
    spk_rules = _chart_rules(values, "vipcast-speaker")
    users = {"rbac-cni-controller": ctl_rules, "rbac-cni-speaker": spk_rules}

    async def go() -> None:
        admin = client(cni_crds.kubeconfig, namespace)
        ctl = client(cni_crds.kubeconfig_for("rbac-cni-controller"), namespace)
        spk = client(cni_crds.kubeconfig_for("rbac-cni-speaker"), namespace)
        await admin.create(BGP_CONFIGURATIONS.from_dict({
            "apiVersion": "crd.projectcalico.org/v1", "kind": "BGPConfiguration",
            "metadata": {"name": bgp_conf}, "spec": {}}))
        writer = FrrK8sHandOff(spk, "n1")
        task = asyncio.create_task(writer.run(seed=1))
        try:
            assert await write_calico(ctl, bgp_conf, [{"cidr": "198.51.100.10/32"}]) is None
            # the CNISpeaker's HandedOff condition, as the controller writes it
            res, speaker = _ours("CNISpeaker", "cnispeakers", f"rbac-{namespace}",
                                 {"asn": 64512, "handOff": {"calico": {}}})
            await admin.create(speaker)
            await apply_conditions(ctl, res, f"rbac-{namespace}", merged(
                [], [handed_off_condition(bgp_conf, 1, None)], None))
            await admin.delete(res, f"rbac-{namespace}")
            target = _target(namespace)
            await writer.apply(_plan(target, *ROUTES))
            await eventually(lambda: asyncio.sleep(0, writer.writes), 20, what="a write")
            await writer.apply(_plan(None))
            await eventually(lambda: asyncio.sleep(0, writer.deletes), 20, what="a delete")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await admin.delete(BGP_CONFIGURATIONS, bgp_conf)
            for c in (admin, ctl, spk):
                await c.close()

    run(go(), 60)
    calls = [c for c in cni_crds.audit() if c.get("user") in users]
    assert {(c["user"], c["verb"], c["resource"]) for c in calls} >= {
        ("rbac-cni-controller", "get", "bgpconfigurations"),
        ("rbac-cni-controller", "patch", "bgpconfigurations"),
        ("rbac-cni-controller", "patch", "cnispeakers"),
        ("rbac-cni-speaker", "patch", "frrconfigurations"),
        ("rbac-cni-speaker", "delete", "frrconfigurations")}
    missing = [c for c in calls if not _allowed(users[c["user"]], c)]
    assert not missing, missing
    # and no more than that: another BGPConfiguration, another namespace, a create of Calico's
    for rules, call in (
            (ctl_rules, {"group": "crd.projectcalico.org", "resource": "bgpconfigurations",
                         "subresource": "", "verb": "patch", "namespace": "", "name": "other"}),
            (ctl_rules, {"group": "crd.projectcalico.org", "resource": "bgpconfigurations",
                         "subresource": "", "verb": "create", "namespace": "", "name": ""}),
            (spk_rules, {"group": "frrk8s.metallb.io", "resource": "frrconfigurations",
                         "subresource": "", "verb": "patch", "namespace": "kube-system",
                         "name": "vipcast-n1"})):
        assert not _allowed(rules, call), call
    # the speakers are told the namespace (a stale object of their node is removed there)
    (speaker,) = [d for d in _render(values) if d["kind"] == "DaemonSet"]
    args = speaker["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--frr-k8s-namespace={namespace}" in args
    # without the values the chart grants nothing in those groups
    for account in ("vipcast-controller", "vipcast-speaker"):
        assert not any(g in ("crd.projectcalico.org", "frrk8s.metallb.io")
                       for _, r in _chart_rules([], account) for g in r["apiGroups"])


def test_a_restarted_speaker_removes_its_stale_frr_configuration(
        cni_crds: Cluster, namespace: str) -> None:
    """A node's object left from before (the config stopped handing off while the speaker was
    down) would keep FRR-K8s announcing its VIPs: a speaker told the FRR-K8s namespace
    deletes it on its first plan unless that plan wants it."""
    async def go() -> None:
        c = client(cni_crds.kubeconfig, namespace)
        target = _target(namespace)
        stale = frr_configuration("n1", target, handed_routes(_plan(target, *ROUTES), target))
        await c.create(FRR_CONFIGURATIONS.from_dict(stale))
        await c.create(FRR_CONFIGURATIONS.from_dict(
            {**stale, "metadata": {**stale["metadata"], "name": "vipcast-n2"}}))
        writer = FrrK8sHandOff(c, "n1", namespaces=(namespace,))
        task = asyncio.create_task(writer.run(seed=1))

        async def gone() -> bool:
            try:
                await c.get(FRR_CONFIGURATIONS, "vipcast-n1", namespace=namespace)
            except ApiError:
                return True
            return False

        try:
            await writer.apply(_plan(None, *ROUTES))
            await eventually(gone, 20, what="n1's stale FRRConfiguration deleted")
            # the writer's counters move after its own DELETE returned (the GET above may see
            # the object gone first): wait for its record of the delete, then check them
            await eventually(lambda: _recorded(writer, namespace, None), 20,
                             what="the writer's record of its delete")
            # another node's object is that node's speaker's business
            await c.get(FRR_CONFIGURATIONS, "vipcast-n2", namespace=namespace)
            assert (writer.errors, writer.writes, writer.deletes) == (0, 0, 1)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await c.delete(FRR_CONFIGURATIONS, "vipcast-n2", namespace=namespace)
            await c.close()

    run(go(), 60)
