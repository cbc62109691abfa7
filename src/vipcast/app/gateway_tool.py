"""``vipcast gateway`` and ``vipcast explain-route`` composed: the standalone L7 gateway's
options (Envoy found, proxy options, addresses parsed) and run, and the story of one HTTPRoute
in the proxy model of object files. The CLI parses and prints; this builds.

Imported by those two commands only, when they run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vipcast.core.gateway.explain import RouteStory


def run_from_files(
    config: Sequence[Path], node: str, workdir: Path, *, admin_port: int = 19000,
    concurrency: int | None = None, xff_trusted_hops: int = 0, proxy_protocol: bool = False,
    ingress_addresses: Sequence[str] = (), metrics_address: tuple[str, int] | None = None,
    status_file: Path | None = None, poll_interval: float = 0.5, log_level: str = "INFO",
) -> int:
    """Serve ``node``'s Gateways, HTTPRoutes and Ingresses of the ``config`` files with Envoy
    (ADS on a unix socket in ``workdir``) until stopped; the exit code."""
    from vipcast.app.gateway import GatewayOptions, run_gateway
    from vipcast.dataplane.envoy import ProxyOptions
    from vipcast.obs.logs import setup_logging
    from vipcast.runtime.envoy import find_envoy

    setup_logging(log_level)
    options = GatewayOptions(
        config_paths=tuple(config), node=node, workdir=workdir, envoy_binary=find_envoy(),
        admin_port=admin_port, concurrency=concurrency,
        proxy=ProxyOptions(xff_num_trusted_hops=xff_trusted_hops, proxy_protocol=proxy_protocol),
        metrics_address=metrics_address,
        poll_interval=poll_interval, ingress_addresses=tuple(ingress_addresses),
        status_file=status_file,
    )
    return run_gateway(options)


def route_story(path: Path, key: str, node: str) -> tuple[RouteStory | None, tuple[str, ...]]:
    """Which listeners of ``node``'s proxy model took HTTPRoute ``key`` (None: no Gateway of
    vipcast's is its parent), and the keys of every HTTPRoute in ``path``. Raises
    :class:`vipcast.spec.SpecError` when the files are not valid."""
    from vipcast.core.gateway import translate
    from vipcast.core.gateway.explain import explain_route
    from vipcast.sources.files import load_paths

    spec = load_paths([path])
    return explain_route(translate(spec, node), key), tuple(r.key for r in spec.http_routes)
