"""``vipcast gateway``: run the node's L7 gateway (Envoy fed over xDS) from object files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def gateway(
    config: Annotated[
        list[Path], typer.Option("--config", "-c", help="Object file or directory (repeatable)")
    ],
    node: Annotated[str, typer.Option("--node", "-n", help="This node's name")],
    workdir: Annotated[Path, typer.Option(help="Envoy's bootstrap, xDS socket and logs")],
    admin_port: Annotated[int, typer.Option(help="Envoy admin port on 127.0.0.1")] = 19000,
    concurrency: Annotated[int, typer.Option(help="Envoy worker threads")] = 1,
    xff_trusted_hops: Annotated[
        int, typer.Option(help="X-Forwarded-For entries from clients to trust")
    ] = 0,
    proxy_protocol: Annotated[
        bool, typer.Option(help="Accept a PROXY protocol header (from an LB tier in front)")
    ] = False,
    ingress_address: Annotated[
        list[str] | None, typer.Option(help="Address for Ingresses of class vipcast")
    ] = None,
    metrics_address: Annotated[
        str | None, typer.Option(help="HOST:PORT of /metrics and /status")
    ] = None,
    status_file: Annotated[Path | None, typer.Option(help="Write the status JSON here")] = None,
    poll_interval: Annotated[float, typer.Option(help="Seconds between file checks")] = 0.5,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING, ERROR")] = "INFO",
) -> None:
    """Serve this node's Gateways, HTTPRoutes and Ingresses with Envoy (ADS on a unix socket)."""
    from vipcast.app.gateway import GatewayOptions, run_gateway
    from vipcast.dataplane.envoy import ProxyOptions
    from vipcast.obs.logs import setup_logging
    from vipcast.obs.status_server import parse_address
    from vipcast.runtime.envoy import find_envoy

    setup_logging(log_level)
    options = GatewayOptions(
        config_paths=tuple(config), node=node, workdir=workdir, envoy_binary=find_envoy(),
        admin_port=admin_port, concurrency=concurrency,
        proxy=ProxyOptions(xff_num_trusted_hops=xff_trusted_hops, proxy_protocol=proxy_protocol),
        metrics_address=parse_address(metrics_address) if metrics_address else None,
        poll_interval=poll_interval, ingress_addresses=tuple(ingress_address or ()),
        status_file=status_file,
    )
    raise typer.Exit(run_gateway(options))


def register(app: typer.Typer) -> None:
    app.command()(gateway)
