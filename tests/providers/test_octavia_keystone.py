"""The Octavia driver with Keystone credentials, against the REAL Keystone and the REAL Octavia
API server with ``auth_strategy = keystone`` (its keystonemiddleware validates every token with
that Keystone; Octavia's policy and project quotas apply, which it skips under noauth).

The right credential (application credential, password) works and the load balancers belong
to its project; a wrong one, or one whose user may only read, is named -- "authentication
failed", which Keystone, which credential, never the secret -- and nothing changes; a project
quota met is a QUOTA retry, and a load balancer that could not be completed because of it is
deleted again (nothing half-made left)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import openstack
import pytest
import yaml
from harness_octavia import MONITOR, empty
from keystone_api import ADMIN_PASSWORD, PASSWORDS, KeystoneAPI
from lb_objects import node, service
from octavia_api import SUBNET, OctaviaAPI

from vipcast.core.external import DesiredLB, Listener, Member
from vipcast.providers.octavia.driver import OctaviaDriver
from vipcast.providers.port import Applied, Failure, Retry
from vipcast.spec.keystone import KeystoneCredential


def desired(name: str, *ports: int) -> DesiredLB:
    members = (Member("10.0.0.1", 30080, "n1"), Member("10.0.0.2", 30080, "n2"))
    listeners = tuple(Listener("TCP", p, members, MONITOR, (), "none", "ROUND_ROBIN",
                               f"default/{name}") for p in ports or (80,))
    return DesiredLB(name, (f"default/{name}",), None, listeners)


def app_credential(ks: KeystoneAPI, secret: str | None = None) -> KeystoneCredential:
    assert ks.seed is not None
    return KeystoneCredential(auth_url=ks.url,
                              application_credential_id=ks.seed.app_credential_id,
                              application_credential_secret=secret or
                              ks.seed.app_credential_secret)


def password(ks: KeystoneAPI, user: str, pw: str | None = None) -> KeystoneCredential:
    return KeystoneCredential(auth_url=ks.url, username=user, password=pw or PASSWORDS[user],
                              project_name="vipcast")


def driver(api: OctaviaAPI, credential: KeystoneCredential) -> OctaviaDriver:
    return OctaviaDriver(api.url, project_id=None, vip_subnet_id=SUBNET, credential=credential,
                         wait_timeout=20.0)


def live(api: OctaviaAPI) -> dict[str, tuple[object, ...]]:
    api.settle()
    return {str(r[0]): r[1:] for r in api.rows(
        "SELECT name, project_id, provisioning_status FROM load_balancer "
        "WHERE provisioning_status != 'DELETED'")}


def children(api: OctaviaAPI) -> tuple[int, ...]:
    return tuple(int(api.rows(f"SELECT COUNT(*) FROM {t}")[0][0])  # type: ignore[call-overload]
                 for t in ("listener", "pool", "member", "health_monitor"))


@pytest.fixture
def servers(octavia_keystone: tuple[OctaviaAPI, KeystoneAPI]
            ) -> Iterator[tuple[OctaviaAPI, KeystoneAPI]]:
    """The Keystone-authenticated Octavia and its Keystone; Octavia emptied -- every load
    balancer gone, checked (harness_octavia.empty) -- and the project's quotas reset after each
    test."""
    yield octavia_keystone
    octavia, keystone = octavia_keystone

    async def clean() -> None:
        drv = driver(octavia, app_credential(keystone))
        try:
            await empty(octavia, drv)
        finally:
            await drv.close()
    asyncio.run(clean())
    with admin(keystone, octavia) as conn:
        assert keystone.seed is not None
        conn.load_balancer.delete_quota(keystone.seed.vipcast_project)


@contextlib.contextmanager
def admin(ks: KeystoneAPI, api: OctaviaAPI) -> Iterator[openstack.connection.Connection]:
    """The cloud admin's openstacksdk connection to the Keystone-authenticated Octavia."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conn = openstack.connection.Connection(
            auth_url=ks.url, username="admin", password=ADMIN_PASSWORD, project_name="admin",
            user_domain_name="Default", project_domain_name="Default",
            load_balancer_endpoint_override=api.url)
    try:
        yield conn
    finally:
        conn.close()


def test_right_credentials_work_and_the_lb_belongs_to_their_project(
        servers: tuple[OctaviaAPI, KeystoneAPI]) -> None:
    octavia, keystone_api = servers
    assert keystone_api.seed is not None
    project = keystone_api.seed.vipcast_project

    async def main() -> None:
        for name, cred in (("ac", app_credential(keystone_api)),
                           ("pw", password(keystone_api, "vipcast"))):
            drv = driver(octavia, cred)
            try:
                first = await drv.ensure(desired(name))
                assert isinstance(first, Applied) and first.changes > 0, first
                again = await drv.ensure(desired(name))
                assert isinstance(again, Applied) and again.changes == 0, again
                assert live(octavia)[name] == (project, "ACTIVE")
                assert name in (await drv.names() or ())
            finally:
                await drv.close()
    asyncio.run(main())


def test_a_wrong_credential_is_named_and_changes_nothing(
        servers: tuple[OctaviaAPI, KeystoneAPI]) -> None:
    octavia, keystone_api = servers
    assert keystone_api.seed is not None

    async def main() -> None:
        good = driver(octavia, app_credential(keystone_api))
        assert isinstance(await good.ensure(desired("kept")), Applied)
        await good.close()
        before = (live(octavia), children(octavia))
        wrong_secret = "not-the-secret-" + "x" * 20
        cases = [(app_credential(keystone_api, wrong_secret),
                  f"application credential {keystone_api.seed.app_credential_id}"),
                 (password(keystone_api, "vipcast", "guess"), "user vipcast in project vipcast")]
        for cred, named in cases:
            drv = driver(octavia, cred)
            try:
                changed = desired("kept", 80, 443)  # would add a listener
                outcomes = [await drv.ensure(changed), await drv.ensure(desired("new")),
                            await drv.delete("kept"), await drv.names(),
                            await drv.get("kept")]
                for outcome in outcomes:
                    assert isinstance(outcome, Retry), outcome
                    assert outcome.failure is Failure.BAD_CREDENTIAL
                    assert "authentication failed" in outcome.message
                    assert keystone_api.url in outcome.message and named in outcome.message
                    assert "nothing was changed" in outcome.message
                    assert wrong_secret not in outcome.message and "guess" not in outcome.message
            finally:
                await drv.close()
        assert (live(octavia), children(octavia)) == before
    asyncio.run(main())


def test_a_credential_that_may_only_read_is_named(
        servers: tuple[OctaviaAPI, KeystoneAPI]) -> None:
    octavia, keystone_api = servers
    async def main() -> None:
        drv = driver(octavia, password(keystone_api, "watcher"))
        try:
            assert await drv.names() == ()  # reading is allowed
            outcome = await drv.ensure(desired("ro"))
            assert isinstance(outcome, Retry) and outcome.failure is Failure.BAD_CREDENTIAL
            assert "forbids" in outcome.message and "user watcher" in outcome.message
            assert "member" in outcome.message
        finally:
            await drv.close()
        assert "ro" not in live(octavia)
    asyncio.run(main())


def test_quota_met_is_a_quota_retry_and_leaves_nothing_half_made(
        servers: tuple[OctaviaAPI, KeystoneAPI]) -> None:
    octavia, keystone_api = servers
    assert keystone_api.seed is not None
    project = keystone_api.seed.vipcast_project

    async def main() -> None:
        drv = driver(octavia, app_credential(keystone_api))
        try:
            with admin(keystone_api, octavia) as conn:
                conn.load_balancer.update_quota(project, load_balancer=1, listener=3)
            assert isinstance(await drv.ensure(desired("one", 80)), Applied)
            # the load balancer quota: refused at once, nothing created
            outcome = await drv.ensure(desired("two", 80))
            assert isinstance(outcome, Retry) and outcome.failure is Failure.QUOTA, outcome
            assert "quota" in outcome.message.lower()
            assert "two" not in live(octavia)

            # a listener quota met half way: the new load balancer is deleted again
            with admin(keystone_api, octavia) as conn:
                conn.load_balancer.update_quota(project, load_balancer=2, listener=2)
            before = children(octavia)
            outcome = await drv.ensure(desired("two", 80, 443))
            assert isinstance(outcome, Retry) and outcome.failure is Failure.QUOTA, outcome
            assert "deleted again" in outcome.message
            assert set(live(octavia)) == {"one"} and children(octavia) == before
            assert drv.creates == 2  # "one", then "two" once (not retried inside the call)

            # the quota raised: the next pass makes it, whole
            with admin(keystone_api, octavia) as conn:
                conn.load_balancer.update_quota(project, load_balancer=2, listener=4)
            done = await drv.ensure(desired("two", 80, 443))
            assert isinstance(done, Applied), done
            assert set(live(octavia)) == {"one", "two"}
        finally:
            await drv.close()
    asyncio.run(main())


def test_providers_sync_names_the_provider_and_the_failed_authentication(
        servers: tuple[OctaviaAPI, KeystoneAPI], tmp_path: Path) -> None:
    """`vipcast providers sync` from files (the provider, its Secret, a Service, a node): the
    wrong Secret -> exit 1, the provider and "authentication failed" named, no traceback,
    nothing created; the Secret fixed -> the load balancer, in the credential's project."""
    octavia, keystone = servers
    assert keystone.seed is not None

    def files(secret: str) -> Path:
        cred = {"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "os-cred", "namespace": "default"},
                "stringData": {"auth_url": keystone.url,
                               "application_credential_id": keystone.seed.app_credential_id,
                               "application_credential_secret": secret}}
        prov = {"apiVersion": "vipcast.io/v1beta1", "kind": "LoadBalancerProvider",
                "metadata": {"name": "openstack"},
                "spec": {"driver": "octavia", "endpoint": octavia.url,
                         "credentialsSecret": {"name": "os-cred"},
                         "options": {"vipSubnetId": SUBNET}}}
        docs = [prov, cred, node("n1", "10.0.0.1"),
                service("web", [(80, "TCP", 30080)], cls="vipcast.io/openstack")]
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump_all(docs))
        return path

    def sync(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "vipcast.cli.main", "providers", "sync",
                               str(path)], capture_output=True, text=True, timeout=300,
                              check=False)

    wrong = sync(files("wrong-secret-for-the-test"))
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    assert "Traceback" not in wrong.stderr, wrong.stderr
    assert "provider openstack:" in wrong.stdout
    assert "BadCredential: authentication failed: Keystone" in wrong.stdout, wrong.stdout
    assert "wrong-secret-for-the-test" not in wrong.stdout + wrong.stderr
    assert live(octavia) == {}

    right = sync(files(keystone.seed.app_credential_secret))
    assert right.returncode == 0, right.stdout + right.stderr
    lb = "kube_service_kubernetes_default_web"
    assert f"ensured {lb}" in right.stdout
    assert live(octavia) == {lb: (keystone.seed.vipcast_project, "ACTIVE")}
