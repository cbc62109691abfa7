"""AS3 driver specifics against the schema-validating stand-in: every declaration valid, the
task protocol polled, 422 / 503 busy / 401 answered as Retry values with nothing changed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from as3_server import AS3Service
from harness_as3 import AS3Harness

from vipcast.core.external import Member
from vipcast.providers.as3.driver import AS3Driver
from vipcast.providers.port import Applied, Failure, Retry

MEMBERS = [Member("10.0.0.1", 30080, "n1"), Member("10.0.0.2", 30080, "n2")]


def with_service(body: Callable[[AS3Service, AS3Harness], Awaitable[None]]) -> None:
    async def main() -> None:
        service = AS3Service()
        await service.start()
        harness = AS3Harness(service)
        try:
            await body(service, harness)
        finally:
            await harness.driver.close()
            await service.stop()
    asyncio.run(main())


def test_declarations_validate_and_the_task_is_polled() -> None:
    async def body(service: AS3Service, h: AS3Harness) -> None:
        service.polls = 3
        lb = h.desired("kube_service_kubernetes_default_web", MEMBERS, ports=(80, 443))
        outcome = await h.driver.ensure(lb)
        assert isinstance(outcome, Applied) and outcome.changes == 1
        assert len(service.declarations) == 1 and not service.invalid
        app = service.tenants["vipcast_lab"]["kube_service_kubernetes_default_web"]
        assert app["vs-tcp-80"] == {
            "class": "Service_TCP", "virtualAddresses": [["198.51.100.10", "192.0.2.0/24"]],
            "virtualPort": 80, "pool": "pool-tcp-80"}  # accept only from the source range
        assert [m["serverAddresses"] for m in app["pool-tcp-443"]["members"]] == [
            ["10.0.0.1"], ["10.0.0.2"]]
        # 1 GET tenant + 1 POST + 4 polls (3 in progress, then the result)
        assert h.driver.calls == 6
    with_service(body)


def test_an_invalid_declaration_is_refused_with_422_and_nothing_changes() -> None:
    async def body(service: AS3Service, h: AS3Harness) -> None:
        bad = AS3Driver(service.url, "0-not-a-tenant-name", password="secret")
        try:
            outcome = await bad.ensure(h.desired("web", MEMBERS))
        finally:
            await bad.close()
        assert isinstance(outcome, Retry) and outcome.failure == Failure.REFUSED
        assert "declaration is invalid" in outcome.message
        assert service.invalid and service.tenants == {}
    with_service(body)


def test_busy_is_retried_later_then_lands() -> None:
    async def body(service: AS3Service, h: AS3Harness) -> None:
        service.busy = 1
        lb = h.desired("web", MEMBERS)
        first = await h.driver.ensure(lb)
        assert isinstance(first, Retry) and first.failure == Failure.BUSY
        assert first.retry_after > 0 and "in progress on device" in first.message
        second = await h.driver.ensure(lb)
        assert isinstance(second, Applied) and second.changes == 1
        assert await h.driver.get("web") == lb
    with_service(body)


def test_a_wrong_credential_is_named_and_changes_nothing() -> None:
    async def body(service: AS3Service, h: AS3Harness) -> None:
        wrong = AS3Driver(service.url, "vipcast_lab", password="guess")
        try:
            outcome = await wrong.ensure(h.desired("web", MEMBERS))
        finally:
            await wrong.close()
        assert isinstance(outcome, Retry) and outcome.failure == Failure.BAD_CREDENTIAL
        assert "refused the credential" in outcome.message
        assert service.tenants == {} and service.declarations == []
    with_service(body)


def test_unreachable_is_a_value() -> None:
    async def main() -> None:
        driver = AS3Driver("http://127.0.0.1:9", "t", password="x")
        try:
            outcome = await driver.ensure(AS3Harness.desired(None, "web", MEMBERS))  # type: ignore[arg-type]
        finally:
            await driver.close()
        assert isinstance(outcome, Retry) and outcome.failure == Failure.UNREACHABLE
    asyncio.run(main())


def test_an_endpoint_that_is_not_as3_is_named_not_a_traceback() -> None:
    """The management URL points at something else (a web server's HTML page, a JSON API of
    another product, a proxy's empty 502): a REFUSED value naming the URL and what came back,
    never an exception out of the driver; and a tenant that could not be read is never taken
    for an empty one (delete does not report success)."""
    from aiohttp import web

    async def main() -> None:
        answers = {"/html": (200, "text/html", "<html><body>It works!</body></html>"),
                   "/list": (200, "application/json", "[1, 2, 3]"),
                   "/empty": (502, "text/plain", "")}

        async def handle(request: web.Request) -> web.Response:
            prefix = "/" + request.path.split("/")[1]
            status, ctype, body = answers[prefix]
            return web.Response(status=status, text=body, content_type=ctype)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            for prefix, shown in (("/html", "It works! not AS3's JSON"),
                                  ("/list", "[1, 2, 3]"), ("/empty", "answered 502: no body")):
                driver = AS3Driver(f"http://127.0.0.1:{port}{prefix}", "t", password="x")
                try:
                    desired = AS3Harness.desired(None, "web", MEMBERS)  # type: ignore[arg-type]
                    for outcome in (await driver.ensure(desired), await driver.names(),
                                    await driver.delete("web")):
                        assert isinstance(outcome, Retry), outcome
                        assert outcome.failure == Failure.REFUSED
                        assert f"127.0.0.1:{port}{prefix}/mgmt/shared/appsvcs/declare" \
                            in outcome.message
                        assert all(w in outcome.message for w in shown.split()), outcome
                finally:
                    await driver.close()
        finally:
            await runner.cleanup()
    asyncio.run(main())
