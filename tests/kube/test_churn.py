"""kill -9 churn: two controller processes, the leader is killed repeatedly while Services are
created. Every Service ends up with an address, no address is ever held by two Services (as
seen by a watch of every status change), and no address ever moves."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from contextlib import aclosing
from pathlib import Path

import pytest
from lightkube.resources.coordination_v1 import Lease

from .conftest import run
from .harness.cluster import Cluster
from .kubetools import IPAddressPool, Service, client, eventually, lb_service, pool

pytestmark = pytest.mark.slow
ROUNDS = 4
PER_ROUND = 4


def _start(cluster: Cluster, namespace: str, identity: str, logdir: Path
           ) -> subprocess.Popen[bytes]:
    log = (logdir / f"{identity}.log").open("ab")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "vipcast.cli.main", "controller",
             "--kubeconfig", str(cluster.kubeconfig), "--namespace", namespace,
             "--identity", identity, "--lease-duration", "2", "--log-level", "INFO"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    finally:
        log.close()


def test_kill9_leader_churn(vipcast_crds: Cluster, namespace: str, tmp_path: Path) -> None:
    procs: dict[str, subprocess.Popen[bytes]] = {}

    async def go() -> None:
        c = client(vipcast_crds.kubeconfig, namespace)
        await c.create(pool(f"p-{namespace}", ["198.18.0.0/27"], namespace))
        holders: dict[str, str] = {}  # ip -> service, from every watched status change
        first_ip: dict[str, tuple[str, ...]] = {}
        violations: list[str] = []

        async def audit() -> None:
            stream = c.watch(Service, namespace=namespace)
            async with aclosing(stream):  # type: ignore[type-var]
                async for _, svc in stream:
                    name = svc.metadata.name
                    lb = svc.status.loadBalancer if svc.status else None
                    ips = tuple(i.ip for i in (lb.ingress or []) if i.ip) if lb else ()
                    for ip, who in list(holders.items()):
                        if who == name and ip not in ips:
                            del holders[ip]
                    for ip in ips:
                        if holders.setdefault(ip, name) != name:
                            violations.append(f"{ip} held by {holders[ip]} and {name}")
                    if ips and first_ip.setdefault(name, ips) != ips:
                        violations.append(f"{name} moved {first_ip[name]} -> {ips}")

        auditor = asyncio.create_task(audit())
        for ident in ("ctl-a", "ctl-b"):
            procs[ident] = _start(vipcast_crds, namespace, ident, tmp_path)
        names: list[str] = []
        try:
            for rnd in range(ROUNDS):
                for i in range(PER_ROUND):
                    name = f"s{rnd}-{i}"
                    names.append(name)
                    await c.create(lb_service(name, namespace))

                async def all_assigned() -> bool:
                    return all(n in first_ip for n in names)

                await eventually(all_assigned, 45, every=0.2,
                                 what=f"round {rnd}: every Service assigned")
                lease = await c.get(Lease, "vipcast-controller", namespace=namespace)
                leader = lease.spec.holderIdentity
                assert leader in procs, leader
                os.kill(procs[leader].pid, signal.SIGKILL)
                procs[leader].wait(10)
                procs[leader] = _start(vipcast_crds, namespace, leader, tmp_path)
            await asyncio.sleep(1.0)
            assert not violations, violations
            assert len({first_ip[n] for n in names}) == len(names)
        finally:
            auditor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await auditor
            await c.delete(IPAddressPool, f"p-{namespace}")
            await c.close()

    try:
        run(go(), 300)
    except BaseException:
        for log in sorted(tmp_path.glob("*.log")):
            print(f"--- {log.name}\n{log.read_text()[-3000:]}")
        raise
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
