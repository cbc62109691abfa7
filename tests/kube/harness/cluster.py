"""A real generic Kubernetes API server for tests: etcd + apiextensions-apiserver + proxy.

:func:`start_cluster` starts, all on loopback ports and under one work dir:

1. etcd (``--unsafe-no-fsync``),
2. the proxy process (allow-all auth stub + core-path shim, see ``proxy.py``),
3. apiextensions-apiserver, phase 1 with webhooks off: CRD look-alikes of the built-in kinds
   are created, each storage warmed, namespaces created;
4. phase 2 (``webhooks=True``): the server is restarted with ``--kubeconfig`` pointing at the
   shim so the ValidatingAdmissionWebhook plugin's informers can read webhook configurations.

Clients use :attr:`Cluster.kubeconfig` (the shim, plain HTTP). :meth:`Cluster.stop` kills every
process it started by PID. Binaries come from ``scripts/build-k8s.sh``.
"""

from __future__ import annotations

import json
import os
import random
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .builtin_crds import BUILTIN_KINDS, builtin_crds
from .proxy import TOKEN

DEFAULT_BIN_DIR = Path(os.environ.get("VIPCAST_K8S_CACHE",
                                      Path.home() / ".cache" / "vipcast-k8s"))
NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease", "vipcast-system")


class ClusterError(RuntimeError):
    pass


def binaries_present(bin_dir: Path = DEFAULT_BIN_DIR) -> bool:
    return all(os.access(bin_dir / b, os.X_OK) for b in ("etcd", "apiextensions-apiserver"))


SKIP_KUBE_ENV = "VIPCAST_SKIP_KUBE"


def missing_tool(what: str, present: bool, how: str) -> None:
    """Skip or fail a test whose tool (API server, helm) is not installed.

    ``VIPCAST_SKIP_KUBE=1`` (a developer's machine without them) skips with that reason, which
    the run's summary then names. Otherwise a missing tool is a broken set-up: under CI the test
    fails; elsewhere it skips and says which script to run.
    """
    if os.environ.get(SKIP_KUBE_ENV) == "1":
        pytest.skip(f"{SKIP_KUBE_ENV}=1: {what} not run by request")
    if present:
        return
    message = f"{what}: {how}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI: set {SKIP_KUBE_ENV}=1 to skip deliberately)", pytrace=False)
    pytest.skip(message)


def _ephemeral_low() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_loopback_port() -> int:
    """A loopback port that is free now, chosen at random BELOW the kernel's ephemeral range.

    The servers here (etcd, apiextensions-apiserver, the proxy) take their port on the command
    line, so the port is chosen before they bind it. A port the kernel handed out by
    ``bind(0)`` comes from the ephemeral range, and the kernel hands it out again at once to any
    other process's ``bind(0)`` or outgoing ``connect()`` (the API server alone opens dozens to
    etcd; on a shared machine every test does the same): the server then failed with "address
    already in use". Below the range only another process choosing the same number explicitly
    can collide; :func:`start_cluster` starts again on fresh ports when that happens.
    """
    low = max(1025, min(_ephemeral_low(), 65536) - 12000)
    high = max(low + 1000, _ephemeral_low())
    for _ in range(200):
        port = random.randrange(low, high)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise ClusterError(f"no free loopback port in {low}-{high - 1}")


ADDRESS_IN_USE = "address already in use"


def _kubeconfig(path: Path, server: str, token: str | None = TOKEN) -> Path:
    user: dict[str, Any] = {"token": token} if token else {}
    cluster: dict[str, Any] = {"server": server}
    if server.startswith("https"):
        cluster["insecure-skip-tls-verify"] = True
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "harness",
        "clusters": [{"name": "harness", "cluster": cluster}],
        "users": [{"name": "harness", "user": user}],
        "contexts": [{"name": "harness", "context": {"cluster": "harness", "user": "harness",
                                                     "namespace": "default"}}],
    }))
    return path


@dataclass
class Cluster:
    workdir: Path
    bin_dir: Path
    webhooks: bool = True
    #: how long CRDs may take to be Established and their storage to answer (a restored etcd
    #: with many objects fills the watch cache first)
    ready_deadline_s: float = 60
    #: how the five loopback ports are chosen (a test hands in a taken one)
    pick_port: Callable[[], int] = free_loopback_port
    kubeconfig: Path = field(init=False)
    url: str = field(init=False)
    audit_log: Path = field(init=False)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, init=False)
    #: which start of :func:`start_cluster` this cluster is (1: ports were free at once)
    attempts: int = field(default=1, init=False)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        ports: list[int] = []
        while len(ports) < 5:  # in this order: etcd client, etcd peer, API server, stub, shim
            port = self.pick_port()
            if port not in ports:
                ports.append(port)
        self.etcd_port, self.peer_port, self.api_port, self.stub_port, self.shim_port = ports
        self.url = f"http://127.0.0.1:{self.shim_port}"
        self.kubeconfig = _kubeconfig(self.workdir / "kubeconfig", self.url)
        self.stub_kubeconfig = _kubeconfig(self.workdir / "stub.kubeconfig",
                                           f"http://127.0.0.1:{self.stub_port}")
        self.audit_log = self.workdir / "shim-audit.jsonl"
        self._ssl = ssl.create_default_context()
        self._ssl.check_hostname = False
        self._ssl.verify_mode = ssl.CERT_NONE

    def kubeconfig_for(self, user: str) -> Path:
        """A kubeconfig whose token names ``user`` (the shim's audit log records it)."""
        return _kubeconfig(self.workdir / f"kubeconfig-{user}", self.url, token=user)

    def audit(self) -> list[dict[str, str]]:
        """Every API call clients made through the shim so far."""
        if not self.audit_log.exists():
            return []
        return [json.loads(line) for line in self.audit_log.read_text().splitlines() if line]

    # --- processes ------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str]) -> None:
        log = (self.workdir / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, cwd=self.workdir)
        log.close()

    def _kill(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def stop(self) -> None:
        """Stop every process by PID: SIGTERM to all, then SIGKILL what is left after 3 s."""
        procs = [self.procs.pop(n) for n in ("apiserver", "proxy", "etcd") if n in self.procs]
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 3
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def logs(self) -> str:
        parts = []
        for name in ("etcd", "proxy", "apiserver"):
            path = self.workdir / f"{name}.log"
            if path.exists():
                parts.append(f"--- {name} ---\n" + path.read_text(errors="replace")[-4000:])
        return "\n".join(parts)

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise ClusterError(f"{name} exited with {proc.returncode}\n{self.logs()}")

    # --- HTTP -------------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None, direct: bool = False,
                timeout: float = 10) -> tuple[int, Any]:
        base = f"https://127.0.0.1:{self.api_port}" if direct else self.url
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(base + path, data=data, method=method, headers={
            "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json",
            "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout,
                                        context=self._ssl if direct else None) as resp:
                raw = resp.read()
                try:
                    return resp.status, json.loads(raw) if raw else None
                except ValueError:
                    return resp.status, raw.decode(errors="replace")
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                return exc.code, json.loads(raw)
            except ValueError:
                return exc.code, raw.decode(errors="replace")
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            return 0, str(exc)

    def _wait(self, what: str, check: Any, deadline_s: float) -> None:
        deadline = time.monotonic() + deadline_s
        while True:
            self._check_alive()
            if check():
                return
            if time.monotonic() > deadline:
                raise ClusterError(f"timed out waiting for {what}\n{self.logs()}")
            time.sleep(0.1)

    # --- start-up ---------------------------------------------------------------
    def _start_apiserver(self, phase2: bool) -> None:
        disabled = ["NamespaceLifecycle", "MutatingAdmissionWebhook",
                    "ValidatingAdmissionPolicy", "MutatingAdmissionPolicy"]
        if not phase2:
            disabled.append("ValidatingAdmissionWebhook")
        argv = [
            str(self.bin_dir / "apiextensions-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1", f"--secure-port={self.api_port}",
            f"--cert-dir={self.workdir / 'certs'}",
            f"--authentication-kubeconfig={self.stub_kubeconfig}",
            f"--authorization-kubeconfig={self.stub_kubeconfig}",
            "--authentication-skip-lookup",
            "--enable-priority-and-fairness=false",
            f"--disable-admission-plugins={','.join(disabled)}",
            f"--kubeconfig={self.kubeconfig if phase2 else self.stub_kubeconfig}",
            "--etcd-compaction-interval=0",
            "-v=1",
        ]
        self._spawn("apiserver", argv)
        self._wait("apiserver /readyz",
                   lambda: self.request("GET", "/readyz", direct=True, timeout=3)[0] == 200, 90)

    def start(self) -> Cluster:
        t0 = time.monotonic()
        crd_dir = self.workdir / "builtin-crds"
        crd_dir.mkdir(exist_ok=True)
        crds = builtin_crds()
        for crd in crds:
            (crd_dir / f"{crd['metadata']['name']}.json").write_text(json.dumps(crd))
        self._spawn("etcd", [
            str(self.bin_dir / "etcd"), "--name=harness",
            f"--data-dir={self.workdir / 'etcd-data'}",
            f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
            f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
            f"--listen-peer-urls=http://127.0.0.1:{self.peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{self.peer_port}",
            f"--initial-cluster=harness=http://127.0.0.1:{self.peer_port}",
            "--unsafe-no-fsync", "--log-level=warn", "--quota-backend-bytes=1073741824",
        ])
        self._spawn("proxy", [
            sys.executable, str(Path(__file__).with_name("proxy.py")),
            f"--stub-port={self.stub_port}", f"--shim-port={self.shim_port}",
            f"--upstream=https://127.0.0.1:{self.api_port}", f"--crd-dir={crd_dir}",
            f"--audit-log={self.audit_log}",
        ])
        self._wait("etcd", lambda: self._etcd_healthy(), 30)
        self._start_apiserver(phase2=False)
        self.t_ready = time.monotonic() - t0
        self.apply_crds(crds, self.ready_deadline_s)
        for ns in NAMESPACES:
            self.request("POST", "/api/v1/namespaces",
                         {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        self.t_crds = time.monotonic() - t0
        if self.webhooks:
            self._kill("apiserver")
            self._start_apiserver(phase2=True)
            self._warm(crds, self.ready_deadline_s)
        self.t_total = time.monotonic() - t0
        return self

    def _etcd_healthy(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.etcd_port}/health"
            with urllib.request.urlopen(url, timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def apply_crds(self, crds: list[dict[str, Any]], deadline_s: float = 60) -> None:
        """Create (or replace) CRDs, wait until Established and their storage answers.

        Each write may take ``deadline_s``: the server compiles and cost-checks every CEL rule of
        a CRD in the request (Gateway API's httproutes: 2.0 s at load 12 under ``nice 15``; the
        former 10 s read timeout ran out under load 15-36 and failed every Gateway test)."""
        base = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        for crd in crds:
            code, body = self.request("POST", base, crd, direct=True, timeout=deadline_s)
            if code == 409:
                name = crd["metadata"]["name"]
                _, current = self.request("GET", f"{base}/{name}", direct=True,
                                          timeout=deadline_s)
                crd = {**crd, "metadata": {**crd["metadata"], "resourceVersion":
                                           current["metadata"]["resourceVersion"]}}
                code, body = self.request("PUT", f"{base}/{name}", crd, direct=True,
                                          timeout=deadline_s)
            if code not in (200, 201):
                raise ClusterError(f"CRD {crd['metadata']['name']} rejected: {code} {body}")

        def established(name: str) -> bool:
            code, body = self.request("GET", f"{base}/{name}", direct=True)
            return code == 200 and any(
                c["type"] == "Established" and c["status"] == "True"
                for c in (body.get("status") or {}).get("conditions") or [])

        for crd in crds:
            name = crd["metadata"]["name"]
            self._wait(f"CRD {name} Established", lambda n=name: established(n), deadline_s)
        self._warm(crds, deadline_s)

    def _warm(self, crds: list[dict[str, Any]], deadline_s: float = 60) -> None:
        for crd in crds:
            spec = crd["spec"]
            path = f"/apis/{spec['group']}/{spec['versions'][0]['name']}/{spec['names']['plural']}"
            self._wait(f"storage of {path}",
                       lambda p=path: self.request("GET", p + "?limit=1", direct=True)[0] == 200,
                       deadline_s)


def start_cluster(workdir: Path, bin_dir: Path = DEFAULT_BIN_DIR,
                  webhooks: bool = True, ready_deadline_s: float = 60,
                  pick_port: Callable[[], int] = free_loopback_port, attempts: int = 3) -> Cluster:
    """Start a cluster; when one of its servers could not bind its port (another process took
    it after it was chosen: "address already in use" in a log), stop every process of that
    attempt and start again on fresh ports, at most ``attempts`` times. Any other failure is
    raised at once."""
    for attempt in range(1, attempts + 1):
        where = workdir if attempt == 1 else workdir / f"attempt-{attempt}"
        cluster = Cluster(where, bin_dir, webhooks, ready_deadline_s, pick_port)
        try:
            cluster.start()
        except ClusterError:
            cluster.stop()
            if ADDRESS_IN_USE not in cluster.logs().lower() or attempt == attempts:
                raise
            continue
        except BaseException:
            cluster.stop()
            raise
        cluster.attempts = attempt
        return cluster
    raise AssertionError("unreachable")


__all__ = ["BUILTIN_KINDS", "Cluster", "ClusterError", "binaries_present", "free_loopback_port",
           "start_cluster"]
