"""End to end on Kubernetes objects: the controller allocates from the API server, ``vipcast
speaker`` on two lab nodes (in network namespaces) announces the VIP to FRR, and a client's
requests through the router reach the backends. The speakers' node liveness takes its members
from the API's Node objects, and a speaker whose node loses power is declared dead by the other.
vipcast runs from its container image, as the chart runs it (``e2e_run.py``; a power loss is
the cable pulled and ``podman kill -s KILL``; ``VIPCAST_E2E_FROM_SOURCE=1``: from the source
tree).

Topology (namespaces ``vc-<pid>-k8e-*``): client ── router (FRR, AS 64512) ── lan bridge ── n1,
n2 (each a speaker + one HTTP backend serving its two pod addresses). The API server (harness)
listens on the root namespace's loopback, which the node namespaces cannot reach: relays
(``e2e_objects.ApiRelay``) carry it into each node namespace. Nothing is added to the root
namespace's network; podman's default bridge network is never used.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator

import pytest

from vipcast.app.lab.demo import send
from vipcast.app.lab.topology import node_v4
from vipcast.lab.netns import wait_until

from .e2e_objects import (
    NODES,
    ApiRelay,
    KubeLab,
    delete_lab_objects,
    kube_lab_topology,
    lab_objects,
    lb_ingress,
)
from .e2e_run import Image, Runner
from .harness.cluster import Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.netns, pytest.mark.slow]

if os.geteuid() != 0:  # pragma: no cover
    pytest.skip("the lab needs root", allow_module_level=True)


_STATUS = ("import urllib.request; print(urllib.request.urlopen("
           "'http://127.0.0.1:9470/status', timeout=5).read().decode())")


@pytest.fixture
def kube_lab(kube_cluster: Cluster) -> Iterator[KubeLab]:
    with kube_lab_topology("k8e") as lab:
        yield lab


def test_speaker_fed_by_api_announces_to_frr_and_traffic_flows(
    vipcast_crds: Cluster, namespace: str, kube_lab: KubeLab, vipcast_image: Image | None
) -> None:
    cluster, lab, ns = vipcast_crds, kube_lab, namespace
    names = lab_objects(cluster, ns)
    relay = ApiRelay(cluster, lab.workdir)
    runner = Runner(vipcast_image, lab.workdir)
    try:
        runner.controller(relay.kubeconfig, ns, "e2e")
        speakers = []
        for i in range(1, NODES + 1):
            relay.into(lab.node(i))
            speakers.append(runner.speaker(
                lab.node(i), names[i - 1], relay.node_kubeconfig, lab.workdir / f"state-n{i}",
                "127.0.0.1:9470", env={"VIPCAST_MEMBERSHIP_KEY": "e2e-membership-key"}))

        def report() -> str:
            return (f"{lab.topo.logs()}{runner.report()}\n----- relay\n"
                    f"{relay.log.read_text()[-2000:]}")

        vip = wait_until(lambda: lb_ingress(cluster, ns), timeout=60,
                         what="the controller's address in Service status", on_timeout=report)
        assert vip.startswith("192.0.2.")
        lab.frr.wait_established(node_v4(1), node_v4(2), timeout=60)

        def gateways() -> tuple[str, ...] | None:
            route = lab.topo["router"].route(f"{vip}/32")
            return route.gateways if route and len(route.gateways) == NODES else None

        hops = wait_until(gateways, timeout=60, what=f"{NODES} next hops for {vip}",
                          on_timeout=report)
        assert set(hops) == {node_v4(i) for i in range(1, NODES + 1)}
        samples = send(lab.topo["client"], f"http://{vip}/", 60)
        ok = [s for s in samples if s.ok]
        assert len(ok) >= 55, (len(ok), [s.error for s in samples if not s.ok][:5], report())
        assert {s.node for s in ok} <= {"n1", "n2"}

        # the speakers' nftables rules are in the node namespaces, not the root one
        rules = lab.node(1).run(["nft", "list", "ruleset"]).stdout
        assert vip in rules, rules

        # the Service goes away: both speakers withdraw the route
        code, _ = cluster.request("DELETE", f"/api/v1/namespaces/{ns}/services/web")
        assert code in (200, 202)
        lab.topo["router"].wait_no_route(f"{vip}/32", timeout=60)  # fails after 60 s

        # node liveness: the members are the API's Nodes (the speakers got no list); n2 loses
        # power (cable pulled, speaker SIGKILLed) and n1's speaker declares it dead
        def liveness(i: int) -> dict[str, object]:
            out = lab.node(i).run([sys.executable, "-c", _STATUS]).stdout
            section: dict[str, object] = json.loads(out).get("liveness", {})
            return section

        wait_until(lambda: set(liveness(1).get("alive", ())) == set(names[:NODES]) or None,
                   timeout=60, what="n1's speaker sees both nodes alive", on_timeout=report)
        lab.topo["lan"].set_link("p2", False)
        speakers[1].kill()
        wait_until(lambda: liveness(1).get("dead") == [names[1]] or None, timeout=30,
                   what=f"n1's speaker declares {names[1]} dead", on_timeout=report)
    finally:
        runner.close()
        relay.close()
        delete_lab_objects(cluster, ns, names)
