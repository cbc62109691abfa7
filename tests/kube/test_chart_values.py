"""The chart's values become the objects' fields and the programs' flags: replicas, class,
image, metrics, the controller's write rate, the speaker's suspicion floor; the vipcast objects
of the example values are a valid vipcast configuration."""

from __future__ import annotations

from vipcast.spec import load_documents

from .helm_chart import EXAMPLE_VALUES, group_by_kind, pod_spec, template


def test_values_drive_the_objects(helm_env: dict[str, str]) -> None:
    docs = template(helm_env, "--values", str(EXAMPLE_VALUES),
                    "--set", "controller.replicas=3", "--set", "loadBalancerClass=example/lb",
                    "--set", "metrics.enabled=false", "--set", "webhook.enabled=false",
                    "--set", "image.tag=9.9")
    by_kind = group_by_kind(docs)
    deployment = by_kind["Deployment"][0]
    assert deployment["spec"]["replicas"] == 3
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["controller"]
    assert "--load-balancer-class=example/lb" in containers[0]["args"]
    assert containers[0]["image"] == "vipcast:9.9"
    speaker = by_kind["DaemonSet"][0]["spec"]["template"]["spec"]["containers"][0]
    assert not any(a.startswith("--metrics") for a in speaker["args"])
    assert "ValidatingWebhookConfiguration" not in by_kind
    # the vipcast objects from the values are a valid configuration for vipcast itself
    ours = [d for d in docs if d["apiVersion"].startswith("vipcast.io/")]
    assert {d["kind"] for d in ours} == {"IPAddressPool", "BGPPeer", "BGPAdvertisement",
                                         "L2Advertisement", "BFDProfile", "Community"}
    spec = load_documents([("chart", d) for d in ours])
    assert [p.metadata.name for p in spec.pools] == ["default"]


def test_class_less_services_only_without_a_configured_class(helm_env: dict[str, str]
                                                             ) -> None:
    speaker = pod_spec(template(helm_env), "DaemonSet", "speaker")["containers"][0]
    assert not any(a.startswith("--load-balancer-class") for a in speaker["args"])
    speaker = pod_spec(template(helm_env, "--set", "loadBalancerClass=vipcast.io/vipcast"),
                       "DaemonSet", "speaker")["containers"][0]
    assert "--load-balancer-class=vipcast.io/vipcast" in speaker["args"]


def test_controller_write_rate_from_values(helm_env: dict[str, str]) -> None:
    """Issue 19: the status-write limit existed as flags only; the chart never set it."""
    controller = pod_spec(template(helm_env), "Deployment", "controller")["containers"][0]
    assert "--kube-api-qps=50" in controller["args"]
    assert "--kube-api-burst=100" in controller["args"]
    controller = pod_spec(template(helm_env, "--set", "controller.kubeApiQps=0",
                                   "--set", "controller.kubeApiBurst=7"),
                          "Deployment", "controller")["containers"][0]
    assert "--kube-api-qps=0" in controller["args"]
    assert "--kube-api-burst=7" in controller["args"]


def test_speaker_suspicion_floor_from_values(helm_env: dict[str, str]) -> None:
    """``speaker.suspicionMin`` becomes the speaker's ``--suspicion-min`` (docs/membership.md,
    "The suspicion floor"); unset, no flag (the speaker's default)."""
    speaker = pod_spec(template(helm_env), "DaemonSet", "speaker")["containers"][0]
    assert not [a for a in speaker["args"] if a.startswith("--suspicion-min")]
    speaker = pod_spec(template(helm_env, "--set", "speaker.suspicionMin=0.45"), "DaemonSet",
                       "speaker")["containers"][0]
    assert "--suspicion-min=0.45" in speaker["args"]
