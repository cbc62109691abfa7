"""``vipcast providers sync``: drive the external load balancers of a file set once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from vipcast.spec import SpecError


def register(app: typer.Typer) -> None:
    providers = typer.Typer(help="External load balancers (LoadBalancerProvider).",
                            no_args_is_help=True)

    @providers.command("sync")
    def sync(
        config: Annotated[list[Path], typer.Argument(help="object files or directories")],
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Ensure every provider's load balancers match the Services; delete the unwanted."""
        from vipcast.app.provider_tool import checked_spec, sync_once

        try:
            spec = checked_spec(config)
        except SpecError as exc:
            for issue in exc.issues:
                typer.echo(str(issue), err=True)
            raise typer.Exit(2) from None
        reports = sync_once(spec)
        failed = False
        out = []
        for r in reports:
            failed |= bool(r.retries)
            out.append({
                "provider": r.provider,
                "applied": [{"name": a.name, "vip": a.vip, "changes": a.changes,
                             "ipMode": a.ip_mode} for a in r.applied],
                "deleted": [a.name for a in r.deleted],
                "refused": [{"service": x.service, "reason": str(x.why), "message": x.message}
                            for x in r.refused],
                "retry": [{"name": n, "failure": str(x.failure), "message": x.message,
                           "retryAfter": x.retry_after} for n, x in r.retries],
            })
        if as_json:
            typer.echo(json.dumps(out, indent=1))
        else:
            for rep in reports:
                typer.echo(f"provider {rep.provider}:")
                for a in rep.applied:
                    typer.echo(f"  ensured {a.name} vip={a.vip} changes={a.changes}")
                for d in rep.deleted:
                    typer.echo(f"  deleted {d.name}")
                for x in rep.refused:
                    typer.echo(f"  refused {x.service}: {x.why}: {x.message}")
                for name, retry in rep.retries:
                    typer.echo(f"  retry {name} in {retry.retry_after:.0f}s: {retry.failure}: "
                               f"{retry.message}")
        raise typer.Exit(1 if failed else 0)

    @providers.command("controller")
    def controller(
        kubeconfig: Annotated[Path | None, typer.Option(
            envvar="KUBECONFIG", help="default: in-cluster/env")] = None,
        namespace: Annotated[str, typer.Option(
            envvar=["POD_NAMESPACE", "VIPCAST_NAMESPACE"],
            help="vipcast's namespace (credential Secrets without a namespace are read here)",
        )] = "vipcast-system",
        resync: Annotated[float, typer.Option(help="seconds between passes")] = 30.0,
        identity: Annotated[str | None, typer.Option(
            "--identity", envvar="POD_NAME",
            help="Leader-election identity (default: host name + random).")] = None,
        lease_duration: Annotated[float, typer.Option(
            min=1.0, help="Lease duration, seconds (Lease vipcast-providers).")] = 15.0,
        log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING.")] = "INFO",
    ) -> None:
        """In Kubernetes: keep every provider's load balancers, Service finalizers, status,
        conditions and Events up to date (a pass every --resync seconds). Replicas elect a
        leader with the Lease ``vipcast-providers``; only the leader writes."""
        from vipcast.app.kube_tool import KubeconfigProblem
        from vipcast.app.provider_tool import run_provider_controller

        try:
            run_provider_controller(kubeconfig=kubeconfig, namespace=namespace, resync=resync,
                                    identity=identity, lease_duration=lease_duration,
                                    log_level=log_level)
        except KubeconfigProblem as exc:
            raise typer.BadParameter(str(exc), param_hint="--kubeconfig") from exc

    app.add_typer(providers, name="providers")
