"""Hostile tenant input never crashes and never floods (issue 16, "Bad input").

Whatever a Service owner puts in annotations, and whatever bytes a Secret holds, the tolerant
snapshot (``build_spec``), the peer password resolution, the health-check parser and the
conditions built from them return values: the bad object is left out or gets a condition,
never an exception out of the speaker's or the controller's round.
"""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from vipcast.app.agent import peer_settings
from vipcast.sources.kube.conditions import health_check_condition, password_condition
from vipcast.sources.kube.snapshot import build_spec
from vipcast.spec.checks import password_problems

TEXT = st.text(st.characters(codec="utf-8"), max_size=80)
ANNOTATION_KEYS = st.sampled_from([
    "vipcast.io/health-check", "vipcast.io/loadBalancerIPs", "vipcast.io/address-pool",
    "vipcast.io/allow-shared-ip", "metallb.universe.tf/loadBalancerIPs", "x/y"])
CONFIG = [
    {"apiVersion": "vipcast.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "p"},
     "spec": {"addresses": ["192.0.2.0/28"]}},
    {"apiVersion": "vipcast.io/v1beta1", "kind": "BGPPeer", "metadata": {"name": "tor"},
     "spec": {"myASN": 64513, "peerASN": 64512, "peerAddress": "198.18.0.1",
              "passwordSecret": {"name": "pw"}}},
]


def _service(annotations: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "t", "annotations": annotations},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}


@settings(max_examples=200, deadline=None)
@given(annotations=st.dictionaries(ANNOTATION_KEYS, TEXT, max_size=4),
       data=st.dictionaries(st.sampled_from(["password", "other"]),
                            st.one_of(TEXT, st.binary(max_size=100).map(
                                lambda b: base64.b64encode(b).decode())), max_size=2))
def test_hostile_annotations_and_secrets_give_values(annotations: dict[str, str],
                                                     data: dict[str, str]) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pw", "namespace": "v"},
              "data": data}
    outcome = build_spec({"IPAddressPool": [CONFIG[0]], "BGPPeer": [CONFIG[1]],
                          "Service": [_service(annotations)], "Secret": [secret]})
    assert outcome.spec is not None and not outcome.config_stale
    problems = password_problems(outcome.spec)
    settings_ = peer_settings(outcome.spec, "n1")
    assert bool(problems) != bool(settings_)  # a peer has a password or a problem, not both
    cond = password_condition(outcome.spec, outcome.spec.peers[0], "v", ["pw"])
    assert cond["status"] in ("True", "False") and len(cond["message"]) <= 1024
    if "vipcast.io/health-check" in annotations:
        health = health_check_condition(annotations["vipcast.io/health-check"])
        assert "\n" not in health["message"] and "\r" not in health["message"]
        assert len(health["message"]) <= 1024
