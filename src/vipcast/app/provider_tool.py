"""``vipcast providers sync`` and ``providers controller`` composed: the object files loaded
and their credentials checked, one pass of every provider's driver, and the in-cluster
provider controller (Kubernetes client, Lease ``vipcast-providers``, signals). The CLI parses
and prints; this builds and runs."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vipcast.app.providers import ProviderReport
    from vipcast.spec import Spec


def checked_spec(config: Sequence[Path]) -> Spec:
    """The object files' spec, with the providers' credentials checked too (not part of the
    whole-config check: they name Secrets). Raises :class:`vipcast.spec.SpecError`."""
    from vipcast.sources.files import load_paths
    from vipcast.spec import SpecError
    from vipcast.spec.checks import credential_problems

    spec = load_paths(config)
    problems = credential_problems(spec)
    if problems:
        raise SpecError(problems)
    return spec


def sync_once(spec: Spec) -> list[ProviderReport]:
    """Ensure every provider's load balancers match the Services and delete the unwanted,
    once; a report per provider."""
    from vipcast.app.providers import sync_providers

    return asyncio.run(sync_providers(spec))


def run_provider_controller(*, kubeconfig: Path | None, namespace: str, resync: float,
                            identity: str | None, lease_duration: float,
                            log_level: str) -> None:
    """Run the provider controller until SIGTERM/SIGINT (a clean stop gives the Lease up);
    :class:`vipcast.app.kube_tool.KubeconfigProblem` when the kubeconfig cannot be used."""
    import logging
    import signal
    import socket
    import uuid

    from vipcast.app.kube_tool import KubeconfigProblem
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
            raise KubeconfigProblem(str(exc)) from exc
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):  # a clean stop gives the Lease up
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        elector = LeaderElector(client, me, election)
        try:
            await ProviderController(client, namespace, resync=resync, elector=elector).run(stop)
        finally:
            await client.close()

    asyncio.run(main())
