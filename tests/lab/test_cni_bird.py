"""The lab's CNI BIRD (calico-node's policy in BIRD 2) and the snippet vipcast ships for it.

No namespaces: the rendered configurations are checked by BIRD itself (``bird -p``), the
shipped snippet is the one docs/cni.md prints and the one the lab includes, and the lab's
objects for ``--cni bird`` pass check-config (coexistence ThroughDaemon beside a CNISpeaker).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from vipcast.app.lab.cni import CoexistMode, speaker_of, write_empty_handoff_files
from vipcast.app.lab.topology import LabOptions, node_cni_config, write_objects
from vipcast.lab.cni_bird import HANDOFF_SNIPPET, VIPCAST_SNIPPET, render_cni_bird
from vipcast.sources.files import load_paths
from vipcast.spec.cni_checks import check_cni

REPO = Path(__file__).resolve().parents[2]
needs_bird = pytest.mark.skipif(shutil.which("bird") is None,
                                reason="BIRD 2 is not installed (scripts/setup.sh installs it)")


@needs_bird
@pytest.mark.parametrize("coexist", ["daemon", "handoff", "separate"])
def test_bird_accepts_the_rendered_node_config(tmp_path: Path, coexist: CoexistMode) -> None:
    opts = LabOptions(nodes=3, cni="bird", coexist=coexist, workdir=tmp_path)
    cfg = node_cni_config(opts, 2)
    if coexist == "handoff":  # the file the agent writes must exist: the lab writes it empty
        write_objects(opts, tmp_path / "config")
        write_empty_handoff_files(tmp_path / "config", 3)
    conf = tmp_path / "bird.conf"
    conf.write_text(render_cni_bird(cfg, tmp_path / "bird.log"))
    done = subprocess.run(["bird", "-p", "-c", str(conf)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr + conf.read_text()
    text = conf.read_text()
    # calico's policy: the node's block exported, anything beneath it rejected, then the pool
    assert "if ( net = 10.244.2.0/24 ) then { accept; }" in text
    assert "if ( net ~ 10.244.2.0/24 ) then { reject; }" in text
    assert "protocol bgp Global_198_18_0_1 from bgp_template" in text
    assert ("vipcast_export();" in text) is (coexist == "daemon")
    assert (f'include "{VIPCAST_SNIPPET}";' in text) is (coexist == "daemon")
    assert ("vipcast_handoff_export();" in text) is (coexist == "handoff")
    assert (f'include "{HANDOFF_SNIPPET}";' in text) is (coexist == "handoff")


def test_vipcast_export_comes_before_calicos_own_rules(tmp_path: Path) -> None:
    text = render_cni_bird(node_cni_config(LabOptions(nodes=1, cni="bird"), 1), tmp_path / "l")
    body = text[text.index("filter calico_export_to_bgp_peers4"):]
    assert body.index("vipcast_export();") < body.index("calico_aggr4();") < body.index("reject;")
    kernel = text[text.index("filter calico_kernel_programming4"):]
    assert kernel.index("vipcast_no_kernel();") < kernel.index("accept;")


@pytest.mark.parametrize("snippet", [VIPCAST_SNIPPET, HANDOFF_SNIPPET], ids=lambda p: p.name)
def test_the_shipped_snippets_are_the_documented_ones(snippet: Path) -> None:
    assert snippet.parent == REPO / "deploy/cni/bird"
    assert snippet.read_text() in (REPO / "docs/cni.md").read_text(), (
        f"docs/cni.md must print {snippet.name} as is")


@pytest.mark.parametrize(("coexist", "mode"), [("daemon", "ThroughDaemon"),
                                               ("handoff", "HandOff"),
                                               ("separate", "SeparateIdentity")])
def test_the_labs_objects_pass_check_config(tmp_path: Path, coexist: CoexistMode,
                                            mode: str) -> None:
    write_objects(LabOptions(nodes=3, cni="bird", coexist=coexist), tmp_path)
    spec = load_paths([tmp_path])
    assert check_cni(spec) == []
    peers = [p for p in spec.peers if p.spec.coexistence == mode]
    assert len(peers) == len(spec.peers) == 6
    if coexist == "daemon":
        assert {p.spec.peer_port for p in peers} == {1790}


def test_routes_are_told_apart_by_speaker() -> None:
    pools = ("192.0.2.0/27", "2001:db8:100::/120")
    assert speaker_of("192.0.2.3/32", pools) == "vipcast"
    assert speaker_of("2001:db8:100::/128", pools) == "vipcast"
    assert speaker_of("10.244.1.0/24", pools) == "cni"
    assert speaker_of("fd00:244:3::/64", pools) == "cni"
    assert speaker_of("198.51.100.0/24", pools) == "other"
