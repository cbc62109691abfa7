"""The controller when things go wrong, against a real API server: leadership lost cleanly
when the API server stops answering, a conflicting status manager overridden, and Namespace
label changes re-evaluating pool choice for new Services without moving existing ones."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from urllib.parse import urlparse

import pytest
from lightkube.models.core_v1 import LoadBalancerIngress, LoadBalancerStatus, ServiceStatus
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace, Service

from vipcast.app.controller import Controller

from .conftest import run
from .harness.cluster import Cluster, _kubeconfig
from .kubetools import (
    IPAddressPool,
    client,
    event_reasons,
    eventually,
    ingress_ips,
    lb_service,
)
from .test_controller import _config, running

pytestmark = pytest.mark.slow


class Cut:
    """A loopback TCP relay to the API server that can be cut: while cut, it accepts
    connections and never answers, and the open ones hang (an unreachable API server)."""

    def __init__(self, target: str) -> None:
        url = urlparse(target)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.scheme = url.scheme
        self.cut = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"{self.scheme}://127.0.0.1:{port}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)  # type: ignore[arg-type]
        try:
            if self.cut.is_set():
                await asyncio.sleep(3600)
            up_r, up_w = await asyncio.open_connection(self.host, self.port)
            try:
                await asyncio.gather(self._pipe(reader, up_w), self._pipe(up_r, writer))
            finally:
                up_w.close()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self.tasks.discard(task)  # type: ignore[arg-type]

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        while data := await src.read(65536):
            if self.cut.is_set():
                await asyncio.sleep(3600)  # hang: nothing goes through any more
            dst.write(data)
            await dst.drain()
        dst.write_eof()


def test_leadership_is_lost_cleanly_when_the_api_server_stops_answering(
    vipcast_crds: Cluster, namespace: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def go() -> None:
        admin = client(vipcast_crds.kubeconfig, namespace)
        relay = Cut(vipcast_crds.url)
        await relay.start()
        cut_client = client(_kubeconfig(tmp_path / "cut.kubeconfig", relay.url), namespace)
        await admin.create(IPAddressPool.from_dict({
            "apiVersion": "vipcast.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": f"p-{namespace}"},
            "spec": {"addresses": ["198.18.7.0/29"],
                     "serviceAllocation": {"namespaces": [namespace]}}}))
        await admin.create(lb_service("s1", namespace))
        lease = f"lease-{namespace}"
        a = Controller(cut_client, _config("cut-a", lease))  # renew deadline 8 s
        b = Controller(admin, _config("direct-b", lease))
        loop = asyncio.get_running_loop()
        # every status write a issues: (when, leading then). Counting a round's writes is not
        # enough: a round that began while a led (writing Services of the whole shared
        # cluster) can end long after the cut, its report still saying leader and written > 0
        issued: list[tuple[float, bool]] = []
        write = a._write

        async def recorded(svc: dict[str, object], ips: tuple[str, ...],
                           conditions: list[dict[str, object]]) -> bool:
            issued.append((loop.time(), a.elector.is_leader))
            return await write(svc, ips, conditions)

        a._write = recorded  # type: ignore[method-assign]
        try:
            async with running(a):
                await eventually(lambda: ingress_ips(admin, "s1", namespace), 30, what="s1")
                async with running(b):
                    await eventually(lambda: asyncio.sleep(0, b.synced), 20, what="b synced")
                    assert a.elector.is_leader and not b.elector.is_leader
                    relay.cut.set()
                    t0 = loop.time()
                    with caplog.at_level(logging.WARNING, logger="vipcast.sources.kube.leader"):
                        await eventually(lambda: asyncio.sleep(0, not a.elector.is_leader), 30,
                                         every=0.05, what="a stepping down")
                    down = loop.time()
                    print(f"leader stepped down {down - t0:.2f}s after the API server "
                          "went silent")
                    # by its own renew deadline (1.5 s): its bounded attempt gave up and it
                    # stepped down for not renewing, not because the client's 10 s timeout
                    # raised (behaviour, not a wall-clock bound)
                    said = [r.getMessage() for r in caplog.records
                            if r.getMessage().startswith("cut-a:")]
                    assert any("no answer within" in m for m in said), said
                    assert any("could not renew lease" in m and "stepping down" in m
                               for m in said), said
                    await eventually(lambda: asyncio.sleep(0, b.elector.is_leader), 15,
                                     what="b taking over")
                    await admin.create(lb_service("s2", namespace))
                    await eventually(lambda: ingress_ips(admin, "s2", namespace), 30,
                                     what="s2 served by b")
                    await asyncio.sleep(1.0)
                    assert not a.elector.is_leader
                    # the API server answers again: a stays a standby, b keeps leading
                    relay.cut.clear()
                    await asyncio.sleep(2.0)
                    assert b.elector.is_leader and not a.elector.is_leader
                    # a issued no status write once it had stepped down (neither while cut
                    # off nor once the API server answered again), and none as a non-leader
                    late = [round(t - down, 2) for t, leading in issued
                            if t >= down or not leading]
                    assert not late, f"writes by a after stepping down (s after): {late}"
        finally:
            relay.cut.clear()
            await relay.stop()
            await admin.delete(IPAddressPool, f"p-{namespace}")
            await cut_client.close()
            await admin.close()

    run(go(), 120)


def test_a_conflicting_status_manager_is_overridden(vipcast_crds: Cluster,
                                                    namespace: str) -> None:
    """Another manager writes the ingress (as a second load balancer would): vipcast's
    force-apply takes its fields back; the other manager no longer owns them."""

    async def go() -> None:
        c = client(vipcast_crds.kubeconfig, namespace)
        await c.create(IPAddressPool.from_dict({
            "apiVersion": "vipcast.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": f"p-{namespace}"},
            "spec": {"addresses": ["198.18.8.0/30"],
                     "serviceAllocation": {"namespaces": [namespace]}}}))
        await c.create(lb_service("s", namespace))
        ctl = Controller(c, _config("fight", f"lease-{namespace}"))
        async with running(ctl):
            (ip,) = await eventually(lambda: ingress_ips(c, "s", namespace), 30, what="IP")
            await c.apply(Service.Status(
                apiVersion="v1", kind="Service", metadata=ObjectMeta(name="s",
                                                                     namespace=namespace),
                status=ServiceStatus(loadBalancer=LoadBalancerStatus(
                    ingress=[LoadBalancerIngress(ip="192.0.2.99", ipMode="Proxy")]))),
                field_manager="intruder", force=True)

            async def restored() -> bool:
                svc = (await c.get(Service, "s", namespace=namespace)).to_dict()
                ing = svc["status"]["loadBalancer"].get("ingress") or []
                owners = {m["manager"] for m in svc["metadata"]["managedFields"]
                          if "f:loadBalancer" in str(m.get("fieldsV1"))}
                return ing == [{"ip": ip, "ipMode": "VIP"}] and owners == {"vipcast-controller"}

            await eventually(restored, 30, what="vipcast's ingress back, owned by vipcast")
        await c.delete(IPAddressPool, f"p-{namespace}")
        await c.close()

    run(go(), 90)


def test_namespace_labels_reevaluate_pool_choice(vipcast_crds: Cluster, namespace: str) -> None:
    """A label added to a Namespace gives its waiting Service an address; removed, a new
    Service there is refused (the Namespace watch re-evaluates; no Service changed)."""
    run(_namespace_labels(namespace, vipcast_crds, check_kept=False), 120)


def test_namespace_label_removal_does_not_move_existing(vipcast_crds: Cluster,
                                                       namespace: str) -> None:
    run(_namespace_labels(namespace, vipcast_crds, check_kept=True), 120)


async def _namespace_labels(namespace: str, vipcast_crds: Cluster, check_kept: bool) -> None:
    if True:
        c = client(vipcast_crds.kubeconfig, namespace)
        label = f"team-{namespace}"
        await c.create(IPAddressPool.from_dict({
            "apiVersion": "vipcast.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": f"p-{namespace}"},
            "spec": {"addresses": ["198.18.9.0/29"],
                     "serviceAllocation": {"namespaceSelectors": [
                         {"matchLabels": {label: "yes"}}]}}}))
        await c.create(lb_service("early", namespace))
        ctl = Controller(c, _config("ns-ctl", f"lease-{namespace}"))

        async def set_label(value: str | None) -> None:
            ns = await c.get(Namespace, namespace)
            labels = dict(ns.metadata.labels or {})
            if value is None:
                labels.pop(label, None)
            else:
                labels[label] = value
            ns.metadata.labels = labels
            await c.replace(ns)

        async with running(ctl):
            async def refused() -> bool:
                return "NoEligiblePool" in await event_reasons(c, "early", namespace)

            await eventually(refused, 30, what="NoEligiblePool before the label")
            await set_label("yes")  # only the Namespace changes: the watch re-evaluates
            (ip,) = await eventually(lambda: ingress_ips(c, "early", namespace), 30,
                                     what="early's IP after the label")
            await set_label(None)
            await c.create(lb_service("late", namespace))

            async def late_refused() -> bool:
                return "NoEligiblePool" in await event_reasons(c, "late", namespace)

            await eventually(late_refused, 30, what="late refused without the label")
            await asyncio.sleep(1.0)
            assert not await ingress_ips(c, "late", namespace)
            kept = await ingress_ips(c, "early", namespace)
        await c.delete(IPAddressPool, f"p-{namespace}")
        await c.close()
        if check_kept:
            assert kept == (ip,)  # not moved, not released
