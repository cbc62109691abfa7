"""The harness's HTTP side: an allow-all auth stub and the core-path shim (one aiohttp process).

Run as a script::

    python proxy.py --stub-port P1 --shim-port P2 --upstream https://127.0.0.1:P3 \
        --crd-dir DIR --audit-log FILE

* auth stub (``--stub-port``): TokenReview and SubjectAccessReview that allow everything, plus
  empty lists / bookmark-only watches for any other GET (the API server's own informers).
* shim (``--shim-port``): what clients talk to. Maps ``/api/v1/...`` to the stand-in group
  ``/apis/core.kube.test/v1/...`` and back (``apiVersion`` rewritten in bodies, lists, watch
  streams and managedFields), synthesizes ``/api``, ``/api/v1``, ``/apis`` discovery and
  ``/version``, fills missing ``apiVersion``/``kind`` on writes, downgrades strategic merge
  patch to JSON merge patch, forwards ``Warning``/``Retry-After``, and logs every call as
  ``{"verb", "group", "resource", "subresource", "namespace", "name"}`` for RBAC coverage
  checks (``name``: the path's, or a ``fieldSelector=metadata.name=`` one; empty for a list).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

CORE_GROUP = "core.kube.test"
CORE_APIVERSION = f"{CORE_GROUP}/v1"
TOKEN = "vipcast-harness"
_FORWARD_RESPONSE_HEADERS = ("Content-Type", "Warning", "Retry-After", "Audit-Id")
_CORE_PATH = re.compile(r"^/api/v1(/.*)?$")
_NAMESPACE_PATH = re.compile(r"^/api/v1/namespaces(/[^/]+)?(/status|/finalize)?$")
_RESOURCE_PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<resource>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>[^/]+))?$"
)

# ---------------------------------------------------------------- auth stub


#: tokens ``sa:<namespace>:<name>[:<node>]`` authenticate as that ServiceAccount, with the
#: node a bound pod token names (``authentication.kubernetes.io/node-name``, Kubernetes >=
#: 1.32): the shim forwards them, so admission sees a real ServiceAccount identity
SA_TOKEN_PREFIX = "sa:"
NODE_NAME_EXTRA = "authentication.kubernetes.io/node-name"


def token_user(token: str) -> dict[str, Any]:
    """The user a token names (``userInfo`` of the TokenReview): ``sa:`` tokens as above,
    anything else the harness administrator."""
    if token.startswith(SA_TOKEN_PREFIX):
        ns, name, *node = token[len(SA_TOKEN_PREFIX):].split(":")
        user: dict[str, Any] = {
            "username": f"system:serviceaccount:{ns}:{name}",
            "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}",
                       "system:authenticated"]}
        if node:
            user["extra"] = {NODE_NAME_EXTRA: [node[0]]}
        return user
    return {"username": "vipcast-test", "groups": ["system:masters", "system:authenticated"]}


async def _token_review(request: web.Request) -> web.Response:
    try:
        token = str(((await request.json()).get("spec") or {}).get("token") or "")
    except ValueError:
        token = ""
    return web.json_response({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "status": {"authenticated": True, "user": token_user(token)},
    })


async def _access_review(request: web.Request) -> web.Response:
    return web.json_response({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "status": {"allowed": True, "reason": "vipcast test harness allows all"},
    })


_STUB_KINDS = {
    "services": ("v1", "Service"),
    "namespaces": ("v1", "Namespace"),
    "validatingwebhookconfigurations": ("admissionregistration.k8s.io/v1",
                                        "ValidatingWebhookConfiguration"),
    "mutatingwebhookconfigurations": ("admissionregistration.k8s.io/v1",
                                      "MutatingWebhookConfiguration"),
}


async def _stub_any(request: web.Request) -> web.StreamResponse:
    resource = request.path.rstrip("/").rsplit("/", 1)[-1]
    api_version, kind = _STUB_KINDS.get(resource, ("v1", "Status"))
    if request.query.get("watch") in ("1", "true"):
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        bookmark = {
            "type": "BOOKMARK",
            "object": {
                "kind": kind,
                "apiVersion": api_version,
                "metadata": {
                    "resourceVersion": "1",
                    "annotations": {"k8s.io/initial-events-end": "true"},
                },
            },
        }
        await resp.write(json.dumps(bookmark).encode() + b"\n")
        timeout = min(int(request.query.get("timeoutSeconds", "300")), 300)
        await asyncio.sleep(timeout)
        return resp
    return web.json_response({
        "kind": f"{kind}List", "apiVersion": api_version,
        "metadata": {"resourceVersion": "1"}, "items": [],
    })


def stub_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/apis/authentication.k8s.io/v1/tokenreviews", _token_review)
    app.router.add_post("/apis/authorization.k8s.io/v1/subjectaccessreviews", _access_review)
    app.router.add_route("*", "/{tail:.*}", _stub_any)
    return app


# ---------------------------------------------------------------- shim


def to_client(obj: Any) -> Any:
    """Rewrite the stand-in core apiVersion back to ``v1`` everywhere in a response body."""
    if isinstance(obj, dict):
        out = {k: to_client(v) for k, v in obj.items()}
        if out.get("apiVersion") == CORE_APIVERSION:
            out["apiVersion"] = "v1"
        return out
    if isinstance(obj, list):
        return [to_client(v) for v in obj]
    return obj


class Shim:
    def __init__(self, upstream: str, crd_dir: Path, audit_log: Path | None) -> None:
        self.upstream = upstream.rstrip("/")
        self.core_kinds: dict[str, tuple[str, bool, bool, list[str]]] = {}  # plural -> info
        for crd_file in sorted(crd_dir.glob("*.json")):
            crd = json.loads(crd_file.read_text())
            spec = crd["spec"]
            if spec["group"] != CORE_GROUP:
                continue
            ver = spec["versions"][0]
            self.core_kinds[spec["names"]["plural"]] = (
                spec["names"]["kind"],
                spec["scope"] == "Namespaced",
                "status" in ver.get("subresources", {}),
                spec["names"].get("shortNames", []),
            )
        self.audit = audit_log.open("a", buffering=1) if audit_log else None
        self.session: aiohttp.ClientSession | None = None

    async def start(self, app: web.Application) -> None:
        self.session = aiohttp.ClientSession(
            # no pool limit: every watch holds an upstream connection while it lasts
            connector=aiohttp.TCPConnector(ssl=False, limit=0),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            auto_decompress=True,
        )

    async def stop(self, app: web.Application) -> None:
        if self.session:
            await self.session.close()
        if self.audit:
            self.audit.close()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.on_startup.append(self.start)
        app.on_cleanup.append(self.stop)
        app.router.add_get("/version", self.version)
        app.router.add_get("/api", self.api_versions)
        app.router.add_get("/api/v1", self.core_resources)
        app.router.add_get("/apis", self.api_groups)
        app.router.add_route("*", "/{tail:.*}", self.forward)
        return app

    # discovery -----------------------------------------------------------------
    async def version(self, request: web.Request) -> web.Response:
        return web.json_response({
            "major": "1", "minor": "36", "gitVersion": "v1.36.4",
            "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.27", "compiler": "gc",
            "platform": "linux/amd64",
        })

    async def api_versions(self, request: web.Request) -> web.Response:
        return web.json_response({
            "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": request.host}],
        })

    async def core_resources(self, request: web.Request) -> web.Response:
        resources: list[dict[str, Any]] = []
        verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update",
                 "watch"]
        for plural, (kind, namespaced, status, short) in self.core_kinds.items():
            resources.append({"name": plural, "singularName": kind.lower(),
                              "namespaced": namespaced, "kind": kind, "verbs": verbs,
                              "shortNames": short})
            if status:
                resources.append({"name": f"{plural}/status", "singularName": "",
                                  "namespaced": namespaced, "kind": kind,
                                  "verbs": ["get", "patch", "update"]})
        return web.json_response({"kind": "APIResourceList", "apiVersion": "v1",
                                  "groupVersion": "v1", "resources": resources})

    async def api_groups(self, request: web.Request) -> web.Response:
        assert self.session is not None
        url = f"{self.upstream}/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        async with self.session.get(url, headers=self._headers(request)) as resp:
            crds = await resp.json() if resp.status == 200 else {"items": []}
        groups: dict[str, set[str]] = {"apiextensions.k8s.io": {"v1"}}
        for crd in crds.get("items", []):
            group = crd["spec"]["group"]
            if group == CORE_GROUP:
                continue
            groups.setdefault(group, set()).update(
                v["name"] for v in crd["spec"]["versions"] if v.get("served"))
        out = []
        for group, versions in sorted(groups.items()):
            gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in sorted(versions)]
            out.append({"name": group, "versions": gvs, "preferredVersion": gvs[0]})
        return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": out})

    # forwarding ----------------------------------------------------------------
    def _headers(self, request: web.Request) -> dict[str, str]:
        accept = request.headers.get("Accept", "application/json")
        if "json" not in accept:
            accept = "application/json"
        caller = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        token = caller if caller.startswith(SA_TOKEN_PREFIX) else TOKEN
        return {"Authorization": f"Bearer {token}", "Accept": accept,
                "User-Agent": request.headers.get("User-Agent", "vipcast-shim")}

    def _log(self, request: web.Request) -> None:
        if self.audit is None:
            return
        m = _RESOURCE_PATH.match(request.path)
        if not m:
            return
        resource, name, sub = m.group("resource"), m.group("name"), m.group("sub")
        method = request.method
        watch = request.query.get("watch") in ("1", "true")
        verb = {"GET": "watch" if watch else ("get" if name else "list"), "POST": "create",
                "PUT": "update", "PATCH": "patch",
                "DELETE": "delete" if name else "deletecollection"}.get(method, method.lower())
        auth = request.headers.get("Authorization", "")
        # the object: the path's name, or a list/watch narrowed to one by fieldSelector
        selected = [f.partition("=")[2] for f in request.query.get("fieldSelector", "").split(",")
                    if f.startswith("metadata.name=")]
        self.audit.write(json.dumps({
            "user": auth.removeprefix("Bearer ").strip(),
            "verb": verb, "group": m.group("group") or "", "resource": resource,
            "subresource": sub or "", "namespace": m.group("ns") or "",
            "name": name or (selected[0] if selected else ""),
        }) + "\n")

    def _request_body(self, request: web.Request, raw: bytes, core: bool) -> tuple[bytes, str]:
        ctype = request.headers.get("Content-Type", "application/json").split(";")[0].strip()
        if ctype == "application/strategic-merge-patch+json":
            ctype = "application/merge-patch+json"
        if not raw or ctype == "application/json-patch+json":
            return raw, ctype
        try:
            body = yaml.safe_load(raw) if ctype.endswith("yaml") else json.loads(raw)
        except (ValueError, yaml.YAMLError):
            return raw, ctype
        if isinstance(body, dict) and request.method in ("POST", "PUT", "PATCH"):
            m = _RESOURCE_PATH.match(request.path)
            if core and body.get("apiVersion") in (None, "v1"):
                if request.method != "PATCH" or ctype == "application/apply-patch+yaml":
                    body["apiVersion"] = CORE_APIVERSION
            elif (body.get("apiVersion") is None and m and m.group("group")
                  and request.method != "PATCH"):
                body["apiVersion"] = f"{m.group('group')}/{m.group('version')}"
            if body.get("kind") is None and request.method != "PATCH" and m:
                kind = self.core_kinds.get(m.group("resource"), (None,))[0]
                if kind:
                    body["kind"] = kind
        return json.dumps(body).encode(), ctype

    async def forward(self, request: web.Request) -> web.StreamResponse:
        assert self.session is not None
        path = request.path
        core = bool(_CORE_PATH.match(path))
        up_path = f"/apis/{CORE_APIVERSION}{path[len('/api/v1'):]}" if core else path
        if core and _NAMESPACE_PATH.match(path):  # the stand-in's plural (see builtin_crds)
            up_path = up_path.replace("/namespaces", "/xnamespaces", 1)
        self._log(request)
        raw = await request.read()
        body, ctype = self._request_body(request, raw, core)
        headers = self._headers(request)
        if raw:
            headers["Content-Type"] = ctype
        watch = request.query.get("watch") in ("1", "true")
        url = f"{self.upstream}{up_path}"
        async with self.session.request(request.method, url, params=request.query,
                                        data=body if raw else None, headers=headers) as up:
            out_headers = {h: up.headers[h] for h in _FORWARD_RESPONSE_HEADERS
                           if h in up.headers}
            if watch and up.status == 200:
                resp = web.StreamResponse(status=200, headers=out_headers)
                await resp.prepare(request)
                async for line in up.content:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    await resp.write(json.dumps(to_client(event)).encode() + b"\n")
                return resp
            data = await up.read()
            if data and "json" in up.headers.get("Content-Type", ""):
                with contextlib.suppress(ValueError):
                    data = json.dumps(to_client(json.loads(data))).encode()
            return web.Response(status=up.status, body=data, headers=out_headers)


async def _serve(args: argparse.Namespace) -> None:
    runners = []
    stub = web.AppRunner(stub_app())
    await stub.setup()
    await web.TCPSite(stub, "127.0.0.1", args.stub_port).start()
    runners.append(stub)
    shim = Shim(args.upstream, Path(args.crd_dir),
                Path(args.audit_log) if args.audit_log else None)
    # a client that goes away (a killed controller) cancels its handler, which closes the
    # upstream request: without it, idle watches would hold upstream connections for minutes
    runner = web.AppRunner(shim.app(), handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.shim_port).start()
    runners.append(runner)
    print("proxy ready", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        for r in runners:
            await r.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stub-port", type=int, required=True)
    parser.add_argument("--shim-port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--crd-dir", required=True)
    parser.add_argument("--audit-log")
    asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
