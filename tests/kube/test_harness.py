"""Smoke tests of the API-tier harness through lightkube: the semantics our code relies on."""

from __future__ import annotations

import asyncio
import socket
from contextlib import aclosing
from pathlib import Path

import pytest
from lightkube import AsyncClient, KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.models.core_v1 import LoadBalancerIngress, LoadBalancerStatus, ServiceStatus
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Service

from .conftest import run
from .harness.cluster import (
    Cluster,
    ClusterError,
    binaries_present,
    free_loopback_port,
    missing_tool,
    start_cluster,
)

pytestmark = pytest.mark.slow


def _client(cluster: Cluster, namespace: str) -> AsyncClient:
    return AsyncClient(config=KubeConfig.from_file(cluster.kubeconfig), namespace=namespace)


def _service(name: str) -> Service:
    return Service.from_dict({
        "metadata": {"name": name},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
    })


def test_create_defaults_and_discovery(kube_cluster: Cluster, namespace: str) -> None:
    async def go() -> None:
        client = _client(kube_cluster, namespace)
        created = await client.create(_service("web"))
        assert created.apiVersion == "v1"
        assert created.spec.ports[0].protocol == "TCP"
        got = await client.get(Service, "web")
        assert got.metadata.uid == created.metadata.uid
        await client.close()

    run(go())
    code, body = kube_cluster.request("GET", "/api/v1")
    assert code == 200
    assert any(r["name"] == "services/status" for r in body["resources"])


def test_watch_and_status_patch(kube_cluster: Cluster, namespace: str) -> None:
    async def go() -> None:
        client = _client(kube_cluster, namespace)
        await client.create(_service("a"))
        rv = client.list(Service)
        names = [s.metadata.name async for s in rv]
        assert names == ["a"]
        events: list[tuple[str, str]] = []

        async def watch() -> None:
            stream = client.watch(Service, resource_version=rv.resourceVersion)
            async with aclosing(stream):  # type: ignore[type-var]
                async for ev, svc in stream:
                    ingress = svc.status.loadBalancer.ingress if svc.status else None
                    events.append((ev, ingress[0].ip if ingress else ""))
                    if ingress:
                        return

        task = asyncio.create_task(watch())
        await asyncio.sleep(0.2)
        # writes to the main resource ignore status; /status writes apply it
        await client.patch(Service, "a", {"status": {"loadBalancer": {"ingress": [
            {"ip": "192.0.2.9"}]}}}, patch_type=_merge())
        got = await client.get(Service, "a")
        assert not (got.status and got.status.loadBalancer and got.status.loadBalancer.ingress)
        status = ServiceStatus(loadBalancer=LoadBalancerStatus(
            ingress=[LoadBalancerIngress(ip="192.0.2.10", ipMode="VIP")]))
        await client.patch(Service.Status, "a", {"status": status.to_dict()},
                           patch_type=_merge())
        await asyncio.wait_for(task, 20)
        assert events[-1] == ("MODIFIED", "192.0.2.10")
        await client.close()

    run(go())


def test_server_side_apply_status_ownership(kube_cluster: Cluster, namespace: str) -> None:
    async def go() -> None:
        client = _client(kube_cluster, namespace)
        await client.create(_service("ssa"))
        body = Service.Status(
            apiVersion="v1", kind="Service", metadata=ObjectMeta(name="ssa"),
            status=ServiceStatus(loadBalancer=LoadBalancerStatus(
                ingress=[LoadBalancerIngress(ip="198.51.100.1", ipMode="VIP")])))
        out = await client.apply(body, field_manager="vipcast")
        managers = {m.manager for m in out.metadata.managedFields}
        assert "vipcast" in managers
        other = Service.Status(
            apiVersion="v1", kind="Service", metadata=ObjectMeta(name="ssa"),
            status=ServiceStatus(loadBalancer=LoadBalancerStatus(
                ingress=[LoadBalancerIngress(ip="198.51.100.2")])))
        with pytest.raises(ApiError) as err:
            await client.apply(other, field_manager="intruder")
        assert err.value.status.code == 409
        await client.close()

    run(go())


def test_stale_resource_version_gone_and_conflict(kube_cluster: Cluster, namespace: str) -> None:
    async def go() -> None:
        client = _client(kube_cluster, namespace)
        created = await client.create(_service("old"))
        created.metadata.labels = {"a": "b"}
        await client.replace(created)
        with pytest.raises(ApiError) as conflict:
            await client.replace(created)
        assert conflict.value.status.code == 409
        await client.close()

    run(go())


def _merge():  # type: ignore[no-untyped-def]
    from lightkube.types import PatchType

    return PatchType.MERGE


def test_watch_from_too_old_version_is_gone(kube_cluster: Cluster, namespace: str) -> None:
    async def go() -> int:
        client = _client(kube_cluster, namespace)
        await client.create(_service("gone"))
        stream = client.watch(Service, resource_version="1")
        try:
            async with aclosing(stream):  # type: ignore[type-var]
                async for _ in stream:
                    return 0
        except ApiError as exc:
            return int(exc.status.code or 0)
        finally:
            await client.close()
        return 0

    assert run(go()) == 410


def test_a_taken_port_starts_the_cluster_again_on_fresh_ports(tmp_path: Path) -> None:
    """The harness chooses its servers' ports before they bind them; another process may take
    one in between. Here etcd's client port is taken (a listener) before etcd starts: etcd
    exits with "address already in use", and the start is made again on fresh ports."""
    missing_tool("API-tier tests", binaries_present(), "run scripts/build-k8s.sh")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        picks = iter([taken.getsockname()[1]])

        def pick() -> int:
            return next(picks, None) or free_loopback_port()

        cluster = start_cluster(tmp_path / "k8s", webhooks=False, pick_port=pick)
        try:
            assert cluster.attempts == 2
            etcd_log = (tmp_path / "k8s" / "etcd.log").read_text(errors="replace")
            assert "address already in use" in etcd_log, etcd_log[-2000:]
            assert cluster.etcd_port != taken.getsockname()[1]
            code, body = cluster.request("GET", "/api/v1/namespaces/default")
            assert code == 200, body
        finally:
            cluster.stop()


def test_a_failure_other_than_a_taken_port_is_not_retried(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("etcd", "apiextensions-apiserver"):
        (bin_dir / name).write_text("#!/bin/sh\necho 'cannot start' >&2\nexit 3\n")
        (bin_dir / name).chmod(0o755)
    with pytest.raises(ClusterError, match="etcd exited with 3"):
        start_cluster(tmp_path / "k8s", bin_dir=bin_dir, webhooks=False)
    assert not (tmp_path / "k8s" / "attempt-2").exists()
