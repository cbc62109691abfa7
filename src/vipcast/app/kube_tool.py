"""``vipcast kube ...``, ``controller``, ``speaker`` and ``convert metallb`` composed: the
Kubernetes client made from a kubeconfig, the controller's and the speaker's configuration,
the admission webhook server, the CRD files and the MetalLB conversion. The CLI parses and
prints; this builds and runs.

The Kubernetes client (lightkube) is imported by the functions that use it only, so that
``vipcast kube crds`` does not load it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vipcast.sources.kube.client import AsyncClient
    from vipcast.sources.kube.metallb import Conversion
    from vipcast.spec.errors import Issue


class KubeconfigProblem(Exception):
    """The kubeconfig cannot be used; the message names the file and what is wrong."""


def _log(level: str) -> None:
    logging.basicConfig(level=level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _client(kubeconfig: Path | None, namespace: str) -> AsyncClient:
    from vipcast.sources.kube.client import KubeconfigError, make_client

    try:
        return make_client(kubeconfig, namespace, "vipcast")
    except KubeconfigError as exc:
        raise KubeconfigProblem(str(exc)) from exc


# -- CRDs -------------------------------------------------------------------------------------

def crd_files() -> dict[str, str]:
    """File name -> YAML text of every CustomResourceDefinition (``deploy/crds/``)."""
    from vipcast.sources.kube.crds import rendered_files

    return rendered_files()


def stale_crds(out: Path, files: dict[str, str]) -> list[str]:
    """The names of ``files`` missing from ``out`` or different there."""
    return [name for name, text in files.items()
            if not (out / name).exists() or (out / name).read_text() != text]


def write_crds(out: Path, files: dict[str, str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).write_text(text)


# -- controller -------------------------------------------------------------------------------

def run_controller_command(
    *, kubeconfig: Path | None, namespace: str, password_secrets: tuple[str, ...],
    identity: str | None, lease_duration: float, health: tuple[str, int] | None,
    load_balancer_class: str | None, log_level: str, metrics: tuple[str, int] | None,
    gateway_api: bool,
    write_qps: float, write_burst: int, write_concurrency: int,
) -> None:
    """Run the controller until interrupted (leader election on a Lease in ``namespace``)."""
    from vipcast.app.controller import ControllerConfig, run_controller
    from vipcast.sources.kube.leader import ElectionConfig

    _log(log_level)
    election = ElectionConfig(namespace=namespace, lease_duration=lease_duration,
                              renew_deadline=lease_duration * 2 / 3,
                              retry_period=max(0.2, lease_duration / 7))
    config = ControllerConfig(election=election, load_balancer_class=load_balancer_class,
                              password_secrets=password_secrets, gateway_api=gateway_api,
                              write_qps=write_qps, write_burst=write_burst,
                              write_concurrency=write_concurrency)
    if identity is not None:
        config = replace(config, identity=identity)

    async def main() -> None:
        client = _client(kubeconfig, namespace)
        try:
            await run_controller(client, config, metrics, health)
        finally:
            await client.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


# -- speaker ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SpeakerCommand:
    """What ``vipcast speaker`` was given, parsed."""

    node: str
    kubeconfig: Path | None
    namespace: str
    password_secrets: tuple[str, ...]
    metrics: tuple[str, int] | None
    router_id: str | None
    state_dir: Path | None
    listen: tuple[tuple[str, int], ...]
    dataplane: bool
    membership_key: str
    node_liveness: bool
    suspicion_min: float | None
    load_balancer_class: str | None
    log_level: str
    gateway_workdir: Path | None
    gateway_admin_port: int
    gateway_concurrency: int | None
    frr_k8s_namespace: str | None
    drain_labels: tuple[str, ...] | None
    drain_taints: tuple[str, ...] | None
    drain_grace: float
    drain_quiet: float


def run_speaker_command(cmd: SpeakerCommand) -> int:
    """Run a node's speaker (the node code path of ``vipcast agent`` fed from the API) until
    stopped; the exit code."""
    from vipcast.app.agent_values import AgentOptions
    from vipcast.app.speaker import run_speaker

    _log(cmd.log_level)
    options = AgentOptions(config_paths=(), node=cmd.node, metrics_address=cmd.metrics,
                           router_id=cmd.router_id, state_dir=cmd.state_dir,
                           node_liveness=cmd.node_liveness, suspicion_min=cmd.suspicion_min,
                           drain_grace=cmd.drain_grace, drain_quiet=cmd.drain_quiet)
    if cmd.drain_labels is not None:
        options = replace(options, drain_labels=cmd.drain_labels)
    if cmd.drain_taints is not None:
        options = replace(options, drain_taints=cmd.drain_taints)
    if cmd.listen:
        options = replace(options, listen=cmd.listen)

    gateway = None
    if cmd.gateway_workdir is not None:
        from vipcast.app.envoy_gateway import found_settings

        gateway = found_settings(cmd.node, cmd.gateway_workdir, cmd.gateway_admin_port,
                                 cmd.gateway_concurrency)

    async def main() -> int:
        client = _client(cmd.kubeconfig, cmd.namespace)
        try:
            return await run_speaker(client, options, dataplane_enabled=cmd.dataplane,
                                     membership_key=cmd.membership_key.encode(),
                                     load_balancer_class=cmd.load_balancer_class,
                                     namespace=cmd.namespace,
                                     password_secrets=cmd.password_secrets,
                                     gateway=gateway,
                                     frr_k8s_namespaces=(cmd.frr_k8s_namespace,)
                                     if cmd.frr_k8s_namespace else ())
        finally:
            await client.close()

    return asyncio.run(main())


# -- webhook ----------------------------------------------------------------------------------

def run_webhook_command(
    *, kubeconfig: Path | None, tls_cert: Path, tls_key: Path, host: str, port: int,
    speaker_accounts: Sequence[str], log_level: str,
) -> None:
    """Serve the validating admission webhook (POST /validate) until interrupted;
    ``speaker_accounts`` are NAMESPACE:NAME of the speakers' ServiceAccounts."""
    from vipcast.sources.kube.webhook import WebhookServer

    _log(log_level)

    async def main() -> None:
        client = _client(kubeconfig, "default")
        speakers = [f"system:serviceaccount:{a}" for a in speaker_accounts]
        server = WebhookServer(client, tls_cert, tls_key, host, port, speakers=speakers)
        try:
            await server.start()
            await asyncio.Event().wait()
        finally:
            await server.stop()
            await client.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


# -- convert metallb --------------------------------------------------------------------------

def convert_metallb(paths: Sequence[Path]) -> tuple[Conversion, tuple[Issue, ...]]:
    """MetalLB objects (metallb.io) of ``paths`` as vipcast.io objects, with the issues
    vipcast's validation finds in the result (warnings: the conversion is still given).
    Raises :class:`vipcast.spec.SpecError` when the files cannot be read."""
    from vipcast.sources.files import read_documents
    from vipcast.sources.kube.metallb import convert
    from vipcast.spec import SpecError, load_documents

    docs = read_documents(paths)
    result = convert(d for _, d in docs if isinstance(d, dict))
    try:
        load_documents([("converted", d) for d in result.documents])
    except SpecError as error:
        return result, tuple(error.issues)
    return result, ()
