"""The chart's L7 gateway path with the image (issue 12): speaker containers as the chart runs
them with ``gateway.enabled`` -- user 0, read-only root, NET_ADMIN, NET_RAW and
NET_BIND_SERVICE only, ``--gateway-workdir`` in the state volume -- run the Envoy the image
carries and announce the Gateway VIP the controller container allocated; the lab client's
requests reach the pods through that Envoy, the client in ``X-Forwarded-For``.

Same lab and relays as ``test_image_kube.py`` (namespaces ``vc-<pid>-igw-*``); the upstream
Gateway API CRDs are installed in the test API server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kube.conftest import gateway_api  # noqa: F401  (a fixture)
from kube.e2e_objects import (
    API_PORT,
    NODES,
    RELAY,
    KubeLab,
    delete_lab_objects,
    gateway_objects,
    gateway_vip,
    kube_lab_topology,
    lab_objects,
)
from kube.harness.cluster import Cluster
from kube.kubetools import GW
from vipcast.app.lab.topology import backend_ips, node_v4
from vipcast.lab.netns import wait_until

from .conftest import Image
from .test_image_kube import _kubeconfig, _name, shared_dir  # noqa: F401  (a fixture)

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.timeout(1500)]

HOST = "app.lab"


@pytest.fixture
def gw_lab(image: Image, kube_cluster: Cluster) -> Iterator[KubeLab]:
    if shutil.which("vtysh") is None and not Path("/usr/lib/frr/bgpd").exists():
        pytest.skip("FRR not installed (scripts/setup.sh installs it)")
    with kube_lab_topology("igw") as lab:
        yield lab


def test_speaker_containers_run_envoy_for_a_gateway(
    image: Image, gateway_api: Cluster, namespace: str,  # noqa: F811
    gw_lab: KubeLab, shared_dir: Path,  # noqa: F811
) -> None:
    cluster, lab, ns = gateway_api, gw_lab, namespace
    names = lab_objects(cluster, ns)
    gateway_objects(cluster, ns, f"img-{ns}", HOST)
    host_port = cluster.url.split("://", 1)[1]
    sock = shared_dir / "api.sock"
    kubeconfig = _kubeconfig(cluster, shared_dir / "kubeconfig")
    node_kubeconfig = _kubeconfig(cluster, shared_dir / "node-kubeconfig",
                                  f"http://127.0.0.1:{API_PORT}")
    relay_log = shared_dir / "relay.log"
    started: list[str] = []
    relay: subprocess.Popen[bytes] | None = None
    try:
        with relay_log.open("ab") as log:
            relay = subprocess.Popen(
                [sys.executable, str(RELAY), "--listen", f"unix:{sock}",
                 "--connect", f"tcp:{host_port}"], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)
        started.append(image.start(_name("gw-controller"), [
            "controller", "--kubeconfig", "/kube/config", "--namespace", ns,
            "--identity", "image-gw", "--lease-duration", "2", "--gateway-api"],
            "--network", "host", "-v", f"{kubeconfig}:/kube/config:ro"))
        wait_until(lambda: sock.exists() or None, timeout=60, what=str(sock))
        for i in range(1, NODES + 1):
            node = lab.node(i)
            node.spawn([sys.executable, str(RELAY), "--listen", f"tcp:127.0.0.1:{API_PORT}",
                        "--connect", f"unix:{sock}"], name="api-relay")
            state = shared_dir / f"state-n{i}"
            state.mkdir()
            # as the chart's speaker with gateway.enabled (templates/speaker.yaml)
            started.append(image.start(_name(f"gw-speaker-n{i}"), [
                "speaker", "--node", names[i - 1], "--kubeconfig", "/kube/config",
                "--metrics", "127.0.0.1:9470", "--state-dir", "/run/vipcast",
                "--gateway-workdir=/run/vipcast/gateway", "--gateway-admin-port=19000"],
                "--network", f"ns:/run/netns/{node.name}", "--user", "0",
                "--cap-add", "NET_ADMIN,NET_RAW,NET_BIND_SERVICE",
                "-v", f"{node_kubeconfig}:/kube/config:ro", "-v", f"{state}:/run/vipcast"))

        def report() -> str:
            text = lab.topo.logs()
            for name in started:
                text += f"\n----- {name}\n{image.logs(name)}"
            for i in range(1, NODES + 1):
                log = shared_dir / f"state-n{i}" / "gateway" / "envoy.log"
                if log.exists():
                    text += f"\n----- n{i} envoy.log\n{log.read_text()[-2000:]}"
            return text + f"\n----- relay\n{relay_log.read_text()[-2000:]}"

        vip = wait_until(lambda: gateway_vip(cluster, ns), timeout=120,
                         what="the Gateway's address committed", on_timeout=report)

        def hops() -> tuple[str, ...] | None:
            route = lab.topo["router"].route(f"{vip}/32")
            return route.gateways if route and len(route.gateways) == NODES else None

        got = wait_until(hops, timeout=120, what=f"{NODES} next hops for the Gateway VIP",
                         on_timeout=report)
        assert set(got) == {node_v4(i) for i in range(1, NODES + 1)}
        seen: list[dict[str, Any]] = []
        for _ in range(10):
            out = lab.topo["client"].run(
                ["curl", "-sf", "--max-time", "5", "-H", f"Host: {HOST}", f"http://{vip}/"],
                check=False, timeout=15)
            assert out.returncode == 0, (out.stderr, report())
            seen.append(json.loads(out.stdout))
        assert {s["forwarded"] for s in seen} == {"203.0.113.10"}
        pods = {ip4 for i in range(1, NODES + 1) for ip4, _ in backend_ips(i)}
        assert {s["pod"] for s in seen} <= pods
        # Envoy is the image's, a child of the speaker in each container
        for i in range(1, NODES + 1):
            top = image.podman("top", _name(f"gw-speaker-n{i}"), "args", check=False).stdout
            assert "envoy/_bin/envoy" in top, top
    finally:
        for name in started:
            image.stop(name)
        if relay is not None and relay.poll() is None:
            os.kill(relay.pid, signal.SIGTERM)
            try:
                relay.wait(5)
            except subprocess.TimeoutExpired:
                relay.kill()
                relay.wait(5)
        # the lab's objects (a BGPAdvertisement left naming a deleted pool would freeze the
        # config of every later test's controller in the shared session cluster)
        delete_lab_objects(cluster, ns, names)
        cluster.request("DELETE", f"{GW}/gatewayclasses/img-{ns}")
