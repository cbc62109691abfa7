"""``vipcast gateway``: the L7 gateway of one node, standalone (objects from YAML files).

Composition only: files -> Spec (whole, or refused whole: the running model stays) ->
:func:`vipcast.core.gateway.translate` -> :class:`vipcast.app.envoy_gateway.EnvoyGateway`,
which feeds the node's Envoy over ADS. A file change is re-read (``sources.files``: inotify,
else polling); Services and EndpointSlices changing only moves EDS. Gateway and HTTPRoute
status values, Envoy's readiness and its NACKs are in the status document (``/status``) and
the metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vipcast.app.agent import issues_table
from vipcast.app.envoy_gateway import EnvoyGateway, GatewaySettings
from vipcast.core.gateway import Translation, translate
from vipcast.core.gateway.model import with_refusal
from vipcast.dataplane.envoy import ProxyOptions
from vipcast.obs.gateway_metrics import register_gateway_metrics
from vipcast.obs.registry import CollectorRegistry
from vipcast.obs.status_server import StatusServer
from vipcast.sources.files import ObjectFiles, watch
from vipcast.spec import SpecError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GatewayOptions:
    config_paths: tuple[Path, ...]
    node: str
    workdir: Path
    envoy_binary: str
    admin_port: int = 19000
    concurrency: int | None = None
    proxy: ProxyOptions = field(default_factory=ProxyOptions)
    metrics_address: tuple[str, int] | None = None
    poll_interval: float = 0.5
    ingress_addresses: tuple[str, ...] = ()
    #: written on every change (tests and ``vipcast lab`` read it without an HTTP client)
    status_file: Path | None = None


def status_values(t: Translation) -> dict[str, Any]:
    return {
        "gateways": [asdict(g) for g in t.gateways],
        "routes": [asdict(r) for r in t.routes],
    }


class StandaloneGateway:
    def __init__(self, options: GatewayOptions) -> None:
        self.options = options
        self.gateway = EnvoyGateway(
            GatewaySettings(options.node, options.workdir, options.envoy_binary,
                            options.admin_port, options.proxy, options.concurrency),
            on_ready=lambda ready: self._changed(),
            on_outcome=lambda node, outcome: self._changed(),
        )
        self.translation: Translation | None = None
        self._values: dict[str, Any] = {}
        self.last_error: str | None = None
        self.reloads = 0
        self.files = ObjectFiles(self.options.config_paths)
        self._write_lock = threading.Lock()
        self.registry = CollectorRegistry()
        register_gateway_metrics(self.registry, self.gateway.status)

    def status(self) -> Mapping[str, Any]:
        doc: dict[str, Any] = {"node": self.options.node, **self.gateway.status(),
                               "reloads": self.reloads, "config_error": self.last_error}
        doc.update(self._values)
        refused = {t: info["message"] for t, info in doc.get("nacked", {}).items()}
        if refused and self.translation is not None:  # Envoy's refusal, in Gateway status
            gateways = with_refusal(self.translation.gateways, refused)
            doc["gateways"] = [asdict(g) for g in gateways]
        return doc

    def _changed(self) -> None:
        path = self.options.status_file
        if path is None:
            return
        with self._write_lock:  # written from the loop and from the loading thread
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.status(), default=str, sort_keys=True))
            os.replace(tmp, path)

    def load(self) -> bool:
        """Read the files, translate, swap in; a broken config leaves the running one."""
        try:
            spec = self.files.load()
        except SpecError as err:
            self.last_error = issues_table(err.issues)
            log.error("config refused, the running one stays:\n%s", self.last_error)
            self._changed()
            return False
        translation = translate(spec, self.options.node,
                                ingress_addresses=self.options.ingress_addresses)
        self.translation = translation
        self._values = status_values(translation)  # once per config, not per status write
        self.last_error = None
        self.reloads += 1
        self.gateway.apply(translation.model)
        self._changed()
        return True

    async def _watch(self) -> None:
        async def changed() -> None:
            if await asyncio.to_thread(self.files.changed):
                await asyncio.to_thread(self.load)

        await watch(list(self.options.config_paths), changed,
                    poll_interval=self.options.poll_interval)

    async def run(self) -> int:
        self.load()
        server = None
        if self.options.metrics_address is not None:
            server = StatusServer(self.registry, self.status,
                                  ready=lambda: self.gateway.process.ready)
            await server.start(*self.options.metrics_address)
        tasks = [asyncio.create_task(self.gateway.run()), asyncio.create_task(self._watch())]
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            waiter = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([*tasks, waiter], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not waiter:
                    task.result()  # a crashed task's error, raised here
            return 0
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if server is not None:
                await server.stop()


def run_gateway(options: GatewayOptions) -> int:
    return asyncio.run(StandaloneGateway(options).run())

