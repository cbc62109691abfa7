"""Two ``vipcast providers controller`` processes on the real API server elect a leader with
the Lease ``vipcast-providers``: only the leader writes to the load balancer (the AS3 stand-in
records every write with its User-Agent, which carries the writer's identity); SIGKILL of the
leader and the other takes over; a leader frozen (SIGSTOP) past its Lease wakes up and writes
nothing before it holds the Lease again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lightkube import ApiError
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import Node

from .conftest import run
from .harness.cluster import Cluster
from .kubetools import IPAddressPool, client, eventually
from .provider_objects import (
    Provider,
    create_as3_provider,
    create_ready_node,
    delete_cluster_scoped,
    password_secret,
    provider_service,
    release_service,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "providers"))
from as3_server import AS3Service

pytestmark = pytest.mark.slow
LEASE = 3.0  # seconds: renew deadline 2 s, retry period 0.43 s


def _start(cluster: Cluster, namespace: str, identity: str, logdir: Path
           ) -> subprocess.Popen[bytes]:
    with (logdir / f"{identity}.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "vipcast.cli.main", "providers", "controller",
             "--kubeconfig", str(cluster.kubeconfig), "--namespace", namespace,
             "--identity", identity, "--lease-duration", str(LEASE), "--resync", "1"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def test_one_writer_across_leader_kill_and_pause(vipcast_crds: Cluster, namespace: str,
                                                 tmp_path: Path) -> None:
    async def go() -> None:
        as3 = AS3Service()
        await as3.start()
        c = client(vipcast_crds.kubeconfig, namespace)
        procs: dict[str, subprocess.Popen[bytes]] = {}
        lb = f"kube_service_c1_{namespace}_web"
        name = f"le-{namespace}"

        def writers_since(t: float) -> list[str]:
            return [ua.rsplit("/", 1)[-1] for at, ua in as3.writes if at >= t]

        async def holder() -> str | None:
            try:
                lease = await c.get(Lease, "vipcast-providers", namespace=namespace)
            except ApiError as exc:
                if exc.status.code == 404:
                    return None
                raise
            return lease.spec.holderIdentity if lease.spec else None

        async def members() -> object:
            app = as3.tenants.get(namespace, {}).get(lb, {})
            return app.get("pool-tcp-80", {}).get("members")

        try:
            await create_ready_node(c, f"x-{namespace}", "10.0.0.1")
            await c.create(password_secret("f5", namespace))
            await create_as3_provider(c, name, namespace, as3.url, ["198.51.100.100/30"],
                                      cluster_name="c1")
            await c.create(provider_service("web", namespace, name))
            for ident in ("a", "b"):
                procs[ident] = _start(vipcast_crds, namespace, ident, tmp_path)

            first = await eventually(holder, 30, what="a leader")
            await eventually(members, 30, what="the load balancer on the AS3 stand-in")
            assert set(writers_since(0)) == {first}, as3.writes

            # SIGKILL of the leader: the other takes the Lease over once it expired
            other = "b" if first == "a" else "a"
            procs[first].send_signal(signal.SIGKILL)
            await asyncio.to_thread(procs[first].wait, 10)
            killed_at = time.monotonic()
            await eventually(lambda: _is(holder, other), 30, what=f"{other} to lead")
            as3.tenants[namespace][lb]["pool-tcp-80"]["members"] = []  # drift
            await eventually(members, 30, what=f"{other} to repair the drift")
            assert set(writers_since(killed_at)) == {other}, as3.writes

            # a replacement joins; the leader is frozen past its Lease, the standby takes
            # over, then the frozen one wakes: it must not write before it holds the Lease
            procs[first] = _start(vipcast_crds, namespace, first, tmp_path)
            await asyncio.sleep(1.0)
            os.kill(procs[other].pid, signal.SIGSTOP)
            stopped_at = time.monotonic()
            await eventually(lambda: _is(holder, first), 30, what=f"{first} to lead")
            # now freeze the new leader, wake the old one and give it work to do
            os.kill(procs[first].pid, signal.SIGSTOP)
            as3.tenants[namespace][lb]["pool-tcp-80"]["members"] = []  # drift
            os.kill(procs[other].pid, signal.SIGCONT)
            woke_at = time.monotonic()
            last_seen_first = woke_at
            while time.monotonic() - woke_at < 30:
                sent = time.monotonic()
                if await holder() != first:
                    break
                last_seen_first = sent  # the Lease was first's at least until here
                await asyncio.sleep(0.05)
            await eventually(members, 30, what=f"{other} to repair the drift once leading")
            by_other = [at for at, ua in as3.writes if at >= woke_at and ua.endswith(f"/{other}")]
            assert by_other and min(by_other) >= last_seen_first, (
                f"{other} wrote {min(by_other) - woke_at:.2f}s after waking, while the Lease "
                f"was {first}'s until {last_seen_first - woke_at:.2f}s")
            frozen = {ua for at, ua in as3.writes if stopped_at <= at < woke_at}
            assert frozen <= {f"vipcast-providers/{first}"}, as3.writes
            os.kill(procs[first].pid, signal.SIGCONT)
            assert not as3.invalid
        finally:
            for proc in procs.values():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGCONT)
                    proc.terminate()
            for proc in procs.values():
                try:
                    await asyncio.to_thread(proc.wait, 10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    await asyncio.to_thread(proc.wait, 10)
            for ident in procs:
                print(f"--- {ident}.log\n{(tmp_path / f'{ident}.log').read_text()[-3000:]}")
            await release_service(c, "web", namespace)
            await as3.stop()
            await delete_cluster_scoped(c, (Provider, name), (IPAddressPool, name),
                                        (Node, f"x-{namespace}"))
            await c.close()
    run(go(), timeout=180)


async def _is(probe: object, want: str) -> bool:
    assert callable(probe)
    return bool(await probe() == want)
