"""The AS3 driver: whole-tenant declarations posted with AS3's asynchronous task protocol.

``POST /mgmt/shared/appsvcs/declare?async=true`` answers 202 with a task id; the driver polls
``GET /mgmt/shared/appsvcs/task/<id>`` until the result is no longer "in progress". 422 (the
declaration was refused), 503 (another configuration operation is running: busy), 401 (wrong
credential) and unreachable management ports come back as :class:`Retry` values.
NO real BIG-IP was tested: the tests run against a local service that validates every
declaration with F5's published AS3 schema 3.56.0 and answers as AS3 documents.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from vipcast.core.external import Capabilities, DesiredLB
from vipcast.providers.as3.declaration import application, applications, declaration, load_balancer
from vipcast.providers.port import Applied, Failure, Outcome, Retry

#: one source range per listener: AS3's ``virtualAddresses: [[VIP, accept-from-CIDR]]``
CAPABILITIES = Capabilities("as3", frozenset({"TCP", "UDP"}), proxy_protocol=False,
                            forwarded_for=False, source_ranges=True, source_range_limit=1)
DECLARE = "/mgmt/shared/appsvcs/declare"
TASK = "/mgmt/shared/appsvcs/task"


class AS3Driver:
    def __init__(self, endpoint: str, tenant: str, *, username: str = "admin",
                 password: str = "", poll_interval: float = 0.1, task_timeout: float = 120.0,
                 session: aiohttp.ClientSession | None = None,
                 user_agent: str = "vipcast") -> None:
        """``user_agent`` names the writer in the BIG-IP's logs (the controller puts its
        leader-election identity there)."""
        self.endpoint = endpoint.rstrip("/")
        self.tenant = tenant
        self.authorization = aiohttp.encode_basic_auth(username, password)
        self.user_agent = user_agent
        self.poll_interval = poll_interval
        self.task_timeout = task_timeout
        self._session = session
        #: HTTP requests made (for the bench: calls per change)
        self.calls = 0

    @property
    def capabilities(self) -> Capabilities:
        return CAPABILITIES

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"Authorization": self.authorization, "User-Agent": self.user_agent},
                timeout=aiohttp.ClientTimeout(total=30))
        return self._session

    async def _request(self, method: str, path: str, body: Any = None
                       ) -> tuple[int, Any] | Retry:
        self.calls += 1
        try:
            async with self._http().request(method, self.endpoint + path, json=body) as resp:
                status = resp.status
                text = await resp.text(errors="replace") if status != 204 else ""
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return Retry(Failure.UNREACHABLE, f"{self.endpoint}: {exc or type(exc).__name__}",
                         10.0)
        try:
            data = json.loads(text) if text.strip() else None
        except ValueError:
            data = _NOT_JSON
        if status != 401 and (data is _NOT_JSON or not isinstance(data, dict | None)):
            # an HTML error page, a proxy, another product: not AS3 talking
            return Retry(Failure.REFUSED, f"{method} {self.endpoint}{path.split('?')[0]} "
                         f"answered {status} with {_sample(text)}, not AS3's JSON: is this "
                         "the BIG-IP's management address, with AS3 installed?", 300.0)
        if status == 401:
            return Retry(Failure.BAD_CREDENTIAL, f"{self.endpoint} refused the credential "
                         "(401): nothing was changed", 300.0)
        if status == 503:
            return Retry(Failure.BUSY, _message(data, "AS3 is busy (503)"), 30.0)
        return status, data

    async def _tenant_apps(self) -> dict[str, dict[str, Any]] | Retry:
        got = await self._request("GET", f"{DECLARE}/{self.tenant}")
        if isinstance(got, Retry):
            return got
        status, data = got
        if status in (204, 404):  # no such tenant (yet)
            return {}
        if status != 200:  # not knowing what is there, nothing may be assumed gone
            return Retry(Failure.REFUSED, f"GET {self.endpoint}{DECLARE}/{self.tenant} "
                         f"answered {status}: {_message(data, 'no body')}", 30.0)
        return applications(data.get(self.tenant, {})) if data else {}

    async def _deploy(self, apps: dict[str, dict[str, Any]]) -> Retry | None:
        if apps:
            body = declaration(self.tenant, apps, f"vipcast-{self.tenant}")
            got = await self._request("POST", f"{DECLARE}?async=true", body)
        else:
            got = await self._request("DELETE", f"{DECLARE}/{self.tenant}?async=true")
        if isinstance(got, Retry):
            return got
        status, data = got
        if status == 422:
            return Retry(Failure.REFUSED, _message(data, "declaration refused (422)"), 300.0)
        if status not in (200, 202):
            return Retry(Failure.REFUSED, _message(data, f"declare answered {status}"), 30.0)
        task = (data or {}).get("id")
        if status == 200 or not task:
            return _result(data)
        loop = asyncio.get_running_loop()
        end = loop.time() + self.task_timeout
        while loop.time() < end:
            await asyncio.sleep(self.poll_interval)
            polled = await self._request("GET", f"{TASK}/{task}")
            if isinstance(polled, Retry):
                return polled
            _, body = polled
            results = (body or {}).get("results") or [{}]
            if results[0].get("message") != "in progress":
                return _result(body)
        return Retry(Failure.NOT_READY, f"AS3 task {task} still in progress after "
                     f"{self.task_timeout:.0f} s", 30.0)

    # ------------------------------------------------------------ the port

    async def get(self, name: str) -> DesiredLB | Retry | None:
        apps = await self._tenant_apps()
        if isinstance(apps, Retry):
            return apps
        app = apps.get(name)
        return None if app is None else load_balancer(name, app)

    async def ensure(self, desired: DesiredLB) -> Outcome:
        apps = await self._tenant_apps()
        if isinstance(apps, Retry):
            return apps
        wanted = application(desired)
        if apps.get(desired.name) == wanted:
            return Applied(desired.name, desired.vip, 0)
        apps[desired.name] = wanted
        problem = await self._deploy(apps)
        return problem or Applied(desired.name, desired.vip, 1)

    async def update_members(self, desired: DesiredLB) -> Outcome:
        return await self.ensure(desired)  # AS3 declares whole tenants: same request

    async def delete(self, name: str) -> Outcome:
        apps = await self._tenant_apps()
        if isinstance(apps, Retry):
            return apps
        if name not in apps:
            return Applied(name, None, 0)
        del apps[name]
        problem = await self._deploy(apps)
        return problem or Applied(name, None, 1)

    async def names(self) -> tuple[str, ...] | Retry:
        apps = await self._tenant_apps()
        return apps if isinstance(apps, Retry) else tuple(sorted(apps))


_NOT_JSON = object()


def _sample(text: str) -> str:
    line = " ".join(text.split())[:80]
    return f"{line!r}" if line else "an empty body"


def _message(data: Any, default: str) -> str:
    if isinstance(data, dict):
        results = data.get("results") or []
        parts = [str(data.get("message", ""))] + [
            f"{r.get('message', '')} {r.get('response', '')}".strip() for r in results]
        text = "; ".join(p for p in parts if p)
        errors = data.get("errors")
        if errors:
            text += f" {errors}"
        return text or default
    return default


def _result(data: Any) -> Retry | None:
    results = (data or {}).get("results") or [{}]
    first = results[0]
    code = first.get("code", 200)
    if code in (200, 0) and first.get("message") in ("success", "no change", None):
        return None
    if code == 503:
        return Retry(Failure.BUSY, _message(data, "AS3 busy"), 30.0)
    return Retry(Failure.REFUSED, _message(data, f"AS3 task failed ({code})"), 300.0)
