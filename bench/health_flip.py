"""Health flip with 10,000 services: time until the data plane and BGP carry it, before/after.

    .venv/bin/python bench/health_flip.py [--services 10000] [--flips 10] [--before-rev REV]
                                          [--profile DIR]

Runs the same node twice in one run, side by side, each in its own network namespace
(``vc-<pid>-hf-*``): the code of ``--before-rev`` (default ``870ccaf``, main before the
element layout of the nftables table, extracted with ``git archive``) and the working tree's.
Each node is the real agent with the real nftables data plane (in its namespace) and a BGP
session on loopback to a passive vipcast speaker in the same process (the "router"); 10,000
LoadBalancer Services with pinned addresses, one backend each. Only the health checker is a
stand-in: the bench flips one backend down and up itself (``--flips`` times each way) and
calls the checker's listeners, as the real checker does.

Measured from the flip to:

- ``dataplane``: the nftables apply that leaves the backend out (or puts it back) returned;
- ``bgp``: the speaker handed the withdrawal (or announcement) of that Service's route to its
  session, which writes the UPDATE to the socket before returning;
- ``wire``: the router's session counted a new UPDATE (the only one a flip makes): it went over
  the TCP connection and was decoded (polled every millisecond);
- ``observe`` (stage): the agent was handed the observation (the policy's check is done).

Both versions run the one-way pipeline: the flip is an observation; the agent re-plans from
the snapshot in memory and every consumer applies the difference. No file is read (the bench
checks: the object file's atime and the agent's reload count do not move during the flips).
``--profile DIR`` writes a cProfile of each version's flip phase to ``DIR/<version>.prof``.
Run as root.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BEFORE_REV = "870ccaf"
FLIPPED = ("10.128.0.1", 8080)


def config_text(services: int, port: int) -> str:
    docs: list[dict[str, Any]] = [
        {"apiVersion": "vipcast.io/v1beta1", "kind": "BGPPeer", "metadata": {"name": "rtr"},
         "spec": {"myASN": 64512, "peerASN": 65000, "peerAddress": "127.0.0.3",
                  "peerPort": port, "sourceAddress": "127.0.0.2", "holdTime": "90s",
                  "connectTime": "1s"}},
        {"apiVersion": "vipcast.io/v1beta1", "kind": "IPAddressPool",
         "metadata": {"name": "pool"}, "spec": {"addresses": ["198.18.0.0/16"]}},
        {"apiVersion": "vipcast.io/v1beta1", "kind": "BGPAdvertisement",
         "metadata": {"name": "adv"}, "spec": {}},
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}},
    ]
    for i in range(services):
        name = f"s{i:05d}"
        ip = f"198.18.{(i + 1) // 256}.{(i + 1) % 256}"
        backend = FLIPPED[0] if i == 0 else f"10.0.{i // 256}.{i % 256}"
        docs.append({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": name, "namespace": "default",
                                  "annotations": {"vipcast.io/loadBalancerIPs": ip}},
                     "spec": {"type": "LoadBalancer",
                              "ports": [{"port": 80, "targetPort": 8080}]}})
        docs.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                     "metadata": {"name": f"{name}-1", "namespace": "default",
                                  "labels": {"kubernetes.io/service-name": name}},
                     "addressType": "IPv4", "ports": [{"port": 8080}],
                     "endpoints": [{"addresses": [backend], "nodeName": "n1"}]})
    return "\n---\n".join(json.dumps(d) for d in docs) + "\n"


# ---------------------------------------------------------------- the child (one node)


class FakeHealth:
    """The checker's shape: which backends are down, and who hears of a flip."""

    def __init__(self) -> None:
        self.failing: set[tuple[str, int]] = set()
        self.listeners: list[Callable[[], None]] = []

    def configure(self, configs: Any) -> None: ...
    def track(self, targets: Any) -> None: ...
    def set_targets(self, targets: Any) -> None: ...

    def down(self) -> frozenset[tuple[str, int]]:
        return frozenset(self.failing)

    def on_change(self, listener: Callable[[], None]) -> None:
        self.listeners.append(listener)

    def flip(self) -> None:
        if FLIPPED in self.failing:
            self.failing.clear()
        else:
            self.failing.add(FLIPPED)
        for listener in list(self.listeners):
            listener()


async def child(version: str, services: int, flips: int, work: Path,
                profile: Path | None = None) -> dict[str, Any]:
    import cProfile
    import logging

    from vipcast.app.agent import Agent, AgentOptions
    from vipcast.app.node import AnnouncementPolicy
    from vipcast.dataplane.nft import NftTable
    from vipcast.dataplane.node import NodeDataplane
    from vipcast.proto.bgp import SessionConfig
    from vipcast.runtime.bgp.peer import PeerSettings
    from vipcast.runtime.bgp.speaker import Speaker
    from vipcast.runtime.probe import AnnouncementGate

    logging.basicConfig(level=logging.WARNING)
    router = Speaker(listen=[("127.0.0.3", 0)])
    await router.start()
    port = router.listen_ports[0]
    router.configure([PeerSettings(name="node", address="127.0.0.2", session=SessionConfig(
        local_asn=65000, peer_asn=64512, router_id="192.0.2.3", passive=True))])
    config = work / "config"
    config.mkdir()
    (config / "objects.yaml").write_text(config_text(services, port))
    options = AgentOptions(config_paths=(config,), node="n1", poll_interval=1.0,
                           load_in_thread=True)
    health = FakeHealth()
    gate = AnnouncementGate()
    nft = NftTable()
    marks: dict[str, float] = {}
    flipped_route = "198.18.0.1/32"

    # "no file read": every file the process opens under the config folder, during the flips
    opened: list[str] = []

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if event == "open" and "flip" in marks and str(args[0]).startswith(str(config)):
            opened.append(str(args[0]))

    sys.addaudithook(audit)

    def announced() -> bool:
        routes = agent.current.plan.bgp if agent.current else ()
        return any(r.prefix == flipped_route for r in routes)

    # the one-way pipeline (both versions): the flip is an observation, the agent re-plans
    dataplane = NodeDataplane(nft, None)
    policy = AnnouncementPolicy(gate, health, verify=False)  # type: ignore[arg-type]
    agent = Agent(options, consumers=[dataplane, policy], local=policy.local)
    policy.report_to(agent.observe)
    loads = 0
    real_load = agent.load

    def counted_load() -> Any:
        nonlocal loads
        loads += 1
        return real_load()

    agent.load = counted_load  # type: ignore[method-assign]

    # the moments the consumers are done with a plan that carries the flip
    real_sync = dataplane._sync

    # (the clock is read first: the bench's own check is not part of the figure)
    async def timed_sync(plan: Any, *, check: bool = False) -> Any:
        report = await real_sync(plan, check=check)
        now = time.perf_counter()
        if "flip" in marks and "dataplane" not in marks:
            down = FLIPPED in dataplane._down()
            if down == (FLIPPED in health.failing):
                marks["dataplane"] = now
        return report

    dataplane._sync = timed_sync  # type: ignore[method-assign]
    real_apply = agent.speaker.apply

    async def timed_apply(plan: Any) -> None:
        await real_apply(plan)
        now = time.perf_counter()
        if "flip" in marks and "bgp" not in marks:
            # every route is announced but the flipped one's while it is down (O(1) check)
            has = len(plan.bgp) == services
            if has == (FLIPPED not in health.failing):
                marks["bgp"] = now

    agent.speaker.apply = timed_apply  # type: ignore[method-assign]
    real_observe = agent.observe

    async def timed_observe(local: Any) -> None:
        if "flip" in marks and "observe" not in marks:
            marks["observe"] = time.perf_counter()
        await real_observe(local)

    agent.observe = timed_observe  # type: ignore[method-assign]
    policy.report_to(agent.observe)

    tasks = [asyncio.create_task(agent.run(install_signals=False)),
             asyncio.create_task(dataplane.run()), asyncio.create_task(policy.run())]
    stages = ("dataplane", "bgp", "wire", "observe")
    results: dict[str, list[float]] = {what: [] for what in stages}
    start = time.perf_counter()
    # CPU time, not wall time: on a loaded machine wall time lands on whatever was running
    profiler = cProfile.Profile(time.process_time) if profile is not None else None
    try:
        async with asyncio.timeout(1800):
            while not (agent.started.is_set() and announced()):
                await asyncio.sleep(0.05)
            peer = router.peers()["node"]
            while peer.status().prefixes_received < services:
                await asyncio.sleep(0.05)
        ready = time.perf_counter() - start
        loads_before = loads
        for _ in range(2 * flips):
            await asyncio.sleep(0.5)
            marks.clear()
            updates = peer.status().updates_received
            if profiler is not None:
                profiler.enable()
            marks["flip"] = time.perf_counter()
            health.flip()
            async with asyncio.timeout(600):
                while not ("dataplane" in marks and "bgp" in marks and "wire" in marks):
                    if "wire" not in marks and peer.status().updates_received > updates:
                        marks["wire"] = time.perf_counter()
                    await asyncio.sleep(0.001)
            if profiler is not None:
                profiler.disable()
            for what in stages:
                results[what].append(marks[what] - marks["flip"])
        files_read = {"opened_under_config": len(opened), "loads": loads - loads_before}
    finally:
        agent.request_stop()
        for task in tasks[1:]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await router.stop()
        await asyncio.to_thread(nft.cleanup)
    if profiler is not None and profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(str(profile / f"{version}.prof"))
    return {"version": version, "ready_s": round(ready, 2), "during_flips": files_read,
            **{f"{k}_s": v for k, v in results.items()}}


# ---------------------------------------------------------------- the parent


def extract(rev: str, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def run_child(version: str, src: Path, args: argparse.Namespace, ns: str, work: Path) -> Any:
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", ns, "addr", "add", "127.0.0.2/8", "dev", "lo"], check=False)
        env = {**os.environ, "PYTHONPATH": str(src)}
        out = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, __file__, "--child", version,
             "--services", str(args.services), "--flips", str(args.flips), "--work", str(work),
             *(["--profile", str(args.profile)] if args.profile else [])],
            env=env, capture_output=True, text=True, timeout=3600,
        )
        if out.returncode != 0:
            raise RuntimeError(f"{version} failed:\n{out.stderr[-3000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=10000)
    parser.add_argument("--flips", type=int, default=10)
    parser.add_argument("--before-rev", default=BEFORE_REV)
    parser.add_argument("--child")
    parser.add_argument("--work", type=Path)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "health_flip.json")
    parser.add_argument("--profile", type=Path, help="write cProfile stats of the flips here")
    parser.add_argument("--only", choices=("before", "after"),
                        help="run one version and print its figures (no JSON written)")
    args = parser.parse_args()
    args.flips = min(args.flips, 50)
    if args.child:
        print(json.dumps(asyncio.run(child(args.child, args.services, args.flips, args.work,
                                           args.profile))))
        return
    with tempfile.TemporaryDirectory(prefix="vc-hf-") as tmp:
        root = Path(tmp)
        old = extract(args.before_rev, root / "before")
        runs = {}
        for version, src in (("before", old), ("after", ROOT / "src")):
            if args.only not in (None, version):
                continue
            work = root / f"work-{version}"
            work.mkdir()
            runs[version] = run_child(version, src, args, f"vc-{os.getpid()}-hf-{version}", work)
    if args.only:
        run = runs[args.only]
        print(json.dumps({k: (round(med(v), 4) if isinstance(v, list) else v)
                          for k, v in run.items()}))
        return
    print(f"health flip, {args.services} services, {2 * args.flips} flips (down and up), "
          f"median seconds from the flip")
    print(f"{'':12}{'before':>10}{'after':>10}{'before/after':>14}")
    summary: dict[str, Any] = {}
    for what in ("dataplane", "bgp", "wire", "observe"):
        b, a = med(runs["before"][f"{what}_s"]), med(runs["after"][f"{what}_s"])
        summary[what] = {"before_s": round(b, 4), "after_s": round(a, 4),
                         "ratio": round(b / a, 1) if a else None}
        print(f"{what:12}{b:>10.3f}{a:>10.3f}{b / a:>13.1f}x")
    document = {
        "date": time.strftime("%Y-%m-%d"), "services": args.services, "flips": 2 * args.flips,
        "before_rev": args.before_rev, "load_average_1min": round(os.getloadavg()[0], 1),
        "cpus": os.cpu_count(), "median": summary, "runs": runs,
    }
    args.json.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
