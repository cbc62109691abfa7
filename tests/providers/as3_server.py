"""A local stand-in for a BIG-IP's AS3 endpoint: validates EVERY declaration with F5's published
AS3 schema (3.56.0, Draft 7; F5's custom keywords ignored) and answers with AS3's task protocol.

Knobs for tests: ``busy`` (answer 503 to the next N declares), ``polls`` (task stays "in
progress" for N polls), ``password`` (401 otherwise). ``declarations`` keeps every request
body that was validated; ``writes`` every accepted POST/DELETE as (monotonic time, User-Agent).
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import jsonschema
from aiohttp import web

SCHEMA = Path("/work/shared/f5-as3/as3-schema-3.56.0-10.json")


def _schema_path() -> Path:
    local = Path(__file__).resolve().parents[2] / "tests" / "providers" / "data" / SCHEMA.name
    return local if local.exists() else SCHEMA


class AS3Service:
    def __init__(self, password: str = "secret") -> None:
        schema = json.loads(_schema_path().read_text())
        self.validator = jsonschema.Draft7Validator(schema)
        self.password = password
        self.tenants: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, dict[str, Any]] = {}
        self.declarations: list[dict[str, Any]] = []
        self.invalid: list[str] = []
        #: (time.monotonic(), User-Agent) of every POST/DELETE past authentication
        self.writes: list[tuple[float, str]] = []
        self.busy = 0
        self.polls = 1
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application(middlewares=[self._auth])
        app.router.add_post("/mgmt/shared/appsvcs/declare", self._declare)
        app.router.add_get("/mgmt/shared/appsvcs/declare/{tenant}", self._get)
        app.router.add_delete("/mgmt/shared/appsvcs/declare/{tenant}", self._delete)
        app.router.add_get("/mgmt/shared/appsvcs/task/{id}", self._task)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        import base64

        ok = auth.startswith("Basic ") and base64.b64decode(auth[6:]).decode() == \
            f"admin:{self.password}"
        if not ok:
            return web.json_response({"code": 401, "message": "Authorization failed"},
                                     status=401)
        if request.method in ("POST", "DELETE"):
            self.writes.append((time.monotonic(), request.headers.get("User-Agent", "")))
        response: web.StreamResponse = await handler(request)
        return response

    def _task_of(self, results: list[dict[str, Any]], declaration: Any = None) -> web.Response:
        task = str(uuid.uuid4())
        self.tasks[task] = {"left": self.polls, "results": results, "declaration": declaration}
        return web.json_response({"id": task, "results": [{"message": "Declaration successfully "
                                                           "submitted", "code": 0}]}, status=202)

    async def _declare(self, request: web.Request) -> web.Response:
        if self.busy:
            self.busy -= 1
            return web.json_response({"code": 503, "message": "Configuration operation in "
                                      "progress on device, please try again in 2 minutes"},
                                     status=503)
        body = await request.json()
        errors = sorted(self.validator.iter_errors(body), key=lambda e: list(e.path))
        if errors:
            text = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5]]
            self.invalid.extend(text)
            return web.json_response({"code": 422, "message": "declaration is invalid",
                                      "errors": text}, status=422)
        self.declarations.append(body)
        adc = body["declaration"]
        results = []
        for name, tenant in adc.items():
            if not (isinstance(tenant, dict) and tenant.get("class") == "Tenant"):
                continue
            problem = _references(tenant)
            if problem:
                return web.json_response({"code": 422, "message": "declaration failed",
                                          "errors": [problem]}, status=422)
            changed = self.tenants.get(name) != tenant
            self.tenants[name] = tenant
            results.append({"code": 200, "message": "success" if changed else "no change",
                            "tenant": name})
        return self._task_of(results)

    async def _get(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        if tenant not in self.tenants:
            return web.Response(status=204)
        return web.json_response({"class": "ADC", "schemaVersion": "3.56.0",
                                  tenant: self.tenants[tenant]})

    async def _delete(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        existed = self.tenants.pop(tenant, None) is not None
        return self._task_of([{"code": 200, "message": "success" if existed else "no change",
                               "tenant": tenant}])

    async def _task(self, request: web.Request) -> web.Response:
        task = self.tasks.get(request.match_info["id"])
        if task is None:
            return web.json_response({"code": 404, "message": "task not found"}, status=404)
        if task["left"] > 0:
            task["left"] -= 1
            return web.json_response({"id": request.match_info["id"],
                                      "results": [{"message": "in progress", "code": 0}]})
        return web.json_response({"id": request.match_info["id"], "results": task["results"]})


def _references(tenant: dict[str, Any]) -> str | None:
    """What the schema cannot say: a Service's pool and a Pool's monitors exist in the app."""
    for app_name, app in tenant.items():
        if not isinstance(app, dict) or app.get("class") != "Application":
            continue
        for name, obj in app.items():
            if not isinstance(obj, dict):
                continue
            pool = obj.get("pool")
            if isinstance(pool, str) and app.get(pool, {}).get("class") != "Pool":
                return f"/{app_name}/{name}/pool: {pool} is not a Pool of the application"
            for mon in obj.get("monitors", []) if obj.get("class") == "Pool" else []:
                use = mon.get("use") if isinstance(mon, dict) else None
                if use and app.get(use, {}).get("class") != "Monitor":
                    return f"/{app_name}/{name}/monitors: {use} is not a Monitor"
    return None
