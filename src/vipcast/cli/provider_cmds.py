"""``vipcast providers sync``: drive the external load balancers of a file set once."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from vipcast.sources.files import load_paths
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
        from vipcast.app.providers import sync_providers
        from vipcast.spec.checks import credential_problems

        try:
            spec = load_paths(config)
            problems = credential_problems(spec)  # not in the whole-config check (Secrets)
            if problems:
                raise SpecError(problems)
        except SpecError as exc:
            for issue in exc.issues:
                typer.echo(str(issue), err=True)
            raise typer.Exit(2) from None
        reports = asyncio.run(sync_providers(spec))
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
        import logging
        import signal
        import socket
        import uuid

        from vipcast.app.provider_controller import ProviderController
        from vipcast.sources.kube.client import KubeconfigError, make_client
        from vipcast.sources.kube.leader import ElectionConfig, LeaderElector

        logging.basicConfig(level=log_level.upper(),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("httpx2").setLevel(logging.WARNING)  # a line per API request
        me = identity or f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"
        election = ElectionConfig(name="vipcast-providers", namespace=namespace,
                                  lease_duration=lease_duration,
                                  renew_deadline=lease_duration * 2 / 3,
                                  retry_period=max(0.2, lease_duration / 7))

        async def main() -> None:
            try:
                client = make_client(kubeconfig, namespace, "vipcast-providers")
            except KubeconfigError as exc:
                raise typer.BadParameter(str(exc), param_hint="--kubeconfig") from exc
            stop = asyncio.Event()
            for sig in (signal.SIGTERM, signal.SIGINT):  # a clean stop gives the Lease up
                asyncio.get_running_loop().add_signal_handler(sig, stop.set)
            elector = LeaderElector(client, me, election)
            try:
                await ProviderController(client, namespace, resync=resync,
                                         elector=elector).run(stop)
            finally:
                await client.close()

        asyncio.run(main())

    app.add_typer(providers, name="providers")
