"""``vipcast lab up --appliance haproxy`` end to end: the object set synced from inside the
appliance namespace, the VIP learned by the router over BGP, requests answered with the
client's address in X-Forwarded-For; ``lab down`` leaves no namespace and no HAProxy."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from vipcast.app.lab.appliance import up
from vipcast.app.lab.topology import remove_workdir, teardown
from vipcast.lab.backends import http_load
from vipcast.lab.netns import Netns, Topology, leftovers, wait_until

pytestmark = [pytest.mark.netns, pytest.mark.e2e, pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("haproxy") is None,
    reason="needs root (network namespaces) and haproxy (scripts/setup.sh)")]


def test_lab_up_appliance() -> None:
    prefix = f"vc-{os.getpid()}-lu"
    # not under pytest's 0700 tmp_path: FRR's daemons run as user frr and must reach it
    workdir = Path(tempfile.mkdtemp(prefix=f"{prefix}-")) / "lab"
    workdir.parent.chmod(0o755)
    topo = None
    try:
        topo, state = up(workdir, prefix)
        assert state.options["vips"] == ["198.51.100.1"]
        client = Netns(f"{prefix}-client", "client", Topology.__new__(Topology))
        result = http_load(client, "http://198.51.100.1/", count=20, deadline=20.0)
        assert result.failed == 0 and result.clients == ("10.10.0.2",), result
        assert set(result.backends) == {"n1-8081", "n2-8081"}
        haproxy_pid = int((workdir / "haproxy" / "haproxy.pid").read_text().split()[0])
    finally:
        teardown(prefix, workdir)  # what `vipcast lab down` does
        if topo is not None:
            topo.close()  # reaps this process's handles of what teardown killed
        remove_workdir(workdir)
        shutil.rmtree(workdir.parent, ignore_errors=True)
    assert leftovers(prefix + "-") == []
    wait_until(lambda: not Path(f"/proc/{haproxy_pid}").exists(), timeout=60,
               what="HAProxy gone after lab down")
