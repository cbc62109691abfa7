"""Kubernetes commands: ``vipcast kube crds`` and the in-cluster ``controller``/``speaker``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from vipcast.cli.address_options import host_port, host_ports, optional_host_port
from vipcast.cli.agent_cmds import SUSPICION_MIN_HELP, suspicion_min_option

T = TypeVar("T")


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
    from vipcast.app.kube_tool import crd_files, stale_crds, write_crds

    files = crd_files()
    if out is None:
        typer.echo("---\n".join(files.values()), nl=False)
        return
    if check:
        stale = stale_crds(out, files)
        for name in stale:
            typer.echo(f"out of date: {out / name}", err=True)
        raise typer.Exit(1 if stale else 0)
    write_crds(out, files)
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


def _with_kubeconfig(run: Callable[[], T]) -> T:
    """``run()``; a kubeconfig it cannot use is the option's error (exit 2)."""
    from vipcast.app.kube_tool import KubeconfigProblem

    try:
        return run()
    except KubeconfigProblem as exc:
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
    from vipcast.app.kube_tool import run_controller_command

    metrics_address = optional_host_port(metrics, "--metrics")
    health_address = optional_host_port(health, "--health")
    _with_kubeconfig(lambda: run_controller_command(
        kubeconfig=kubeconfig, namespace=namespace, password_secrets=_names(password_secrets),
        identity=identity, lease_duration=lease_duration, health=health_address,
        load_balancer_class=load_balancer_class, log_level=log_level, metrics=metrics_address,
        gateway_api=gateway_api, write_qps=kube_api_qps, write_burst=kube_api_burst,
        write_concurrency=status_write_concurrency))


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
    import os

    from vipcast.app.kube_tool import SpeakerCommand, run_speaker_command

    command = SpeakerCommand(
        node=node, kubeconfig=kubeconfig, namespace=namespace,
        password_secrets=_names(password_secrets),
        metrics=optional_host_port(metrics, "--metrics"), router_id=router_id,
        state_dir=state_dir, listen=host_ports(listen, "--listen", default_host="0.0.0.0"),
        dataplane=dataplane,
        membership_key=membership_key(membership_key_file,
                                      os.environ.get("VIPCAST_MEMBERSHIP_KEY", "")),
        node_liveness=node_liveness, suspicion_min=suspicion_min,
        load_balancer_class=load_balancer_class, log_level=log_level,
        gateway_workdir=gateway_workdir, gateway_admin_port=gateway_admin_port,
        gateway_concurrency=gateway_concurrency, frr_k8s_namespace=frr_k8s_namespace,
        drain_labels=tuple(drain_label) if drain_label is not None else None,
        drain_taints=tuple(drain_taint) if drain_taint is not None else None,
        drain_grace=drain_grace, drain_quiet=drain_quiet)
    raise typer.Exit(_with_kubeconfig(lambda: run_speaker_command(command)))


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
    from vipcast.app.kube_tool import run_webhook_command

    host, port = host_port(listen, "--listen", default_host="0.0.0.0")
    _with_kubeconfig(lambda: run_webhook_command(
        kubeconfig=kubeconfig, tls_cert=tls_cert, tls_key=tls_key, host=host, port=port,
        speaker_accounts=tuple(speaker_account or ()), log_level=log_level))


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

    from vipcast.app.kube_tool import convert_metallb as convert
    from vipcast.spec import SpecError

    try:
        result, issues = convert(paths)
    except SpecError as error:
        for issue in error.issues:
            typer.echo(f"error: {issue}", err=True)
        raise typer.Exit(1) from None
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    for issue in issues:
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
