"""Backend health checks: TCP connect or HTTP GET per backend, with rise/fall thresholds.

The data plane tells the checker which backends exist (:meth:`HealthChecker.track`, each with
the services it serves); the checker probes each ``ip:port`` on its own schedule and keeps a
:class:`Threshold` per backend. A backend starts *up* (the benefit of the doubt keeps a
restarted agent from emptying its maps), goes *down* after ``fall`` failures in a row and comes
back after ``rise`` successes in a row. Every flip calls the registered listeners, which
re-render the nftables maps without the down backends; the agent asks
:meth:`HealthChecker.down` or the data plane's ``has_healthy_backend`` to decide whether a VIP
may stay announced.

Per-service configuration comes from the ``vipcast.io/health-check`` annotation, parsed and
bounded by :func:`vipcast.spec.health.parse_health_check`. The annotation is tenant input, so
the checker also caps this node's whole probe rate (:attr:`HealthChecker.max_rate`): when the
tracked backends would need more probes a second, every interval is stretched by one factor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from vipcast.core.desired import HealthTarget
from vipcast.runtime.clock import Clock, LoopClock
from vipcast.runtime.probe import ProbeResult, SocketFactory, http_get, tcp_connect
from vipcast.spec.health import CheckKind, HealthCheckConfig, parse_health_check

log = logging.getLogger(__name__)

BackendKey = tuple[str, int]
ANNOTATION = "vipcast.io/health-check"
#: probes a second one node sends at most, over all backends (stretches every interval)
MAX_PROBE_RATE = 100.0


def rate_scale(intervals: Iterable[float], max_rate: float) -> float:
    """The factor (>= 1) by which every interval is stretched so that probes at these
    intervals together stay within ``max_rate`` a second."""
    rate = sum(1.0 / i for i in intervals if i > 0)
    return max(1.0, rate / max_rate) if max_rate > 0 else 1.0


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


__all__ = ["ANNOTATION", "CheckKind", "HealthCheckConfig", "HealthChecker", "Threshold",
           "parse_health_check", "rate_scale"]


@dataclass
class HealthChecker:
    """Probes tracked backends and reports which are down. Run inside an asyncio loop."""

    default: HealthCheckConfig = field(default_factory=HealthCheckConfig)
    socket_factory: SocketFactory | None = None
    max_rate: float = MAX_PROBE_RATE
    #: every interval is multiplied by this (see :func:`rate_scale`)
    scale: float = 1.0
    #: the probe schedule's clock (tests hand a ManualClock instead of sleeping)
    clock: Clock = field(default_factory=LoopClock)
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
            self._start(key, config, services)
        self._rescale()

    def set_targets(self, targets: Sequence[HealthTarget]) -> None:
        """Probe exactly these targets (the plan's), each with its own config."""
        wanted = {(t.ip, t.port): t for t in targets}
        for key in list(self._targets):
            if key not in wanted:
                self._stop(key)
        for key, t in wanted.items():
            current = self._targets.get(key)
            if current is not None and current.config == t.config:
                current.services = t.services
                continue
            if current is not None:
                self._stop(key)
            self._start(key, t.config, t.services)
        self._rescale()

    def _start(self, key: BackendKey, config: HealthCheckConfig, services: tuple[str, ...]
               ) -> None:
        target = _Target(config, services, Threshold(config.rise, config.fall))
        if config.kind != "none":
            target.task = asyncio.get_running_loop().create_task(
                self._watch(key, target), name=f"health {key[0]}:{key[1]}"
            )
        self._targets[key] = target

    def _rescale(self) -> None:
        scale = rate_scale((t.config.interval for t in self._targets.values()
                            if t.config.kind != "none"), self.max_rate)
        if scale != self.scale:
            log.info("health checks: %d backends, intervals stretched x%.2f to stay within "
                     "%g probes/s", len(self._targets), scale, self.max_rate)
        self.scale = scale

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
            await self.clock.sleep(cfg.interval * self.scale)
