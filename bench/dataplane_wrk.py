"""Data-plane benchmark: HTTP through the VIP vs straight to the backend, and table apply times.

Run as root: ``.venv/bin/python bench/dataplane_wrk.py [--duration 5] [--json OUT]``.

1. Throughput (wrk, bounded: ``-d DURATION -c 16 -t 2``) from the client namespace, in the same
   run and against the same echo backend: (a) straight to the backend (routed through the
   router and the node, no NAT), (b) through the VIP with that backend as the only one
   (``Local`` policy: DNAT only), (c) through the VIP spread over all three backends. The
   ratio b/a is the data plane's cost (goal >= 0.9). Runs alternate a/b to share the noise.
2. Apply times in a fresh namespace for 1,000 services x 10 backends: render, first apply,
   re-apply from the remembered table (no read-back, no transaction), re-apply with a read-back
   (the periodic outside-edit check), the agent's identical-plan path (nothing rendered), and
   changing one backend (render + patch; also with a read-back first, as without the cache).

All traffic stays inside this run's namespaces (prefix ``vc-<pid>``); everything is torn down in
``finally``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "dataplane"))

from dp_lab import BACKEND_PORT, VIP4, TrafficLab, build_traffic_lab
from dp_plans import scale_rules

from vipcast.core.desired import Backend, NatRule, NodePlan
from vipcast.dataplane.nft import NftTable
from vipcast.dataplane.nft_render import render
from vipcast.dataplane.node import NodeDataplane
from vipcast.dataplane.routes import LocalVips
from vipcast.lab.netns import Netns, Topology, wait_until


def _numbers(text: str) -> list[str]:
    return re.findall(r"\d+", text)


def wrk(lab: TrafficLab, url: str, duration: int) -> dict[str, float]:
    return wrk_in(lab.client, url, duration)


def wrk_in(ns: Netns, url: str, duration: int) -> dict[str, float]:
    out = ns.run(
        ["wrk", "-d", f"{duration}s", "-c", "16", "-t", "2", "--timeout", "2s", url],
        timeout=duration + 30,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    lat = re.search(r"Latency\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    return {
        "rps": rps,
        "latency_avg_ms": float(lat.group(1)) * scale[lat.group(2)] if lat else float("nan"),
        "errors": 0.0 if errors is None else float(sum(map(int, _numbers(errors.group(1))))),
        "non2xx": 0.0 if non2xx is None else float(non2xx.group(1)),
    }


NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen {port};
        location / {{ return 200 "{name} $remote_addr\\n"; }}
    }}
}}
"""


def use_nginx(lab: TrafficLab) -> None:
    """Replace each echo backend by nginx (one worker, keep-alive, answers from memory)."""
    for b in lab.backends:
        lab.stop_backend(b)
        directory = lab.topo.workdir / f"nginx-{b.name}"
        directory.mkdir()
        conf = directory / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=directory, port=BACKEND_PORT, name=b.name))
        b.proc = b.ns.spawn(
            ["nginx", "-p", str(directory), "-c", str(conf), "-e", str(directory / "error.log")],
            name=f"nginx-{b.name}",
        )
        wait_until(lambda b=b: f":{BACKEND_PORT} " in b.ns.run(["ss", "-Htln"]).stdout,
                   timeout=15, what=f"nginx {b.name} listening")


def throughput(duration: int, rounds: int, backend: str = "echo") -> dict[str, Any]:
    with Topology() as topo:
        lab = build_traffic_lab(topo)
        if backend == "nginx":
            use_nginx(lab)
        lab.router.add_route("192.0.2.0/24", via="10.1.0.2")  # direct path to the backends
        one = lab.backends[0]
        single = NatRule("bench/one", VIP4, 80, "TCP",
                         (Backend(one.ip4, BACKEND_PORT, "n1", local=True),), "Local")
        spread = NatRule("bench/all", VIP4, 81, "TCP", tuple(
            Backend(b.ip4, BACKEND_PORT, "n1", local=True) for b in lab.backends), "Local")
        result = NftTable(lab.node.name).apply(render((single, spread)))
        assert result.ok, result.error
        LocalVips(lab.node.name).sync([VIP4])
        direct_url = f"http://{one.ip4}:{BACKEND_PORT}/"
        wrk(lab, direct_url, 1)  # warm-up
        direct, via_vip, loopback = [], [], []
        for _ in range(rounds):
            direct.append(wrk(lab, direct_url, duration))
            via_vip.append(wrk(lab, f"http://{VIP4}:80/", duration))
            # the backend's own ceiling: wrk inside its namespace, no network path at all
            loopback.append(wrk_in(one.ns, f"http://127.0.0.1:{BACKEND_PORT}/", duration))
        spread_run = wrk(lab, f"http://{VIP4}:81/", duration)
        d = statistics.median(r["rps"] for r in direct)
        v = statistics.median(r["rps"] for r in via_vip)
        pairs = [b["rps"] / a["rps"] for a, b in zip(direct, via_vip, strict=True)]
        return {
            "backend": backend,
            "direct_rps": d,
            "vip_rps": v,
            "ratio_vip_over_direct": v / d,
            "ratio_per_round_median": statistics.median(pairs),
            "backend_loopback_rps": statistics.median(r["rps"] for r in loopback),
            "vip_spread_3_backends_rps": spread_run["rps"],
            "runs": {"direct": direct, "vip": via_vip, "loopback": loopback,
                     "spread": spread_run},
        }


async def _node_path(
    ns: str, rules: tuple[NatRule, ...], changed: tuple[NatRule, ...]
) -> tuple[float, float]:
    dp = NodeDataplane(NftTable(ns))
    await dp.apply_report(NodePlan(node="n1", nat=rules))
    t0 = time.monotonic()
    again = await dp.apply_report(NodePlan(node="n1", nat=rules))
    t_noop = time.monotonic() - t0
    assert again.ok and not again.nft.changed
    t0 = time.monotonic()
    bumped = await dp.apply_report(NodePlan(node="n1", nat=changed))
    t_change = time.monotonic() - t0
    assert bumped.ok and bumped.nft.changed and bumped.nft.mode == "patch"
    return t_noop, t_change


def apply_times(services: int, backends: int) -> dict[str, Any]:
    with Topology() as topo:
        ns = topo.add_netns("dpbench").name
        table = NftTable(ns)
        rules = scale_rules(services, backends)
        t0 = time.monotonic()
        rendered = render(rules)
        t_render = time.monotonic() - t0
        first = table.apply(rendered)
        assert first.ok, first.error
        # no-op from the remembered table (no read-back, no transaction)
        noop = table.apply(rendered)
        assert noop.ok and not noop.changed and not noop.read_back
        # no-op with a read-back (the periodic check for outside edits)
        checked = table.apply(rendered, check=True)
        assert checked.ok and not checked.changed and checked.read_back
        t0 = time.monotonic()
        table.read()
        t_read = time.monotonic() - t0
        # one backend changes: render + patch against the remembered table
        t0 = time.monotonic()
        changed_rules = scale_rules(services, backends, bump=1)
        changed_render = render(changed_rules)
        t_change_render = time.monotonic() - t0
        change = table.apply(changed_render)
        t_change = time.monotonic() - t0
        assert change.ok and change.changed and len(change.diff.changed) >= 1
        assert not change.read_back
        # the same change when the memory is not trusted (read-back first, as before the cache)
        table.apply(rendered)
        table.forget()
        t0 = time.monotonic()
        change_rb = table.apply(render(changed_rules))
        t_change_rb = time.monotonic() - t0
        assert change_rb.ok and change_rb.read_back
        forced = table.apply(render(rules), force=True)
        # the agent's path: an identical plan again renders nothing and touches no kernel
        # object; a one-backend change renders (unchanged services from the render cache) and
        # patches against the remembered table
        t_node_noop, t_node_change = asyncio.run(_node_path(ns, rules, changed_rules))
        return {
            "services": services,
            "backends_per_service": backends,
            "render_s": t_render,
            "first_apply_s": first.seconds,
            "noop_reapply_s": noop.seconds,
            "noop_reapply_with_read_back_s": checked.seconds,
            "node_dataplane_identical_plan_s": t_node_noop,
            "node_dataplane_change_one_backend_s": t_node_change,
            "read_back_s": t_read,
            "change_one_backend_s": t_change,
            "change_one_backend_render_s": t_change_render,
            "change_one_backend_mode": change.mode,
            "change_one_backend_with_read_back_s": t_change_rb,
            "change_diff_objects": len(change.diff.changed) + len(change.diff.added),
            "full_replace_s": forced.seconds,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run (max 30)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating direct/VIP rounds")
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--backends", type=int, default=10)
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("--apply-only", action="store_true", help="skip the wrk runs")
    parser.add_argument("--backend", choices=("echo", "nginx"), default="echo",
                        help="HTTP backend: the Python echo server, or nginx (Debian nginx-light)")
    args = parser.parse_args()
    duration = max(1, min(args.duration, 30))
    figures = {
        "throughput": (
            None if args.apply_only
            else throughput(duration, max(1, min(args.rounds, 15)), args.backend)
        ),
        "apply": apply_times(args.services, args.backends),
    }
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
