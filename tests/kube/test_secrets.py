"""BGP password Secrets against the real API server (issue 16).

Before: the controller built no spec while a BGPPeer named a Secret (it never watched Secrets),
the speaker read Secrets of ``vipcast-system`` only, whatever namespace it ran in, and listed
every Secret there. Now: the controller keeps allocating, writes ``vipcast.io/PasswordResolved``
on the peer, and both read only the named Secrets of their own namespace.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from typing import Any

import pytest
from lightkube.generic_resource import create_global_resource
from lightkube.resources.core_v1 import Secret

from vipcast.app.agent import AgentOptions
from vipcast.app.controller import Controller, ControllerConfig
from vipcast.app.speaker import KubeAgent
from vipcast.sources.kube.conditions import PASSWORD_RESOLVED
from vipcast.sources.kube.leader import ElectionConfig

from .conftest import run
from .harness.cluster import Cluster
from .kubetools import IPAddressPool, client, eventually, ingress_ips, lb_service, pool

pytestmark = pytest.mark.slow
BGPPeer = create_global_resource("vipcast.io", "v1beta1", "BGPPeer", "bgppeers")


def _peer(name: str, secret: str) -> Any:
    return BGPPeer.from_dict({
        "apiVersion": "vipcast.io/v1beta1", "kind": "BGPPeer", "metadata": {"name": name},
        "spec": {"myASN": 64513, "peerASN": 64512, "peerAddress": "127.0.0.2",
                 "passwordSecret": {"name": secret},
                 "nodeSelectors": [{"matchLabels": {"kubernetes.io/hostname": name}}]}})


def _secret(name: str, namespace: str, password: bytes) -> Secret:
    return Secret.from_dict({"metadata": {"name": name, "namespace": namespace},
                             "data": {"password": base64.b64encode(password).decode()}})


def test_controller_reports_the_secret_on_the_peer(vipcast_crds: Cluster, namespace: str
                                                   ) -> None:
    peer_name = f"tor-{namespace}"

    async def condition(c: Any) -> dict[str, Any] | None:
        peer = (await c.get(BGPPeer, peer_name)).to_dict()
        conds = (peer.get("status") or {}).get("conditions") or ()
        return next((x for x in conds if x["type"] == PASSWORD_RESOLVED), None)

    async def go() -> None:
        c = client(vipcast_crds.kubeconfig, namespace)
        await c.create(pool(f"p-{namespace}", ["198.51.100.40/30"], namespace))
        await c.create(_peer(peer_name, "tor-pw"))
        await c.create(lb_service("web", namespace))
        # the controller runs in `namespace` (not vipcast-system) and may read tor-pw only
        ctl = Controller(c, ControllerConfig(
            identity="sec", election=ElectionConfig(name=f"sec-{namespace}",
                                                    namespace=namespace, lease_duration=2,
                                                    renew_deadline=1.5, retry_period=0.2),
            resync=2, debounce=0.02, password_secrets=("tor-pw",)))
        task = asyncio.create_task(ctl.run())
        try:
            # a missing Secret no longer stops allocation for everyone
            await eventually(lambda: ingress_ips(c, "web", namespace), 30, what="an IP")

            async def missing() -> bool:
                cond = await condition(c)
                return bool(cond and cond["status"] == "False"
                            and "tor-pw not found" in cond["message"])

            await eventually(missing, 30, what="PasswordResolved=False on the peer")
            await c.create(_secret("other", namespace, b"not ours"))
            await c.create(_secret("tor-pw", namespace, b"s3cret"))

            async def resolved() -> bool:
                cond = await condition(c)
                return bool(cond and cond["status"] == "True")

            await eventually(resolved, 30, what="PasswordResolved=True on the peer")
            secrets = [o for r in ctl.reflectors if r.kind == "Secret" for o in r.snapshot()]
            assert [s["metadata"]["name"] for s in secrets] == ["tor-pw"]
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await c.delete(IPAddressPool, f"p-{namespace}")
            await c.delete(BGPPeer, peer_name)
            await c.close()

    run(go(), 90)


def test_speaker_reads_only_its_named_secrets_in_its_namespace(vipcast_crds: Cluster,
                                                               namespace: str) -> None:
    node = f"tor-{namespace}"  # the peer selects this node

    async def go() -> None:
        c = client(vipcast_crds.kubeconfig, namespace)
        await c.create(_peer(node, "tor-pw"))
        await c.create(_secret("tor-pw", namespace, b"s3cret"))
        await c.create(_secret("other", namespace, b"not ours"))
        agent = KubeAgent(c, AgentOptions(config_paths=(), node=node), report=False,
                          namespace=namespace, password_secrets=("tor-pw",))
        tasks = [asyncio.create_task(r.run()) for r in agent.reflectors]
        try:
            for r in agent.reflectors:
                await asyncio.wait_for(r.synced.wait(), 30)

            async def password() -> str | None:
                desired = agent.load()
                return next((p.transport.md5_password for p in desired.peers), None)

            assert await eventually(password, 20, what="the peer's password") == "s3cret"
            secrets = [o for r in agent.reflectors if r.kind == "Secret" for o in r.snapshot()]
            assert [(s["metadata"]["namespace"], s["metadata"]["name"]) for s in secrets] == [
                (namespace, "tor-pw")]
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await c.delete(BGPPeer, node)
            await c.close()

    run(go(), 60)
