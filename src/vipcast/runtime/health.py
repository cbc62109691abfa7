"""Backend health checks: TCP connect or HTTP GET per backend, with rise/fall thresholds.

The data plane tells the checker which backends exist (:meth:`HealthChecker.track`, each with
the services it serves); the checker probes each ``ip:port`` on its own schedule and keeps a
:class:`Threshold` per backend. A backend starts *up* (the benefit of the doubt keeps a
restarted agent from emptying its maps), goes *down* after ``fall`` failures in a row and comes
back after ``rise`` successes in a row. Every flip calls the registered listeners, which
re-render the nftables maps without the down backends; the agent asks
:meth:`HealthChecker.down` or the data plane's ``has_healthy_backend`` to decide whether a VIP
may stay announced.

Per-service configuration comes from the ``vipcast.io/health-check`` annotation, parsed by
:func:`parse_health_check` (``"tcp"``, ``"http:/healthz"``, ``"none"``, optionally followed by
``",interval=1,timeout=0.5,rise=2,fall=3"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from vipcast.runtime.probe import ProbeResult, SocketFactory, http_get, tcp_connect

log = logging.getLogger(__name__)

BackendKey = tuple[str, int]
CheckKind = Literal["tcp", "http", "none"]
ANNOTATION = "vipcast.io/health-check"


@dataclass(frozen=True)
class HealthCheckConfig:
    """How one service's backends are checked."""

    kind: CheckKind = "tcp"
    path: str = "/"
    interval: float = 2.0
    timeout: float = 1.0
    rise: int = 2
    fall: int = 2


def parse_health_check(
    text: str, default: HealthCheckConfig | None = None
) -> HealthCheckConfig | str:
    """The config an annotation value asks for, or a message saying what is wrong with it."""
    base = default or HealthCheckConfig()
    head, *options = [part.strip() for part in text.split(",")]
    kind, _, path = head.partition(":")
    kind = kind.strip().lower()
    if kind not in ("tcp", "http", "none"):
        return f"unknown health check kind {kind!r} (tcp, http:/path or none)"
    cfg = replace(base, kind=kind)  # type: ignore[arg-type]
    if kind == "http":
        path = path or "/"
        if not path.startswith("/"):
            return f"HTTP health check path must start with '/': {path!r}"
        cfg = replace(cfg, path=path)
    elif path:
        return f"{kind} health check takes no path"
    for option in options:
        name, _, value = option.partition("=")
        name = name.strip()
        try:
            if name in ("interval", "timeout"):
                number = float(value.rstrip("s"))
                if not 0 < number <= 3600:
                    return f"{name} must be in (0, 3600] seconds"
                cfg = (replace(cfg, interval=number) if name == "interval"
                       else replace(cfg, timeout=number))
            elif name in ("rise", "fall"):
                count = int(value)
                if not 1 <= count <= 100:
                    return f"{name} must be in [1, 100]"
                cfg = replace(cfg, rise=count) if name == "rise" else replace(cfg, fall=count)
            else:
                return f"unknown health check option {name!r}"
        except ValueError:
            return f"bad value for {name}: {value!r}"
    return cfg


@dataclass
class Threshold:
    """Consecutive-result counting for one backend (pure)."""

    rise: int = 2
    fall: int = 2
    up: bool = True
    _streak: int = 0

    def observe(self, ok: bool) -> bool:
        """Record one probe result; True when the backend flipped up or down."""
        if ok == self.up:
            self._streak = 0
            return False
        self._streak += 1
        if self._streak >= (self.rise if ok else self.fall):
            self.up = ok
            self._streak = 0
            return True
        return False


@dataclass
class _Target:
    config: HealthCheckConfig
    services: tuple[str, ...]
    threshold: Threshold
    task: asyncio.Task[None] | None = None
    last: ProbeResult | None = None


@dataclass
class HealthChecker:
    """Probes tracked backends and reports which are down. Run inside an asyncio loop."""

    default: HealthCheckConfig = field(default_factory=HealthCheckConfig)
    socket_factory: SocketFactory | None = None
    _configs: dict[str, HealthCheckConfig] = field(default_factory=dict)
    _targets: dict[BackendKey, _Target] = field(default_factory=dict)
    _listeners: list[Callable[[], None]] = field(default_factory=list)

    # -- configuration ------------------------------------------------------------------------

    def configure(self, configs: Mapping[str, HealthCheckConfig]) -> None:
        """Per-service configs (service name -> config); others use ``default``."""
        self._configs = dict(configs)

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (in the loop) whenever some backend goes up or down."""
        self._listeners.append(listener)

    def track(self, targets: Mapping[BackendKey, tuple[str, ...]]) -> None:
        """Check exactly these backends (``(ip, port) -> services``); start and stop tasks."""
        for key in list(self._targets):
            if key not in targets:
                self._stop(key)
        for key, services in targets.items():
            config = self._config_for(services)
            current = self._targets.get(key)
            if current is not None and current.config == config:
                current.services = services
                continue
            if current is not None:
                self._stop(key)
            target = _Target(config, services, Threshold(config.rise, config.fall))
            if config.kind != "none":
                target.task = asyncio.get_running_loop().create_task(
                    self._watch(key, target), name=f"health {key[0]}:{key[1]}"
                )
            self._targets[key] = target

    def _config_for(self, services: tuple[str, ...]) -> HealthCheckConfig:
        for service in sorted(services):
            if service in self._configs:
                return self._configs[service]
        return self.default

    # -- queries ------------------------------------------------------------------------------

    def down(self) -> frozenset[BackendKey]:
        """Backends whose checks currently fail (beyond the ``fall`` threshold)."""
        return frozenset(k for k, t in self._targets.items() if not t.threshold.up)

    def is_down(self, ip: str, port: int) -> bool:
        target = self._targets.get((ip, port))
        return target is not None and not target.threshold.up

    def last_result(self, ip: str, port: int) -> ProbeResult | None:
        target = self._targets.get((ip, port))
        return None if target is None else target.last

    # -- running ------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop every probe task and wait for them."""
        tasks = [t.task for t in self._targets.values() if t.task is not None]
        for key in list(self._targets):
            self._stop(key)
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _stop(self, key: BackendKey) -> None:
        target = self._targets.pop(key)
        if target.task is not None:
            target.task.cancel()

    async def _watch(self, key: BackendKey, target: _Target) -> None:
        ip, port = key
        cfg = target.config
        while True:
            if cfg.kind == "http":
                result = await http_get(
                    ip, port, cfg.path, timeout=cfg.timeout, socket_factory=self.socket_factory
                )
            else:
                result = await tcp_connect(
                    ip, port, timeout=cfg.timeout, socket_factory=self.socket_factory
                )
            target.last = result
            if target.threshold.observe(result.ok):
                state = "up" if target.threshold.up else "down"
                log.info("backend %s:%s is %s (%s)", ip, port, state, result.error or "ok")
                for listener in list(self._listeners):
                    listener()
            await asyncio.sleep(cfg.interval)
