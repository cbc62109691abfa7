"""Kubernetes commands: ``vipcast kube crds`` and the in-cluster ``controller``/``speaker``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vipcast.cli.agent_cmds import SUSPICION_MIN_HELP, suspicion_min_option
from vipcast.spec.addresses import parse_host_port

if TYPE_CHECKING:
    from vipcast.sources.kube.client import AsyncClient

def _host_port(text: str) -> tuple[str, int]:
    try:
        return parse_host_port(text, default_host="0.0.0.0")
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


kube_app = typer.Typer(help="Kubernetes: CRDs and manifests.", no_args_is_help=True)


@kube_app.command("crds")
def crds(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write one YAML file per CRD into this directory."),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 if the files in --out are not up to date.")
    ] = False,
) -> None:
    """Print (or write) the CustomResourceDefinitions generated from vipcast's spec models."""
    from vipcast.sources.kube.crds import rendered_files

    files = rendered_files()
    if out is None:
        typer.echo("---\n".join(files.values()), nl=False)
        return
    stale = [name for name, text in files.items()
             if not (out / name).exists() or (out / name).read_text() != text]
    if check:
        for name in stale:
            typer.echo(f"out of date: {out / name}", err=True)
        raise typer.Exit(1 if stale else 0)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).write_text(text)
    typer.echo(f"wrote {len(files)} CRDs to {out}")


KubeconfigOpt = Annotated[
    Path | None,
    typer.Option("--kubeconfig", envvar="KUBECONFIG",
                 help="kubeconfig file (default: in-cluster service account, then ~/.kube)."),
]


ClassOpt = Annotated[
    str | None, typer.Option(
        "--load-balancer-class", envvar="VIPCAST_LOAD_BALANCER_CLASS",
        help="Serve the Services of this loadBalancerClass only (MetalLB's --lb-class); "
             "unset: the Services without a class only.")
]


NamespaceOpt = Annotated[
    str, typer.Option("--namespace", envvar=["POD_NAMESPACE", "VIPCAST_NAMESPACE"],
                      help="vipcast's own namespace (Lease, password Secrets); in a pod, from "
                           "the Downward API (metadata.namespace as $POD_NAMESPACE).")
]
SecretsOpt = Annotated[
    str, typer.Option("--password-secrets", envvar="VIPCAST_PASSWORD_SECRETS",
                      help="Comma-separated names of the Secrets (in --namespace) that "
                           "BGPPeers may name in passwordSecret; no other Secret is read.")
]


def membership_key(path: Path | None, env: str = "") -> str:
    """The node membership key: the file's text (the chart mounts a generated Secret there),
    else ``env``. A missing file (an optional Secret not created) gives ``env`` and a warning:
    BGP works without it (but without node liveness), L2 with more than one node does not."""
    if path is None:
        return env
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        typer.echo(f"warning: no membership key at {path}: L2 with more than one node will not "
                   "work and BGP runs without node liveness until it exists", err=True)
        return env


def _names(text: str) -> tuple[str, ...]:
    return tuple(sorted({n.strip() for n in text.split(",") if n.strip()}))


def _client(kubeconfig: Path | None, namespace: str) -> AsyncClient:
    from vipcast.sources.kube.client import KubeconfigError, make_client

    try:
        return make_client(kubeconfig, namespace, "vipcast")
    except KubeconfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--kubeconfig") from exc


def controller(
    kubeconfig: KubeconfigOpt = None,
    namespace: NamespaceOpt = "vipcast-system",
    password_secrets: SecretsOpt = "",
    identity: Annotated[
        str | None, typer.Option("--identity", envvar="POD_NAME",
                                 help="Leader-election identity (default: host name + random).")
    ] = None,
    lease_duration: Annotated[float, typer.Option(help="Lease duration, seconds.")] = 15.0,
    health: Annotated[
        str | None, typer.Option("--health", help="Serve /healthz, /readyz and /status on "
                                                  "HOST:PORT (a bare PORT: 127.0.0.1).")
    ] = None,
    load_balancer_class: ClassOpt = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING.")] = "INFO",
    metrics: Annotated[
        str | None, typer.Option("--metrics", help="Serve /metrics and /status on HOST:PORT.")
    ] = None,
    gateway_api: Annotated[
        bool, typer.Option(help="Read Gateway API objects and Ingresses, write Gateway and "
                           "HTTPRoute status (the Gateway API CRDs must be installed).")
    ] = False,
    kube_api_qps: Annotated[
        float, typer.Option("--kube-api-qps", help="Service status writes per second at most "
                            "(token bucket; 0: no limit).")
    ] = 50.0,
    kube_api_burst: Annotated[
        int, typer.Option("--kube-api-burst", min=1, help="Status writes allowed in a burst.")
    ] = 100,
    status_write_concurrency: Annotated[
        int, typer.Option("--status-write-concurrency", min=1,
                          help="Service status writes in flight at once (within the limit).")
    ] = 8,
) -> None:
    """Run the controller: allocate Service IPs and write them to Service status (leader only)."""
    import asyncio
    import contextlib
    import logging
    from dataclasses import replace

    from vipcast.app.controller import ControllerConfig, run_controller
    from vipcast.obs.status_server import parse_address
    from vipcast.sources.kube.leader import ElectionConfig

    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    election = ElectionConfig(namespace=namespace, lease_duration=lease_duration,
                              renew_deadline=lease_duration * 2 / 3,
                              retry_period=max(0.2, lease_duration / 7))
    config = ControllerConfig(election=election, load_balancer_class=load_balancer_class,
                              password_secrets=_names(password_secrets), gateway_api=gateway_api,
                              write_qps=kube_api_qps, write_burst=kube_api_burst,
                              write_concurrency=status_write_concurrency)
    if identity is not None:
        config = replace(config, identity=identity)

    async def main() -> None:
        client = _client(kubeconfig, namespace)
        try:
            await run_controller(client, config,
                                 parse_address(metrics) if metrics else None,
                                 parse_address(health) if health else None)
        finally:
            await client.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


def speaker(
    node: Annotated[str, typer.Option("--node", envvar="NODE_NAME", help="This node's name.")],
    kubeconfig: KubeconfigOpt = None,
    namespace: NamespaceOpt = "vipcast-system",
    password_secrets: SecretsOpt = "",
    metrics: Annotated[
        str | None, typer.Option(
            "--metrics", help="Serve /metrics, /status, /healthz, /readyz on HOST:PORT (a bare "
                              "PORT: 127.0.0.1; the speaker is on the host network).")
    ] = None,
    router_id: Annotated[str | None, typer.Option("--router-id", help="BGP identifier.")] = None,
    state_dir: Annotated[
        Path | None, typer.Option("--state-dir", help="Graceful-restart marker directory.")
    ] = None,
    listen: Annotated[
        list[str] | None, typer.Option("--listen", help="BGP listen HOST:PORT (repeatable).")
    ] = None,
    dataplane: Annotated[
        bool, typer.Option(help="Program nftables/local VIP routes and verify before announcing.")
    ] = True,
    membership_key_file: Annotated[
        Path | None,
        typer.Option(help="Shared key of the node membership: L2 owners, and node liveness "
                     "(or $VIPCAST_MEMBERSHIP_KEY)."),
    ] = None,
    node_liveness: Annotated[
        bool, typer.Option(help="Leave a dead node's backends out of the Cluster-policy maps "
                           "as soon as the node membership declares it dead.")
    ] = True,
    suspicion_min: Annotated[
        float | None, typer.Option(callback=suspicion_min_option, help=SUSPICION_MIN_HELP)
    ] = None,
    load_balancer_class: ClassOpt = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING.")] = "INFO",
    gateway_workdir: Annotated[
        Path | None, typer.Option(help="Run the L7 gateway (Envoy fed over xDS) for the "
                                  "Gateway API objects and Ingresses; its files go here.")
    ] = None,
    gateway_admin_port: Annotated[
        int, typer.Option(help="Envoy's admin port on 127.0.0.1.")
    ] = 19000,
    gateway_concurrency: Annotated[
        int | None, typer.Option(min=1, help="Envoy worker threads (default: one per CPU this "
                                 "process may use, capped by the container's CPU limit).")
    ] = None,
    frr_k8s_namespace: Annotated[
        str | None, typer.Option(help="Where this node's FRRConfiguration may be (HandOff to "
                                 "FRR-K8s, docs/cni.md): one left from before is removed "
                                 "when the config no longer hands off.")
    ] = None,
    drain_label: Annotated[
        list[str] | None, typer.Option(help="A Node label that drains the node (repeat; "
                                       "replaces the defaults, docs/drain.md).")
    ] = None,
    drain_taint: Annotated[
        list[str] | None, typer.Option(help="A Node taint key that drains the node (repeat; "
                                       "replaces the defaults, docs/drain.md).")
    ] = None,
    drain_grace: Annotated[
        float, typer.Option(help="On a drain, seconds at most announced with "
                            "GRACEFUL_SHUTDOWN before the withdrawal.")
    ] = 30.0,
    drain_quiet: Annotated[
        float, typer.Option(help="On a drain, withdraw once no new connection reached this "
                            "node's VIPs for this many seconds (0: the grace alone).")
    ] = 5.0,
) -> None:
    """Run a node's speaker: the node code path of ``vipcast agent`` fed from the API."""
    import asyncio
    import logging
    import os
    from dataclasses import replace

    from vipcast.app.agent import AgentOptions
    from vipcast.app.speaker import run_speaker
    from vipcast.obs.status_server import parse_address

    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    address = parse_address(metrics) if metrics else None  # a bare port: loopback only
    options = AgentOptions(config_paths=(), node=node, metrics_address=address,
                           router_id=router_id, state_dir=state_dir,
                           node_liveness=node_liveness, suspicion_min=suspicion_min,
                           drain_grace=drain_grace,
                           drain_quiet=drain_quiet)
    if drain_label is not None:
        options = replace(options, drain_labels=tuple(drain_label))
    if drain_taint is not None:
        options = replace(options, drain_taints=tuple(drain_taint))
    if listen:
        options = replace(options, listen=tuple(_host_port(item) for item in listen))
    key = membership_key(membership_key_file, os.environ.get("VIPCAST_MEMBERSHIP_KEY", ""))

    gateway = None
    if gateway_workdir is not None:
        from vipcast.app.envoy_gateway import GatewaySettings
        from vipcast.runtime.envoy import find_envoy

        gateway = GatewaySettings(node, gateway_workdir, find_envoy(), gateway_admin_port,
                                  concurrency=gateway_concurrency)

    async def main() -> int:
        client = _client(kubeconfig, namespace)
        try:
            return await run_speaker(client, options, dataplane_enabled=dataplane,
                                     membership_key=key.encode(),
                                     load_balancer_class=load_balancer_class,
                                     namespace=namespace,
                                     password_secrets=_names(password_secrets),
                                     gateway=gateway,
                                     frr_k8s_namespaces=(frr_k8s_namespace,)
                                     if frr_k8s_namespace else ())
        finally:
            await client.close()

    raise typer.Exit(asyncio.run(main()))


@kube_app.command("webhook")
def webhook(
    tls_cert: Annotated[Path, typer.Option("--tls-cert", help="PEM certificate file.")],
    tls_key: Annotated[Path, typer.Option("--tls-key", help="PEM key file.")],
    kubeconfig: KubeconfigOpt = None,
    listen: Annotated[str, typer.Option("--listen", help="HOST:PORT to serve on.")] = (
        "0.0.0.0:9443"
    ),
    speaker_account: Annotated[
        list[str] | None,
        typer.Option("--speaker-service-account",
                     help="NAMESPACE:NAME of the speakers' ServiceAccount (repeatable): each "
                          "may write only its own node's NodeAnnouncement."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING.")] = "INFO",
) -> None:
    """Serve the validating admission webhook for vipcast's kinds (POST /validate)."""
    import asyncio
    import contextlib
    import logging

    from vipcast.sources.kube.webhook import WebhookServer

    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host, port = _host_port(listen)

    async def main() -> None:
        client = _client(kubeconfig, "default")
        speakers = [f"system:serviceaccount:{a}"
                    for a in speaker_account or ()]
        server = WebhookServer(client, tls_cert, tls_key, host, port, speakers=speakers)
        try:
            await server.start()
            await asyncio.Event().wait()
        finally:
            await server.stop()
            await client.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


convert_app = typer.Typer(help="Convert other load balancers' objects to vipcast's.",
                          no_args_is_help=True)


@convert_app.command("metallb")
def convert_metallb(
    paths: Annotated[list[Path], typer.Argument(help="MetalLB YAML files or directories.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Convert MetalLB objects (metallb.io) to vipcast.io objects; notes go to stderr."""
    import yaml

    from vipcast.sources.files import read_documents
    from vipcast.sources.kube.metallb import convert
    from vipcast.spec import SpecError, load_documents

    try:
        docs = read_documents(paths)
    except SpecError as error:
        for issue in error.issues:
            typer.echo(f"error: {issue}", err=True)
        raise typer.Exit(1) from None
    result = convert(d for _, d in docs if isinstance(d, dict))
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    try:
        load_documents([("converted", d) for d in result.documents])
    except SpecError as error:
        for issue in error.issues:
            typer.echo(f"warning: converted {issue.obj} {issue.field}: {issue.message}", err=True)
    text = yaml.safe_dump_all(list(result.documents), sort_keys=False)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        typer.echo(f"wrote {len(result.documents)} objects to {out}", err=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.add_typer(kube_app, name="kube")
    app.add_typer(convert_app, name="convert")
    app.command("controller")(controller)
    app.command("speaker")(speaker)
