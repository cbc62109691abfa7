"""``vipcast lab up --appliance haproxy``: the appliance tier, driven the way a user would.

Builds :mod:`vipcast.lab.appliance` (client and outsider -> FRR router -> appliance -> two
nodes with backends), writes an object set (a ``LoadBalancerProvider`` of driver haproxy, its
pool, a Service of class ``vipcast.io/haproxy`` and its EndpointSlices) to ``<workdir>/config``
and runs ``vipcast providers sync`` INSIDE the appliance namespace (so HAProxy starts there),
then has vipcast's BGP speaker on the appliance announce the VIP to the router.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from vipcast.app.lab.topology import LabState, vipcast_argv
from vipcast.lab.appliance import VIP, Appliance, build
from vipcast.lab.netns import LabError, Topology

SERVICE_CLASS = "vipcast.io/haproxy"


def objects(workdir: Path, lab: Appliance) -> list[dict[str, Any]]:
    # one endpoint per node address (a pod has one address; the lab's second backend per
    # node, on 8082, shares it and is left to the driver-level tests)
    by_port: dict[int, list[str]] = {}
    for m in lab.members:
        if m.port == 8081:
            by_port.setdefault(m.port, []).append(m.address)
    slices = [{
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"web-{port}", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses],
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
    } for port, addresses in sorted(by_port.items())]
    return [
        {"apiVersion": "vipcast.io/v1beta1", "kind": "IPAddressPool",
         "metadata": {"name": "appliance"},
         "spec": {"addresses": ["198.51.100.0/28"], "autoAssign": False}},
        {"apiVersion": "vipcast.io/v1beta1", "kind": "LoadBalancerProvider",
         "metadata": {"name": "haproxy"},
         "spec": {"driver": "haproxy", "endpoint": f"file://{workdir / 'haproxy'}",
                  "options": {"members": "pods", "addressPools": ["appliance"],
                              "forwardedFor": True, "clusterName": "lab",
                              "healthCheck": {"interval": "1s", "timeout": "1s"}}}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "web", "namespace": "default"},
         "spec": {"type": "LoadBalancer", "loadBalancerClass": SERVICE_CLASS,
                  "loadBalancerIP": VIP,
                  "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}},
        *slices,
    ]


def up(workdir: Path, prefix: str, nodes: int = 2) -> tuple[Topology, LabState]:
    """Build and start it; the processes outlive this call (``vipcast lab down`` ends them).
    The Topology is returned for callers that stay (tests reap their process handles)."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    workdir.chmod(0o755)
    topo = Topology(prefix, workdir=workdir, keep_workdir=True)
    try:
        lab = build(topo, nodes=nodes)
        config = workdir / "config"
        config.mkdir()
        (config / "appliance.yaml").write_text(
            yaml.safe_dump_all(objects(workdir, lab), sort_keys=False))
        out = lab.appliance.run([*vipcast_argv(), "providers", "sync", str(config), "--json"],
                                timeout=60, check=False)
        if out.returncode != 0:
            raise LabError(f"providers sync failed:\n{out.stdout}\n{out.stderr}")
        report = json.loads(out.stdout)
        vips = [a["vip"] for r in report for a in r["applied"] if a["vip"]]
        lab.announce(vips)
        for vip in vips:
            lab.wait_route(vip, timeout=60)
        state = LabState(prefix=prefix, workdir=str(workdir),
                         nodes=[n.short for n in lab.nodes],
                         namespaces=[ns.name for ns in topo],
                         frr_dir=str(lab.frr.directory),
                         options={"appliance": "haproxy", "vips": vips})
        state.pids["router-frr"] = lab.frr.pid
        state.pids["appliance-speaker"] = lab.speaker.pid
        for proc in lab.backends:
            state.pids[proc.name] = proc.pid
        state.save()
        return topo, state
    except BaseException:
        topo.close()
        raise
