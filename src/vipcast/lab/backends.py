"""HTTP backends and a bounded HTTP client for data plane and e2e tests.

:func:`start_backend` runs the lab's backend (``vipcast.lab.workload serve``) in a namespace:
it answers every request with JSON naming its backend id, its node and the client address it
saw. :func:`http_load` runs the lab's client (``vipcast.lab.workload load``) in a namespace:
at most ``count`` requests (a new connection each), stopped at ``deadline`` seconds, and
returns per-backend counts and failures as a :class:`LoadResult`.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass, field

from vipcast.lab.netns import Netns, Process, ProcessDied, wait_until
from vipcast.lab.process import SingleProcessDaemon
from vipcast.lab.workload import Sample


@dataclass
class BackendServer(SingleProcessDaemon):
    backend_id: str
    node: str
    netns: Netns
    port: int
    udp_port: int
    process: Process = field(repr=False)

    def url(self, address: str, path: str = "/") -> str:
        host = f"[{address}]" if ":" in address else address
        return f"http://{host}:{self.port}{path}"


def start_backend(
    netns: Netns,
    backend_id: str,
    *,
    node: str = "",
    port: int = 8080,
    udp_port: int = 0,
    bind: str = "::",
    timeout: float = 15.0,
) -> BackendServer:
    """Start an HTTP backend (and a UDP echo of the same JSON when ``udp_port``) in ``netns``;
    ``bind`` "::" listens on every address of both families."""
    argv = [
        sys.executable, "-m", "vipcast.lab.workload", "serve",
        "--host", "" if bind == "::" else bind, "--port", str(port),
        "--name", backend_id, "--node", node, "--udp-port", str(udp_port),
    ]  # fmt: skip
    proc = netns.spawn(argv, name=f"backend-{backend_id}")
    server = BackendServer(backend_id, node, netns, port, udp_port, proc)

    def ready() -> bool:
        if not proc.alive():
            raise ProcessDied(f"backend {backend_id} exited:\n{proc.log_text()[-2000:]}")
        return "ready" in proc.log_text()

    wait_until(ready, timeout=timeout, what=f"backend {backend_id} listening")
    return server


@dataclass(frozen=True)
class LoadResult:
    sent: int
    ok: int
    failed: int
    #: backend id -> answered requests
    backends: dict[str, int]
    #: node name -> answered requests
    nodes: dict[str, int]
    #: client addresses the backends saw
    clients: tuple[str, ...]
    #: the first few errors, as text
    errors: tuple[str, ...]


def http_load(
    netns: Netns,
    url: str,
    *,
    count: int = 100,
    deadline: float = 30.0,
    timeout: float = 2.0,
) -> LoadResult:
    """Send up to ``count`` GETs to ``url`` from inside ``netns`` within ``deadline`` seconds
    (each bounded by ``timeout`` to connect and again to be answered)."""
    argv = [
        sys.executable, "-m", "vipcast.lab.workload", "load", "--url", url,
        "--count", str(count), "--interval", "0", "--timeout", str(timeout),
        "--max-seconds", str(deadline),
    ]  # fmt: skip
    out = netns.run(argv, timeout=deadline + 2 * timeout + 30).stdout
    samples = [Sample(**json.loads(line)) for line in out.splitlines() if line.strip()]
    answered = [s for s in samples if s.ok]
    failures = [f"{s.phase}: {s.error}" for s in samples if not s.ok]
    return LoadResult(
        sent=len(samples),
        ok=len(answered),
        failed=len(failures),
        backends=dict(Counter(str(s.backend) for s in answered)),
        nodes=dict(Counter(str(s.node) for s in answered)),
        clients=tuple(sorted({str(s.client) for s in answered})),
        errors=tuple(failures[:5]),
    )
