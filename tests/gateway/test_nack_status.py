"""An Envoy refusal (NACK) on a node reaches the Gateways' status (issue 12), pure: the speaker
reports what its Envoy refuses in its NodeAnnouncement (``status.gateway.refused``), the
controller folds every live node's report into ``Programmed`` False, reason ``Invalid``, naming
the nodes and Envoy's error; no refusal, the status unchanged."""

from __future__ import annotations

from vipcast.core.gateway.model import Condition, GatewayStatus, with_node_refusals
from vipcast.sources.kube.announcements import (
    GatewayReport,
    NodeAnnouncementStatus,
    RefusedConfig,
    node_gateway_refusals,
    report_body,
)


def _gw(programmed: str = "True") -> GatewayStatus:
    return GatewayStatus("ns/gw", 1, ("192.0.2.1",), (
        Condition("Accepted", "True", "Accepted", ""),
        Condition("Programmed", programmed, "Programmed" if programmed == "True"
                  else "AddressNotAssigned", "")), ())


def _report(node: str, *refused: tuple[str, str]) -> dict[str, object]:
    status = NodeAnnouncementStatus(gateway=GatewayReport(refused=tuple(
        RefusedConfig(type=t, version="v1", message=m) for t, m in refused)))
    return report_body(node, status)


def test_the_nodes_refusals_fold_into_programmed_invalid_naming_nodes_and_error() -> None:
    reports = [_report("n1", ("Secret", "bad PEM")), _report("n2", ("Secret", "bad PEM")),
               _report("n3"), _report("gone", ("Listener", "old"))]
    refused = node_gateway_refusals(reports, {"n1", "n2", "n3"})
    assert refused == {"n1": "Secret: bad PEM", "n2": "Secret: bad PEM"}
    (gw,) = with_node_refusals((_gw(),), refused)
    programmed = next(c for c in gw.conditions if c.type == "Programmed")
    assert (programmed.status, programmed.reason) == ("False", "Invalid")
    assert programmed.message == ("Envoy on nodes n1, n2 refused the configuration: "
                                  "Secret: bad PEM (the last good configuration keeps serving)")
    # another condition, and a Gateway already not programmed, keep their reason
    assert next(c for c in gw.conditions if c.type == "Accepted").status == "True"
    (other,) = with_node_refusals((_gw("False"),), refused)
    assert next(c for c in other.conditions if c.type == "Programmed").reason == \
        "AddressNotAssigned"


def test_no_refusal_leaves_the_status_as_it_is() -> None:
    gws = (_gw(),)
    assert with_node_refusals(gws, node_gateway_refusals([_report("n1")], None)) is gws
    # a report without a gateway section (a node without Envoy), or a broken one: nothing
    assert node_gateway_refusals([report_body("n1", NodeAnnouncementStatus()),
                                  {"spec": {}, "status": {"gateway": 3}}]) == {}


def test_a_report_without_a_gateway_carries_no_gateway_field() -> None:
    """The CRD's ``gateway`` is an object: a node without Envoy sends none (not null, which
    the API server refuses, and the whole report with it)."""
    assert "gateway" not in report_body("n1", NodeAnnouncementStatus())["status"]
    assert report_body("n1", NodeAnnouncementStatus(gateway=GatewayReport()))["status"][
        "gateway"] == {"refused": []}
