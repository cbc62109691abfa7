"""The providers controller on the real API server driving the REAL Octavia API server that
authenticates with the REAL Keystone (tests/providers/keystone_api.py, octavia_api.py): a
wrong credential in the provider's Secret is a condition and an Event on the Service naming
the provider and saying authentication failed, with nothing created in Octavia and no
address in the status; the Secret fixed, the next pass creates the load balancer in the
credential's project and writes its VIP; the Service deleted, the LB goes and the finalizer
lets the Service go."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube.resources.core_v1 import Event, Node, Secret, Service
from lightkube.types import PatchType

from vipcast.app.provider_controller import ProviderController
from vipcast.sources.kube.provider_status import EXTERNAL_LB, FINALIZER

from .conftest import run
from .harness.cluster import Cluster
from .kubetools import client
from .provider_objects import (
    Provider,
    condition,
    create_ready_node,
    delete_cluster_scoped,
    provider,
    provider_service,
    release_service,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "providers"))
from keystone_api import MISSING as KEYSTONE_MISSING
from keystone_api import KeystoneAPI
from octavia_api import MISSING as OCTAVIA_MISSING
from octavia_api import SUBNET, OctaviaAPI, with_keystone

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def octavia(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OctaviaAPI, KeystoneAPI]]:
    for missing in (KEYSTONE_MISSING, OCTAVIA_MISSING):
        if missing:
            pytest.skip(missing)
    with with_keystone(tmp_path_factory.mktemp("keystone"),
                       tmp_path_factory.mktemp("octavia")) as both:
        yield both


def _live(api: OctaviaAPI) -> dict[str, object]:
    api.settle()
    return {str(n): p for n, p in api.rows(
        "SELECT name, project_id FROM load_balancer WHERE provisioning_status != 'DELETED'")}


def test_a_wrong_keystone_credential_is_named_on_the_service(
        vipcast_crds: Cluster, namespace: str, octavia: tuple[OctaviaAPI, KeystoneAPI]) -> None:
    api, keystone = octavia
    assert keystone.seed is not None
    seed = keystone.seed
    name = f"os-{namespace}"

    def secret(value: str) -> dict[str, Any]:
        return {"auth_url": keystone.url, "application_credential_id": seed.app_credential_id,
                "application_credential_secret": value}

    async def go() -> None:
        c = client(vipcast_crds.kubeconfig, namespace)
        ctl = ProviderController(c, namespace)
        lb = f"kube_service_c1_{namespace}_web"
        try:
            await create_ready_node(c, f"k-{namespace}", "10.0.0.3")
            await c.create(Secret.from_dict({
                "metadata": {"name": "os-cred", "namespace": namespace},
                "stringData": secret("wrong-secret-in-the-cluster")}))
            await c.create(provider(name, "octavia", api.url,
                                    {"vipSubnetId": SUBNET, "clusterName": "c1"},
                                    secret=("os-cred", namespace)))
            await c.create(provider_service("web", namespace, name))

            result = await ctl.reconcile()
            assert result.ensured == [] and result.retry_after is not None
            got = (await c.get(Service, "web", namespace=namespace)).to_dict()
            cond = condition(got, EXTERNAL_LB)
            assert cond["status"] == "False" and cond["reason"] == "BadCredential", cond
            for text in (f"LoadBalancerProvider {name} (octavia)", "authentication failed",
                         keystone.url, f"application credential {seed.app_credential_id}",
                         "nothing was changed"):
                assert text in cond["message"], cond["message"]
            events = [e async for e in c.list(Event, namespace=namespace)
                      if e.involvedObject.name == "web" and e.reason == "SyncLoadBalancerFailed"]
            assert events and "authentication failed" in (events[0].message or "")
            assert f"LoadBalancerProvider {name}" in (events[0].message or "")
            assert "wrong-secret-in-the-cluster" not in cond["message"] + str(events[0].message)
            assert not (got["status"].get("loadBalancer") or {}).get("ingress")
            assert FINALIZER in got["metadata"]["finalizers"]
            assert _live(api) == {}

            # the Secret fixed: the next pass makes the LB in the credential's project
            await c.patch(Secret, "os-cred", {"stringData": secret(seed.app_credential_secret)},
                          namespace=namespace, patch_type=PatchType.MERGE)
            result = await ctl.reconcile()
            assert result.ensured == [lb], result
            got = (await c.get(Service, "web", namespace=namespace)).to_dict()
            assert condition(got, EXTERNAL_LB)["reason"] == "Ensured"
            (ingress,) = got["status"]["loadBalancer"]["ingress"]
            assert ingress["ip"] and ingress["ipMode"] == "VIP"
            assert _live(api) == {lb: seed.vipcast_project}

            await c.delete(Service, "web", namespace=namespace)
            result = await ctl.reconcile()
            assert result.deleted == [lb] and result.released == [f"{namespace}/web"]
            assert _live(api) == {}
        finally:
            await release_service(c, "web", namespace)
            await delete_cluster_scoped(c, (Provider, name), (Node, f"k-{namespace}"))
            await c.close()
    run(go(), timeout=300)
