"""BGP password Secrets (pure): a missing or hostile Secret stops that peer only.

Reproduces issue 16: a peer naming a ``passwordSecret`` was denied by the webhook and made the
controller build no spec at all; a Secret whose data is not base64 or not UTF-8 raised
something other than ``SpecError`` (the speaker crashed).
"""

from __future__ import annotations

import base64
from typing import Any

from vipcast.app.agent import peer_settings
from vipcast.sources.kube.admission import review
from vipcast.sources.kube.conditions import PASSWORD_RESOLVED, password_condition
from vipcast.sources.kube.snapshot import build_spec
from vipcast.spec.checks import password_problems

NS = "lb-system"


def _peer(name: str = "tor", secret: str = "tor-pw", key: str = "password") -> dict[str, Any]:
    return {"apiVersion": "vipcast.io/v1beta1", "kind": "BGPPeer", "metadata": {"name": name},
            "spec": {"myASN": 64513, "peerASN": 64512, "peerAddress": "198.18.0.1",
                     "passwordSecret": {"name": secret, "key": key}}}


def _secret(data: dict[str, str], name: str = "tor-pw") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": NS}, "data": data}


def _objects(*secrets: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {
        "IPAddressPool": [{"apiVersion": "vipcast.io/v1beta1", "kind": "IPAddressPool",
                           "metadata": {"name": "p"}, "spec": {"addresses": ["192.0.2.0/28"]}}],
        "BGPPeer": [_peer()],
        "Secret": list(secrets),
    }


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_missing_secret_keeps_the_config_and_stops_only_that_peer() -> None:
    outcome = build_spec(_objects())
    assert outcome.spec is not None and not outcome.config_stale
    assert [p.name for p in outcome.spec.peers] == ["tor"]
    problems = password_problems(outcome.spec)
    assert [(i.obj, i.field) for i in problems] == [("BGPPeer/tor", "spec.passwordSecret")]
    assert "tor-pw not found" in problems[0].message
    # no session without its password (a session without MD5 would only be refused)
    assert peer_settings(outcome.spec, "n1") == ()
    cond = password_condition(outcome.spec, outcome.spec.peers[0], NS, ["tor-pw"])
    assert (cond["type"], cond["status"], cond["reason"]) == (PASSWORD_RESOLVED, "False",
                                                              "SecretNotUsable")


def test_secret_resolves_the_password() -> None:
    outcome = build_spec(_objects(_secret({"password": _b64(b"s3cret")})))
    assert outcome.spec is not None
    assert password_problems(outcome.spec) == []
    (settings,) = peer_settings(outcome.spec, "n1")
    assert settings.transport.md5_password == "s3cret"
    cond = password_condition(outcome.spec, outcome.spec.peers[0], NS, ["tor-pw"])
    assert cond["status"] == "True"


def test_not_base64_is_an_issue_on_the_secret_not_a_crash() -> None:
    outcome = build_spec(_objects(_secret({"password": "%%% not base64 %%%"})))
    assert outcome.spec is not None and not outcome.config_stale
    assert outcome.dropped == (f"Secret/{NS}/tor-pw",)
    assert any("not valid base64" in i.message for i in outcome.issues)
    assert "not found" in password_problems(outcome.spec)[0].message


def test_not_utf8_is_a_peer_problem_not_a_crash() -> None:
    outcome = build_spec(_objects(_secret({"password": _b64(b"\xff\xfe\x00")})))
    assert outcome.spec is not None
    (problem,) = password_problems(outcome.spec)
    assert "not UTF-8" in problem.message
    assert peer_settings(outcome.spec, "n1") == ()


def test_missing_key_and_oversized_password_are_peer_problems() -> None:
    outcome = build_spec(_objects(_secret({"other": _b64(b"x")})))
    assert outcome.spec is not None
    assert "no key 'password'" in password_problems(outcome.spec)[0].message
    outcome = build_spec(_objects(_secret({"password": _b64(b"x" * 81)})))
    assert outcome.spec is not None
    assert "1 to 80 bytes" in password_problems(outcome.spec)[0].message


def test_webhook_allows_a_peer_whose_secret_it_cannot_see() -> None:
    peer = _peer()
    out = review({"request": {"uid": "u", "kind": {"kind": "BGPPeer"}, "operation": "CREATE",
                              "name": "tor", "object": peer}}, {})
    assert out["response"]["allowed"] is True, out


def test_a_providers_unreadable_credentials_do_not_stop_allocation() -> None:
    """vipcast's controller never reads a LoadBalancerProvider's credentials Secret; with the
    Secret check in the whole-config check, one provider made every controller round give no
    spec (seen on the shared test cluster: every later test's allocation stopped)."""
    provider = {"apiVersion": "vipcast.io/v1beta1", "kind": "LoadBalancerProvider",
                "metadata": {"name": "f5"},
                "spec": {"driver": "as3", "endpoint": "https://lb",
                         "credentialsSecret": {"name": "f5", "namespace": "elsewhere"}}}
    outcome = build_spec({**_objects(_secret({"password": _b64(b"s3cret")})),
                          "LoadBalancerProvider": [provider]})
    assert outcome.spec is not None and not outcome.config_stale, outcome.issues
