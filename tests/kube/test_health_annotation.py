"""The ``vipcast.io/health-check`` annotation is tenant input (issue 16).

Before: ``interval=0.0001`` was accepted (every speaker probing at kHz), the HTTP path took
CR/LF (headers and extra requests injected into probes sent from the host network), and a bad
value was only logged by every speaker on every reload. Now: bounded values, RFC 3986 path
characters only (checked again where the request is written), a per-node probe-rate cap, and
a bad value is a condition on that Service.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest

from vipcast.app.controller import Controller, ControllerConfig
from vipcast.runtime.health import HealthChecker, rate_scale
from vipcast.runtime.probe import http_get
from vipcast.sources.kube.conditions import HEALTH_CHECK, health_check_condition
from vipcast.sources.kube.leader import ElectionConfig
from vipcast.spec.health import HealthCheckConfig, parse_health_check

from .conftest import run
from .harness.cluster import Cluster
from .kubetools import IPAddressPool, Service, client, eventually, lb_service, pool

HOSTILE = [
    "tcp, interval=0.0001",
    "tcp, interval=0",
    "tcp, interval=nan",
    "tcp, interval=1, timeout=2",
    "tcp, timeout=0.001",
    "tcp, rise=1000",
    "http:/x\r\nX-Injected: 1",
    "http:/x\nGET /admin HTTP/1.0",
    "http:/a b",
    "http:/%zz",
    "http:/caf\u00e9",
    "http:/" + "a" * 300,
    "http:relative",
    "tcp" + ", rise=2" * 200,
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_values_are_refused_with_a_message(text: str) -> None:
    parsed = parse_health_check(text)
    assert isinstance(parsed, str) and parsed, text
    cond = health_check_condition(text)
    assert (cond["type"], cond["status"], cond["reason"]) == (HEALTH_CHECK, "False",
                                                              "InvalidAnnotation")
    assert "\r" not in cond["message"] and "\n" not in cond["message"]


def test_reasonable_values_are_accepted() -> None:
    assert parse_health_check("http:/healthz?full=1&x=%2F, interval=0.5, timeout=0.25") == (
        HealthCheckConfig(kind="http", path="/healthz?full=1&x=%2F", interval=0.5,
                          timeout=0.25))
    # a short interval takes the default timeout down to it
    assert parse_health_check("tcp, interval=0.3") == HealthCheckConfig(interval=0.3,
                                                                        timeout=0.3)
    assert health_check_condition("tcp")["status"] == "True"


def test_probe_never_writes_an_injected_path() -> None:
    """The last line of defence: http_get itself refuses a path with CR/LF (no connection)."""

    async def go() -> tuple[bool, str, bytes]:
        received = bytearray()
        connected = asyncio.Event()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connected.set()
            with contextlib.suppress(TimeoutError):
                received.extend(await asyncio.wait_for(reader.read(4096), 1))
            writer.write(b"HTTP/1.0 200 OK\r\n\r\n")
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            bad = await http_get("127.0.0.1", port, "/x\r\nX-Injected: 1\r\n", timeout=2)
            await asyncio.sleep(0.2)
            assert not connected.is_set()
            good = await http_get("127.0.0.1", port, "/ok", timeout=2)
        assert good.ok, good
        return bad.ok, bad.error, bytes(received)

    ok, error, received = asyncio.run(go())
    assert not ok and "refused" in error
    assert b"X-Injected" not in received


def test_rate_scale() -> None:
    assert rate_scale([1.0] * 50, 100) == 1.0
    assert rate_scale([0.25] * 1000, 100) == 40.0
    assert rate_scale([], 100) == 1.0


def test_checker_caps_the_nodes_probe_rate() -> None:
    """300 backends probed every 0.25 s would be 1,200 probes/s from one node: the checker
    stretches every interval to stay within its cap."""

    async def go() -> float:
        with socket.socket() as s:  # a closed loopback port: probes are refused at once
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        checker = HealthChecker(HealthCheckConfig(interval=0.25, timeout=0.2), max_rate=100)
        try:
            checker.track({(f"127.0.0.{1 + i // 250}", port + i % 250): ("ns/a",)
                           for i in range(300)})
            return checker.scale
        finally:
            await checker.close()

    assert asyncio.run(go()) == pytest.approx(12.0)


@pytest.mark.slow
def test_bad_annotation_is_a_condition_on_that_service(vipcast_crds: Cluster,
                                                       namespace: str) -> None:
    async def go() -> None:
        c = client(vipcast_crds.kubeconfig, namespace)
        await c.create(pool(f"p-{namespace}", ["198.51.100.52/30"], namespace))
        bad = "http:/x\r\nHost: evil, interval=0.0001"
        await c.create(lb_service("bad", namespace,
                                  annotations={"vipcast.io/health-check": bad}))
        await c.create(lb_service("good", namespace,
                                  annotations={"vipcast.io/health-check": "http:/h"}))
        ctl = Controller(c, ControllerConfig(
            identity="hc", election=ElectionConfig(name=f"hc-{namespace}", namespace=namespace,
                                                   lease_duration=2, renew_deadline=1.5,
                                                   retry_period=0.2),
            resync=2, debounce=0.02))
        task = asyncio.create_task(ctl.run())

        async def cond(name: str) -> dict[str, str] | None:
            svc = (await c.get(Service, name, namespace=namespace)).to_dict()
            conds = (svc.get("status") or {}).get("conditions") or ()
            found = next((x for x in conds if x["type"] == HEALTH_CHECK), None)
            ips = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress")
            return found if found and ips else None

        try:
            got = await eventually(lambda: cond("bad"), 30, what="HealthCheck on bad")
            assert (got["status"], got["reason"]) == ("False", "InvalidAnnotation")
            got = await eventually(lambda: cond("good"), 30, what="HealthCheck on good")
            assert got["status"] == "True"
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await c.delete(IPAddressPool, f"p-{namespace}")
            await c.close()

    run(go(), 60)
