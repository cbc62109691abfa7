"""vipcast convert metallb: MetalLB objects become valid vipcast objects, drops are noted."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from vipcast.cli.main import app
from vipcast.sources.kube.metallb import convert
from vipcast.spec import load_documents

DATA = Path(__file__).with_name("data") / "metallb.yaml"


def test_convert_gives_a_valid_config() -> None:
    result = convert(yaml.safe_load_all(DATA.read_text()))
    kinds = [d["kind"] for d in result.documents]
    assert kinds == ["IPAddressPool", "BGPPeer", "BGPAdvertisement", "L2Advertisement",
                     "BFDProfile"]
    assert all(d["apiVersion"] == "vipcast.io/v1beta1" for d in result.documents)
    assert all("namespace" not in d["metadata"] for d in result.documents)
    peer = result.documents[1]["spec"]
    assert peer["gracefulRestart"] is True and "vrf" not in peer
    assert peer["passwordSecret"] == {"name": "tor-pw", "namespace": "vipcast-system",
                                      "key": "password"}
    notes = "\n".join(result.notes)
    assert "spec.vrf (VRFs are not supported" in notes
    assert "spec.echoMode" in notes
    assert "ServiceL2Status" in notes
    secret = {"apiVersion": "v1", "kind": "Secret",
              "metadata": {"name": "tor-pw", "namespace": "vipcast-system"},
              "stringData": {"password": "s3cret"}}
    spec = load_documents([("converted", d) for d in (*result.documents, secret)])
    assert spec.pools[0].spec.service_allocation is not None
    assert spec.pools[0].metadata.labels == {"tier": "prod"}


def test_cli_writes_yaml(tmp_path: Path) -> None:
    out = tmp_path / "vipcast.yaml"
    res = CliRunner().invoke(app, ["convert", "metallb", str(DATA), "--out", str(out)])
    assert res.exit_code == 0, res.output
    docs = list(yaml.safe_load_all(out.read_text()))
    assert len(docs) == 5
