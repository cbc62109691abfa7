"""LoadBalancerProvider in the object model: loads, cross-checks name file/object/field."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from vipcast.spec import SpecError, load_documents

BASE = """
apiVersion: vipcast.io/v1beta1
kind: IPAddressPool
metadata: {name: appliance}
spec: {addresses: ["198.51.100.0/28"], autoAssign: false}
---
apiVersion: vipcast.io/v1beta1
kind: IPAddressPool
metadata: {name: general}
spec: {addresses: ["203.0.113.0/28"]}
---
apiVersion: v1
kind: Secret
metadata: {name: os-cred, namespace: vipcast-system}
stringData: {auth_url: "https://keystone.example:5000/v3", application_credential_id: ac1,
             application_credential_secret: abc}
"""


def load(extra: str):  # type: ignore[no-untyped-def]
    text = BASE + "---\n" + textwrap.dedent(extra)
    return load_documents([("cfg.yaml", d) for d in yaml.safe_load_all(text)])


def messages(extra: str) -> list[str]:
    with pytest.raises(SpecError) as err:
        load(extra)
    return [str(i) for i in err.value.issues]


def test_a_provider_loads_with_its_default_class() -> None:
    spec = load("""
        apiVersion: vipcast.io/v1beta1
        kind: LoadBalancerProvider
        metadata: {name: haproxy}
        spec:
          driver: haproxy
          endpoint: file:///var/lib/vipcast-haproxy
          options: {members: pods, proxyProtocol: true, addressPools: [appliance],
                    healthCheck: {interval: 2s}}
    """)
    (prov,) = spec.providers
    assert prov.load_balancer_class == "vipcast.io/haproxy"
    assert prov.spec.options.health_check.interval == 2.0
    assert spec.provider_for("vipcast.io/haproxy") is prov
    assert spec.provider_for(None) is None
    assert spec.provider_for("vipcast.io/vipcast") is None


def test_octavia_with_secret_and_explicit_class() -> None:
    spec = load("""
        apiVersion: vipcast.io/v1beta1
        kind: LoadBalancerProvider
        metadata: {name: openstack}
        spec:
          driver: octavia
          endpoint: http://127.0.0.1:9876
          loadBalancerClass: openstack.example/octavia
          credentialsSecret: {name: os-cred, namespace: vipcast-system}
          options: {vipSubnetId: 7f1c0b4e-0000-4000-8000-000000000001}
    """)
    assert spec.providers[0].load_balancer_class == "openstack.example/octavia"
    from vipcast.spec.checks import credential_problems
    assert credential_problems(spec) == []


@pytest.mark.parametrize(("doc", "expected"), [
    ("spec: {driver: haproxy, endpoint: 'http://lb:80'}",
     "cfg.yaml:LoadBalancerProvider/p:spec: the haproxy driver's endpoint"),
    ("spec: {driver: f5, endpoint: 'http://lb'}", "LoadBalancerProvider/p:spec.driver:"),
    ("spec: {driver: as3, endpoint: 'ftp://lb'}", "is not a file://, http:// or https:// URL"),
    ("spec: {driver: as3, endpoint: 'https://lb', loadBalancerClass: vipcast.io/vipcast}",
     "spec.loadBalancerClass"),
    ("spec: {driver: as3, endpoint: 'https://lb', options: {proxyProtocol: true, "
     "forwardedFor: true}}", "proxyProtocol and forwardedFor exclude each other"),
    ("spec: {driver: as3, endpoint: 'https://lb', options: {addressPools: [nope]}}",
     "LoadBalancerProvider/p:spec.options.addressPools[0]: unknown pool 'nope'"),
    ("spec: {driver: as3, endpoint: 'https://lb', options: {addressPools: [general]}}",
     "pool general must have autoAssign: false"),
    ("spec: {driver: octavia, endpoint: 'http://127.0.0.1:9876'}",
     "spec.options: the octavia driver needs vipSubnetId or vipNetworkId"),
    ("spec: {driver: as3, endpoint: 'https://lb', options: {colour: red}}",
     "spec.options.colour: Extra inputs are not permitted"),
])
def test_bad_providers_are_named(doc: str, expected: str) -> None:
    found = messages(f"apiVersion: vipcast.io/v1beta1\nkind: LoadBalancerProvider\n"
                     f"metadata: {{name: p}}\n{doc}\n")
    assert any(expected in m for m in found), found


def test_two_providers_cannot_serve_one_class_or_share_a_pool() -> None:
    found = messages("""
        apiVersion: vipcast.io/v1beta1
        kind: LoadBalancerProvider
        metadata: {name: a}
        spec: {driver: as3, endpoint: 'https://a', loadBalancerClass: x.io/lb,
               options: {addressPools: [appliance]}}
        ---
        apiVersion: vipcast.io/v1beta1
        kind: LoadBalancerProvider
        metadata: {name: b}
        spec: {driver: as3, endpoint: 'https://b', loadBalancerClass: x.io/lb,
               options: {addressPools: [appliance]}}
    """)
    assert any("LoadBalancerProvider/b:spec.loadBalancerClass: class x.io/lb is also served by "
               "LoadBalancerProvider a" in m for m in found), found
    assert any("pool appliance is also used by LoadBalancerProvider a" in m for m in found)


def test_a_missing_credentials_secret_stops_that_provider_not_the_config() -> None:
    """Issue 16's rule for Secrets: vipcast's controller and speakers never read a provider's
    credentials, so a missing one must not invalidate the whole config (it stopped every
    allocation in a cluster); the provider's own controller and `providers sync` report it."""
    from vipcast.spec import load_documents
    from vipcast.spec.checks import credential_problems

    doc = {"apiVersion": "vipcast.io/v1beta1", "kind": "LoadBalancerProvider",
           "metadata": {"name": "p"},
           "spec": {"driver": "as3", "endpoint": "https://lb",
                    "credentialsSecret": {"name": "missing"}}}
    spec = load_documents([("cfg.yaml", doc)])
    found = [str(i) for i in credential_problems(spec)]
    assert any("spec.credentialsSecret: Secret default/missing with key 'password' not found"
               in m for m in found), found


def _octavia_with(secret: dict[str, str] | None) -> list[str]:
    from vipcast.spec.checks import credential_problems

    docs: list[dict[str, object]] = [
        {"apiVersion": "vipcast.io/v1beta1", "kind": "LoadBalancerProvider",
         "metadata": {"name": "openstack"},
         "spec": {"driver": "octavia", "endpoint": "https://octavia.example:9876",
                  "credentialsSecret": {"name": "os-cred", "namespace": "vipcast-system"},
                  "options": {"vipSubnetId": "7f1c0b4e-0000-4000-8000-000000000001"}}}]
    if secret is not None:
        docs.append({"apiVersion": "v1", "kind": "Secret",
                     "metadata": {"name": "os-cred", "namespace": "vipcast-system"},
                     "stringData": secret})
    spec = load_documents([("cfg.yaml", d) for d in docs])
    return [str(i) for i in credential_problems(spec)]


APP = {"auth_url": "https://keystone.example:5000/v3", "application_credential_id": "ac1",
       "application_credential_secret": "s3cr3t"}


@pytest.mark.parametrize(("secret", "expected"), [
    (None, "Secret vipcast-system/os-cred not found"),
    ({"token": "abc"}, "key 'token' is not a Keystone auth field"),
    ({**APP, "aplication_credential_id": "x"},
     "key 'aplication_credential_id' is not a Keystone auth field"),
    ({"application_credential_id": "ac1", "application_credential_secret": "s"},
     "key 'auth_url' is missing"),
    ({**APP, "auth_url": "keystone:5000"}, "auth_url 'keystone:5000' is not an http(s):// URL"),
    ({"auth_url": APP["auth_url"], "application_credential_id": "ac1"},
     "application_credential_secret is missing"),
    ({**APP, "password": "p"}, "password and application_credential_* exclude each other"),
    ({"auth_url": APP["auth_url"], "username": "u", "password": "p"},
     "project_name (or project_id) is missing"),
    ({"auth_url": APP["auth_url"], "username": "u", "project_name": "p"},
     "password is missing"),
])
def test_a_bad_keystone_secret_is_named_with_its_key(secret: dict[str, str] | None,
                                                     expected: str) -> None:
    (problem,) = _octavia_with(secret)
    assert problem.startswith("cfg.yaml:LoadBalancerProvider/openstack:spec.credentialsSecret:")
    assert expected in problem, problem
    assert "s3cr3t" not in problem


def test_keystone_credentials_from_a_secret() -> None:
    from vipcast.spec.keystone import keystone_credential
    from vipcast.spec.kube import Secret

    assert _octavia_with(APP) == []
    app = keystone_credential(Secret.model_validate(
        {"metadata": {"name": "c"}, "stringData": {**APP, "region_name": "RegionTwo"}}))
    assert app.auth_type == "v3applicationcredential" and app.region_name == "RegionTwo"
    assert app.auth() == APP
    assert app.describe() == "application credential ac1"
    pw = keystone_credential(Secret.model_validate(
        {"metadata": {"name": "c"}, "stringData": {"auth_url": APP["auth_url"],
                                                   "username": "lb", "password": "p",
                                                   "project_name": "k8s"}}))
    assert pw.auth_type == "v3password"
    assert pw.auth() == {"auth_url": APP["auth_url"], "username": "lb", "password": "p",
                         "project_name": "k8s", "user_domain_name": "Default",
                         "project_domain_name": "Default"}
    assert pw.describe() == "user lb in project k8s"
