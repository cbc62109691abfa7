"""End to end in Layer 2 mode on Kubernetes objects: the controller allocates from the API
server, ``vipcast speaker`` on three nodes of one LAN answers ARP for the VIP (one owner), a
client on the LAN reaches the backends; SIGKILL of the owner's speaker plus its cable pulled
moves the VIP to another node, and requests succeed again.

Back in CI (issue 11): its intermittent failures came from the test itself, see docs/lab.md
("Failover tests: one time line, two timeouts ..."): it picked the owner before the speakers'
membership had settled, and it placed the kill and the samples on two different clocks.

Topology (namespaces ``vc-<pid>-k8l-*``): client, n1, n2, n3 on one bridge (``lan``); each node
runs a speaker (data plane on: nftables DNAT, verified before owning) and one HTTP backend for
its pod addresses. vipcast runs from the source tree through ``e2e_run.Runner`` (the image
runner is the one ``test_e2e_lab.py`` uses). The API server is reached through the relays of
``e2e_objects.ApiRelay``, as in ``test_e2e_lab.py``: nothing is added to the root namespace's
network.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vipcast.app.lab.demo import recovery_time, send
from vipcast.app.lab.topology import LAN_V4, backend_ips, node_v4
from vipcast.lab.netns import Netns, Topology, leftovers, wait_until
from vipcast.lab.workload import ClientLoad

from .arp_capture import ArpCapture
from .e2e_objects import API, ApiRelay, delete_lab_objects, lab_objects, lb_ingress
from .e2e_run import Handle, Runner, vipcast_argv
from .harness.cluster import Cluster

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.netns,
    pytest.mark.slow,
]

if os.geteuid() != 0:  # pragma: no cover
    pytest.skip("the lab needs root", allow_module_level=True)

NODES = 3
POOL = "192.0.2.80/28"
CLIENT_V4 = f"{LAN_V4}.100"
STATUS = "127.0.0.1:9470"  # each speaker's /status, inside its namespace
KEY = "k8s-l2-e2e-membership-key"




class L2Lan:
    """client, n1..n3 on one bridge; a backend on each node (no speaker yet)."""

    def __init__(self, topo: Topology) -> None:
        self.topo = topo
        lan, client = topo.add_netns("lan"), topo.add_netns("client")
        lan.add_bridge("br0")
        topo.attach_to_bridge(lan, "br0", "p0", client, "eth0")
        client.add_address("eth0", f"{CLIENT_V4}/24")
        # the pool is on the LAN: the client resolves each VIP by ARP on eth0
        client.add_route(POOL, dev="eth0")
        for i in range(1, NODES + 1):
            node = topo.add_netns(f"n{i}", router=True)
            topo.attach_to_bridge(lan, "br0", f"p{i}", node, "eth0")
            node.add_address("eth0", f"{node_v4(i)}/24")
            # VIPs are never interface addresses; only vipcast's responder answers for them
            node.sysctl("net.ipv4.conf.all.arp_ignore", 1)
            for ip4, _ in backend_ips(i):
                node.add_address("lo", f"{ip4}/32")
            for j in range(1, NODES + 1):
                if j != i:
                    node.add_route(f"10.244.{j}.0/24", via=node_v4(j))
            node.spawn([sys.executable, "-m", "vipcast.lab.workload", "serve", "--host", "",
                        "--port", "8080", "--name", f"n{i}-b", "--node", f"n{i}"],
                       name="backend")

    def node(self, i: int) -> Netns:
        return self.topo[f"n{i}"]

    def mac(self, i: int) -> str:
        data = self.node(i).ip_json("link", "show", "dev", "eth0")
        return str(data[0]["address"]).lower()

    def client_neighbor(self, vip: str) -> str | None:
        """The MAC the client's ARP cache holds for ``vip`` (None: unresolved)."""
        for entry in self.topo["client"].ip_json("neigh", "show", vip, "dev", "eth0"):
            mac = entry.get("lladdr")
            if mac and not set(entry.get("state", [])) & {"FAILED", "INCOMPLETE"}:
                return str(mac).lower()
        return None

    def answerers(self, vip: str, name: str) -> set[str]:
        """MACs that answer ARP for ``vip`` on the bridge while the client, its cache flushed,
        resolves the VIP again and sends requests (every answer must come from them)."""
        capture = ArpCapture(self.topo["lan"], "br0", self.topo.workdir / f"{name}.pcap")
        try:
            self.topo["client"].ip("neigh", "flush", "dev", "eth0")
            samples = send(self.topo["client"], f"http://{vip}/", 5, timeout=1.0)
            assert samples and all(s.ok for s in samples), [s.error for s in samples]
        finally:
            seen = capture.stop()
        replies = [a for a in seen if a.ip == vip and not a.gratuitous]
        assert replies, (seen, capture.path.stat().st_size, capture.process.log_text(),
                         self.topo["client"].ip("neigh", "show").stdout)
        return {a.mac for a in seen if a.ip == vip}

    def status(self, i: int) -> dict[str, Any]:
        """Speaker ``i``'s /status document."""
        out = self.node(i).run(["curl", "-sf", "--max-time", "3", f"http://{STATUS}/status"],
                               timeout=10).stdout
        document = json.loads(out)
        assert isinstance(document, dict)
        return document


def _reports(cluster: Cluster, names: list[str]) -> dict[str, tuple[str, ...]]:
    """node -> how its NodeAnnouncement lists ``web``: ("L2",) announced, or (reason,)."""
    out: dict[str, tuple[str, ...]] = {}
    for name in names:
        code, body = cluster.request("GET", f"{API}/nodeannouncements/{name}")
        status = (body.get("status") or {}) if code == 200 else {}
        for item in status.get("announced", []):
            if item["service"].endswith("/web"):
                out[name] = tuple(item["modes"])
        for item in status.get("withheld", []):
            if item["service"].endswith("/web"):
                out[name] = (item["reason"],)
    return out


def _answering(document: dict[str, Any], vip: str) -> bool:
    l2 = document.get("l2") or {}
    return any(v.get("ip") == vip and v.get("answering_here") for v in l2.get("vips", []))


@pytest.fixture
def l2_lan(kube_cluster: Cluster) -> Iterator[L2Lan]:
    workdir = Path(tempfile.mkdtemp(prefix="vc-k8l-"))
    workdir.chmod(0o755)  # the containers' user reads the kubeconfig there
    prefix = f"vc-{os.getpid()}-k8l"
    topo = Topology(prefix, workdir=workdir, keep_workdir=True)
    try:
        yield L2Lan(topo)
    finally:
        topo.close()
        shutil.rmtree(workdir, ignore_errors=True)
        assert not leftovers(prefix)


def test_l2_speakers_fed_by_api_answer_arp_and_fail_over(
    vipcast_crds: Cluster, namespace: str, l2_lan: L2Lan
) -> None:
    cluster, lan = vipcast_crds, l2_lan
    work = lan.topo.workdir
    names = lab_objects(cluster, namespace, mode="l2", nodes=NODES, pool=POOL, per_node=1,
                        annotations={
                            # backends behind a dead node leave the survivors' NAT maps
                            # within about a second
                            "vipcast.io/health-check": "tcp, interval=0.3, timeout=0.25, fall=2"})
    relay = ApiRelay(cluster, work)
    # from the source tree for now: with the image it passed 2 runs of 4 (one failure timed
    # out waiting, in the other both survivors answered for the VIP after the owner's
    # container was killed; both while image builds loaded the machine): docs/image.md
    runner = Runner(None, work)
    speakers: dict[int, Handle] = {}

    def report() -> str:
        return f"{lan.topo.logs()}{runner.report()}\n----- relay\n{relay.log.read_text()[-2000:]}"

    try:
        runner.controller(relay.kubeconfig, namespace, "e2e-l2")
        for i in range(1, NODES + 1):
            relay.into(lan.node(i))
            speakers[i] = runner.speaker(lan.node(i), names[i - 1], relay.node_kubeconfig,
                                         work / f"state-n{i}", STATUS,
                                         env={"VIPCAST_MEMBERSHIP_KEY": KEY})

        vip = wait_until(lambda: lb_ingress(cluster, namespace), timeout=60,
                         what="the controller's address in Service status", on_timeout=report)
        assert vip.startswith("192.0.2.")
        macs = {lan.mac(i): i for i in range(1, NODES + 1)}

        def served() -> int | None:
            samples = send(lan.topo["client"], f"http://{vip}/", 5, timeout=0.5,
                           max_seconds=5)
            if not samples or not all(s.ok for s in samples):
                return None
            mac = lan.client_neighbor(vip)
            return macs.get(mac) if mac else None

        # the speakers settle first: all three alive in every view, each able to serve the VIP,
        # all naming one owner. Before that the owner may still move (a speaker that starts or
        # verifies its data plane later and wins the rendezvous hash takes the VIP over), and
        # a test that picked the owner earlier saw another node answer ARP a moment later
        def settled() -> int | None:
            try:
                views = [(lan.status(i).get("l2") or {}) for i in range(1, NODES + 1)]
            except (subprocess.SubprocessError, ValueError):
                return None  # a speaker's /status not up yet
            owners = set()
            for view in views:
                membership = view.get("membership") or {}
                if len(membership.get("alive") or []) != NODES or not membership.get("quorum"):
                    return None
                mine = [v for v in view.get("vips", []) if v.get("ip") == vip]
                if not mine or not mine[0].get("servable_here"):
                    return None
                owners.add(mine[0].get("owner"))
            if len(owners) != 1 or None in owners:
                return None
            return names.index(owners.pop()) + 1

        settled_owner = wait_until(settled, timeout=60, interval=0.3,
                                   what="speakers agreeing on one owner", on_timeout=report)
        owner = wait_until(served, timeout=60, interval=0.5,
                           what=f"requests to {vip} and its ARP entry", on_timeout=report)
        assert owner == settled_owner, (owner, settled_owner)

        # exactly one speaker answers for the VIP, the one the client's ARP resolved to
        def one_answerer() -> list[int] | None:
            answering = [i for i in range(1, NODES + 1) if _answering(lan.status(i), vip)]
            return answering if answering == [owner] else None

        wait_until(one_answerer, timeout=20, what=f"n{owner} alone answering {vip}",
                   on_timeout=report)
        assert lan.answerers(vip, "before") == {lan.mac(owner)}

        # each speaker's NodeAnnouncement says who answers (the runtime owner), and the
        # controller folds that into the Service's Announced condition
        def reported(owner: int, nodes: list[int]) -> dict[str, tuple[str, ...]] | None:
            want = {names[i - 1]: ("L2",) if i == owner else ("L2Standby",) for i in nodes}
            got = _reports(cluster, [names[i - 1] for i in nodes])
            return got if got == want else None

        wait_until(lambda: reported(owner, list(range(1, NODES + 1))), timeout=20,
                   what="NodeAnnouncements naming the owner",
                   on_timeout=lambda: repr(_reports(cluster, names)))

        def condition() -> str | None:
            code, svc = cluster.request("GET", f"/api/v1/namespaces/{namespace}/services/web")
            for cond in (svc.get("status") or {}).get("conditions") or [] if code == 200 else []:
                if cond["type"] == "vipcast.io/Announced" and cond["status"] == "True":
                    return str(cond["message"])
            return None

        message = wait_until(condition, timeout=20, what="the Announced condition")
        assert message.endswith(f"over L2: {names[owner - 1]}"), message

        # `vipcast status` against a speaker shows the L2 section
        # 120 s: a new Python process importing the whole CLI at nice 15 on a machine whose
        # other work runs at nice 0 took more than 30 s (the speaker had answered at once)
        # (asked again if it fails: its fetch gives up after 5 s, which a speaker at nice 15
        # on a loaded machine can take to answer /status)
        shown = wait_until(
            lambda: lan.node(owner).run([*vipcast_argv(), "status", "--address", STATUS],
                                        timeout=120, env={**os.environ, "COLUMNS": "200"}).stdout,
            timeout=150, interval=1.0, what="`vipcast status` against the owner's speaker",
            on_timeout=report)
        assert "L2 VIPs" in shown and "L2 membership" in shown, shown
        assert vip in shown and names[owner - 1] in shown, shown
        assert "quorum" in shown and "NO QUORUM" not in shown, shown

        # the owner dies: SIGKILL its speaker and pull its cable, under client load. The load
        # runs on this test's time line (ClientLoad's t0: before, the samples counted from the
        # load process's own start, up to a second after the test's, so the failover's own
        # failures showed up "before the kill"); 0.25 s for the handshake (the path), 2 s for
        # the answer (a busy machine's Python backend; docs/lab.md)
        load = ClientLoad(lan.topo["client"], f"http://{vip}/", duration=15.0,
                          response_timeout=2.0)
        time.sleep(2.0)
        kill_at = load.now()
        speakers[owner].kill()
        lan.topo["lan"].set_link(f"p{owner}", False)
        after = load.samples()
        recovery, failed = recovery_time(after, kill_at)
        print(f"L2 failover through the API-fed speakers: recovered {recovery} s after the "
              f"kill, {failed} requests failed: "
              f"{[(round(s.t - kill_at, 2), s.error, s.phase) for s in after if not s.ok]}")
        assert recovery is not None, ("traffic never reached a new owner", report())
        # behaviour, not speed (bench/l2_failover.py has the figure): a new owner serves and
        # keeps serving: the run's last 4 s all succeed (every sample after ``recovery``
        # succeeds by its definition, so that alone would prove nothing)
        final = [s for s in after if s.t > after[-1].t - 4.0]
        assert final and all(s.ok for s in final), (
            [(round(s.t - kill_at, 2), s.error) for s in after if not s.ok], report())
        assert f"n{owner}" not in {s.node for s in final}  # its backend is gone too

        survivors = [i for i in range(1, NODES + 1) if i != owner]
        new_mac = lan.client_neighbor(vip)
        assert new_mac is not None and macs.get(new_mac) in survivors, (new_mac, macs)
        new_owner = macs[new_mac]
        # /status of a speaker at nice 15 on a loaded machine can take longer than curl's 3 s:
        # ask until each answers (an answer, whatever it says, is what is checked below)
        views = {i: wait_until(lambda i=i: lan.status(i), timeout=60,
                               what=f"n{i}'s /status", on_timeout=report)
                 for i in survivors}
        answering = [i for i in survivors if _answering(views[i], vip)]
        assert answering == [new_owner], (answering, new_owner,
                                          {i: v.get("l2") for i, v in views.items()}, report())
        assert lan.answerers(vip, "after") == {new_mac}
        # the dead node's report stays as it was (until its Node is NotReady); the
        # survivors' reports follow the new owner
        wait_until(lambda: reported(new_owner, survivors), timeout=20,
                   what="survivors' NodeAnnouncements naming the new owner",
                   on_timeout=lambda: repr(_reports(cluster, names)))
    finally:
        # speakers first: a running speaker would write its NodeAnnouncement again
        runner.close()
        relay.close()
        delete_lab_objects(cluster, namespace, names)
