"""The agent as a user runs it: 10,000 Services in files, routes into FRR's kernel.

    .venv/bin/python bench/agent_routes.py [--services 10000] [--trials 7] [--rounds 3]
                        [--speakers before,before-warm,after,warm,bird,gobgp] [--before-rev REV]
                        [--agent-log-level INFO]

Two figures, each in fresh namespaces (``vc-<pid>-...``, FRR 8.4 router, a speaker namespace
on a veth), run as root:

- **cold start**: from starting the speaker process until FRR's kernel holds all N routes,
  with its phases (TCP SYN, OPEN, Established, first and last UPDATE carrying routes, from a
  capture in the router's namespace, :mod:`bench.bgp_capture`; first and last route in FRR's
  kernel), all as seconds from the process start.
  ``after``/``before``: ``vipcast agent --no-dataplane`` with the N Services (pinned addresses,
  one ready endpoint on the node) in one YAML file (block style, as a user writes them), from
  this tree / from ``--before-rev`` (extracted with ``git archive``); ``after`` starts with an
  empty ``--cache-dir`` (cold cache: everything parsed and validated), ``warm`` with the cache
  a previous start of the same files left (``app/start_cache.py``: the whole start, or for a
  tree without it ``sources/validated_cache.py``'s per-file entries; a priming start, not
  timed, fills it once and is stopped only after the cache is written); BIRD 2: ``bird``
  with N static routes in its config;
  GoBGP 3: ``gobgpd`` started, then one gRPC AddPathStream of the N paths after the session
  is up (``bench/bgp_gobgp_feed.py``). Every speaker's time includes opening its session.
- **one Service added** (vipcast only): on the running agent, a new file with one Service and
  its EndpointSlice, then SIGHUP; time until FRR's kernel holds its route. Then the file is
  removed and SIGHUP sent again: time until the route is gone. ``--trials`` times each; the
  first trial starts the moment the cold start's last route is in FRR's kernel (the agent may
  still be finishing its start then: with the start cache the routes are out before the rest of
  the cache is read), and is also reported alone as ``first_add_s`` (median over the rounds);
  ``add_one_s`` is the median of all trials, ``later_add_s`` of all but the first.

Both trees are byte-compiled first and the agents run with bytecode, as an installed vipcast
(pip, the image) runs. Times come from ``ip monitor route`` in the router's namespace,
confirmed by a table dump (:mod:`bench.bgp_routes`' watch). Writes ``bench/agent_routes.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).parent))

from bgp_capture import Capture, phases
from bgp_routes import (
    BASE,
    ROUTER,
    ROUTER_ASN,
    SPEAKER,
    SPEAKER_ASN,
    GobgpFeed,
    KernelWatch,
    build,
    prefixes,
    start_router,
    wait_count,
)

from vipcast.lab.bgpconf import Neighbor
from vipcast.lab.bird import BirdConfig, start_bird
from vipcast.lab.gobgp import GobgpConfig, start_gobgp
from vipcast.lab.netns import Topology

ROOT = Path(__file__).resolve().parents[1]
BEFORE_REV = "4f6fdc7"  # main before the start cache (issue 11)


def base_objects(router: str = ROUTER, source: str = SPEAKER,
                 port: int | None = None) -> list[dict[str, Any]]:
    """The one peer (``router``, from ``source``; ``port``: not BGP's), pool, advertisement
    and Node of the agent's files."""
    peer: dict[str, Any] = {"myASN": SPEAKER_ASN, "peerASN": ROUTER_ASN, "peerAddress": router}
    if port is not None:
        peer["peerPort"] = port
    peer.update(sourceAddress=source, connectTime="1s")
    return [
        {"apiVersion": "vipcast.io/v1beta1", "kind": "BGPPeer", "metadata": {"name": "rtr"},
         "spec": peer},
        {"apiVersion": "vipcast.io/v1beta1", "kind": "IPAddressPool",
         "metadata": {"name": "pool"}, "spec": {"addresses": ["198.18.0.0/15"]}},
        {"apiVersion": "vipcast.io/v1beta1", "kind": "BGPAdvertisement",
         "metadata": {"name": "adv"}, "spec": {}},
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}},
    ]


def service_objects(name: str, ip: str) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": name, "namespace": "default",
                      "annotations": {"vipcast.io/loadBalancerIPs": ip}},
         "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "targetPort": 8080}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": f"{name}-1", "namespace": "default",
                      "labels": {"kubernetes.io/service-name": name}},
         "addressType": "IPv4", "ports": [{"port": 8080}],
         "endpoints": [{"addresses": ["10.244.1.10"], "nodeName": "n1"}]},
    ]


def write_docs(path: Path, docs: list[dict[str, Any]]) -> None:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def write_config(config: Path, n: int) -> None:
    config.mkdir(parents=True, exist_ok=True)
    write_docs(config / "base.yaml", base_objects())
    docs = []
    for i, prefix in enumerate(prefixes(n)):
        docs += service_objects(f"s{i:05d}", prefix.split("/")[0])
    write_docs(config / "services.yaml", docs)


def router_ready(topo: Topology) -> Any:
    """FRR started and its bgpd listening, so every speaker's session opens at once."""
    router, speaker = build(topo)
    start_router(topo, router)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        out = subprocess.run(["ip", "netns", "exec", router.name, "ss", "-Hltn", "sport = :179"],
                             capture_output=True, text=True).stdout
        if out.strip():
            time.sleep(0.5)  # zebra and bgpd settle
            return router, speaker
        time.sleep(0.1)
    raise TimeoutError("FRR's bgpd does not listen")


class Timeline:
    """The phases of one cold start: a capture of the BGP session in the router's namespace
    (:mod:`bench.bgp_capture`) and the router's kernel table (:class:`KernelWatch`), as
    seconds from the speaker process's start."""

    def __init__(self, router: Any, work: Path, routes: int) -> None:
        self.routes = routes
        self.capture = Capture(router, work / "bgp.pcap")
        self.capture.start()
        self.watch = KernelWatch(router)
        self.wall = self.mono = 0.0

    def begin(self) -> float:
        self.wall, self.mono = time.time(), time.monotonic()
        return self.mono

    def phases(self) -> dict[str, float | None]:
        """After the cold start: the capture's phases and the kernel's first and last route."""
        found = phases(self.capture.stop(), SPEAKER, self.wall, self.routes)
        found["first_kernel"] = round(self.watch.first_added - self.mono, 4)
        found["last_kernel"] = round(self.watch.last_added - self.mono, 4)
        return found


def extract(rev: str, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return compiled(into / "src")


def compiled(src: Path) -> Path:
    """``src`` with its bytecode written, as an installed package has it (pip and the image
    compile at install time): a start then measures the program, not the compiler."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(src)], check=True,
                   env=user_env(src))
    return src


def user_env(src: Path) -> dict[str, str]:
    """The environment of a process run from ``src`` as a user runs it: bytecode read and
    written (a developer shell may set PYTHONDONTWRITEBYTECODE)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(src)
    return env


def cache_written(src: Path, cache: Path, limit: float = 120.0) -> None:
    """Wait until the agent of ``src`` wrote its cache (after its routes are out, and for the
    start cache once the config ran unchanged for 5 s): a priming start stopped earlier
    leaves a partial cache or none, and the timed start would be a cold one."""
    pattern = "start-*.pickle" if (src / "vipcast/app/start_cache.py").exists() else "*/*.validated"
    deadline = time.monotonic() + limit
    while not list(cache.glob(pattern)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {pattern} in {cache}")
        time.sleep(0.1)
    time.sleep(0.5)  # the per-file entries are renamed into place one by one


def run_vipcast(src: Path, n: int, trials: int, work: Path, *, config: Path | None = None,
                cache: Path | None = None, prime: bool = False,
                log_level: str = "WARNING") -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    if config is None:
        config = work / "config"
        write_config(config, n)
    with Topology() as topo:
        router, speaker = router_ready(topo)
        log = (work / "agent.log").open("w")
        env = user_env(src)
        # the installed `vipcast` program's entry point (pyproject.toml [project.scripts]):
        # it imports only the agent command's module (`app()` would build every command)
        argv = [sys.executable, "-c", "from vipcast.cli.main import main; main()", "agent",
                "--config", str(config), "--node", "n1", "--no-dataplane",
                "--metrics-address", "127.0.0.1:0", "--log-level", log_level,
                *(["--cache-dir", str(cache)] if cache is not None else [])]
        timeline = Timeline(router, work, n)
        watch = timeline.watch
        t0 = timeline.begin()
        proc = subprocess.Popen(speaker.exec_argv(argv), env=env, stdout=log, stderr=log)
        try:
            cold = wait_count(router, lambda c: c >= n, t0, watch, n)
            steps = timeline.phases()
            if prime and cache is not None:
                cache_written(src, cache)
            added: list[float] = []
            removed: list[float] = []
            for i in range(trials):
                extra = config / f"extra-{i}.yaml"
                write_docs(extra, service_objects(f"extra-{i}", f"198.19.200.{i + 1}"))
                t = time.monotonic()
                proc.send_signal(signal.SIGHUP)
                added.append(wait_count(router, lambda c: c >= n + 1, t, watch, 1))
                extra.unlink()
                t = time.monotonic()
                proc.send_signal(signal.SIGHUP)
                removed.append(wait_count(router, lambda c: c <= n, t, watch, 1, deleting=True))
                time.sleep(0.2)
        finally:
            watch.close()
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            log.close()
    return {"cold_start_s": cold, "add_one_s": added, "remove_one_s": removed, "phases": steps}


def run_bird(n: int, work: Path) -> dict[str, Any]:
    with Topology() as topo:
        router, speaker = router_ready(topo)
        timeline = Timeline(router, work, n)
        watch = timeline.watch
        try:
            t0 = timeline.begin()
            start_bird(speaker, BirdConfig(
                asn=SPEAKER_ASN, router_id=SPEAKER, neighbors=(Neighbor(ROUTER, ROUTER_ASN),),
                networks=tuple(prefixes(n)), kernel_export=False, graceful_restart=False,
            ), work / "bird")
            cold = wait_count(router, lambda c: c >= n, t0, watch, n)
            steps = timeline.phases()
        finally:
            watch.close()
    return {"cold_start_s": cold, "phases": steps}


def run_gobgp(n: int, work: Path) -> dict[str, Any]:
    with Topology() as topo:
        router, speaker = router_ready(topo)
        timeline = Timeline(router, work, n)
        watch = timeline.watch
        try:
            t0 = timeline.begin()
            g = start_gobgp(speaker, GobgpConfig(
                asn=SPEAKER_ASN, router_id=SPEAKER, neighbors=(Neighbor(ROUTER, ROUTER_ASN),),
                graceful_restart=False,
            ), work / "gobgp")
            g.wait_established(ROUTER, timeout=60)
            feed = GobgpFeed(speaker, g.config.api_port)
            try:
                feed.command(f"prepare {BASE} {n}")
                feed.command("announce")
                cold = wait_count(router, lambda c: c >= n, t0, watch, n)
                steps = timeline.phases()
            finally:
                feed.close()
        finally:
            watch.close()
    return {"cold_start_s": cold, "phases": steps}


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


PHASES = (("tcp_syn", "TCP SYN"), ("open_sent", "OPEN sent"), ("established", "Established"),
          ("first_update", "first UPDATE"), ("last_update", "last UPDATE"),
          ("first_kernel", "first route in kernel"), ("last_kernel", "last route in kernel"))


def print_phases(summary: dict[str, Any]) -> None:
    """The cold start's phases, seconds from the process start (medians), one column per
    speaker."""
    speakers = [s for s in summary if "phases" in summary[s]]
    if not speakers:
        return
    print("\nphases of the cold start (s from process start; router-side capture):")
    print(f"{'':24}" + "".join(f"{s:>10}" for s in speakers))
    for key, label in PHASES:
        cells = [summary[s]["phases"].get(key) for s in speakers]
        print(f"{label:24}" + "".join(
            f"{c:10.3f}" if c is not None and c == c else f"{'-':>10}" for c in cells))
    print(f"{'SYN from the speaker':24}" + "".join(
        f"{'yes' if summary[s]['phases'].get('syn_from_speaker') else 'no':>10}"
        for s in speakers))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=10000)
    parser.add_argument("--trials", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--speakers", default="before,before-warm,after,warm,bird,gobgp")
    parser.add_argument("--before-rev", default=BEFORE_REV)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "agent_routes.json")
    parser.add_argument("--agent-log-level", default="WARNING",
                        help="the timed agents' log level (their agent.log: VC_BENCH_KEEP)")
    args = parser.parse_args()
    n, trials = args.services, min(args.trials, 50)
    speakers = args.speakers.split(",")
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in speakers}
    load_before = round(os.getloadavg()[0], 1)
    with tempfile.TemporaryDirectory(prefix="vc-ar-") as tmp:
        root = Path(os.environ.get("VC_BENCH_KEEP", tmp))
        old = (extract(args.before_rev, root / "before")
               if {"before", "before-warm"} & set(speakers) else None)
        compiled(ROOT / "src")
        shared = root / "config"  # one set of files for both cache runs (the key has the path)
        write_config(shared, n)
        for rnd in range(min(args.rounds, 5)):
            for s in speakers:  # interleaved: a busy machine's noise falls on all of them
                work = root / f"{s}-{rnd}"
                work.mkdir()
                if s == "after":  # an empty cache: the cold-cache start
                    runs[s].append(run_vipcast(ROOT / "src", n, trials, work, config=shared,
                                               cache=root / f"cache-cold-{rnd}",
                                               log_level=args.agent_log_level))
                elif s == "warm":
                    if rnd == 0:  # a start that leaves the cache, not timed
                        run_vipcast(ROOT / "src", n, 0, work / "prime", config=shared,
                                    cache=root / "cache-warm", prime=True)
                    runs[s].append(run_vipcast(ROOT / "src", n, trials, work, config=shared,
                                               cache=root / "cache-warm",
                                               log_level=args.agent_log_level))
                elif s == "before":
                    assert old is not None
                    runs[s].append(run_vipcast(old, n, trials, work,
                                               log_level=args.agent_log_level))
                elif s == "before-warm":  # --before-rev with a warm cache (a tree that has one)
                    assert old is not None
                    if rnd == 0:
                        run_vipcast(old, n, 0, work / "prime", config=shared,
                                    cache=root / "cache-warm-before", prime=True)
                    runs[s].append(run_vipcast(old, n, trials, work, config=shared,
                                               cache=root / "cache-warm-before",
                                               log_level=args.agent_log_level))
                elif s == "bird":
                    runs[s].append(run_bird(n, work))
                elif s == "gobgp":
                    runs[s].append(run_gobgp(n, work))
                print(s, json.dumps(runs[s][-1]), flush=True)
    summary: dict[str, Any] = {}
    for s, results in runs.items():
        summary[s] = {"cold_start_s": round(med([r["cold_start_s"] for r in results]), 3)}
        steps = [r["phases"] for r in results if r.get("phases")]
        if steps:
            summary[s]["phases"] = {
                k: round(med([x[k] for x in steps if x.get(k) is not None]), 3)
                for k in steps[0]
            }
        adds = [t for r in results for t in r.get("add_one_s", [])]
        if adds:
            summary[s]["add_one_s"] = round(med(adds), 3)
            summary[s]["first_add_s"] = round(med([r["add_one_s"][0] for r in results]), 3)
            later = [t for r in results for t in r["add_one_s"][1:]]
            if later:
                summary[s]["later_add_s"] = round(med(later), 3)
            summary[s]["remove_one_s"] = round(
                med([t for r in results for t in r["remove_one_s"]]), 3)
    print(f"\n{n} services; medians in seconds (cold start: process start -> all routes in "
          f"FRR's kernel); load average {load_before} at the start, "
          f"{os.getloadavg()[0]:.1f} at the end")
    ref = summary.get("bird", {}).get("cold_start_s")
    for s, fig in summary.items():
        ratio = f"  {fig['cold_start_s'] / ref:.2f}x BIRD" if ref else ""
        extra = ""
        if "add_one_s" in fig:
            extra = (f"  one Service added {fig['add_one_s']:.3f} (first {fig['first_add_s']:.3f}"
                     f", later {fig.get('later_add_s', float('nan')):.3f})"
                     f"  removed {fig['remove_one_s']:.3f}")
        print(f"{s:8} cold start {fig['cold_start_s']:.3f}{ratio}{extra}")
    print_phases(summary)
    if "before" in summary and "after" in summary and "add_one_s" in summary["after"]:
        print(f"one Service added, before/after: "
              f"{summary['before']['add_one_s'] / summary['after']['add_one_s']:.1f}x")
    if "before-warm" in summary and "warm" in summary:
        print(f"cold start, warm cache, before/after: "
              f"{summary['before-warm']['cold_start_s'] / summary['warm']['cold_start_s']:.2f}x")
        if "first_add_s" in summary["before-warm"] and "first_add_s" in summary["warm"]:
            print(f"first Service added after a warm start, before/after: "
                  f"{summary['before-warm']['first_add_s'] / summary['warm']['first_add_s']:.2f}x")
    for s in ("after", "warm"):
        if "before" in summary and s in summary:
            print(f"cold start, before/{s}: "
                  f"{summary['before']['cold_start_s'] / summary[s]['cold_start_s']:.1f}x")
    args.json.write_text(json.dumps({
        "date": time.strftime("%Y-%m-%d"), "services": n, "trials": trials,
        "before_rev": args.before_rev, "load_average_1min_start": load_before,
        "load_average_1min": round(os.getloadavg()[0], 1),
        "cpus": os.cpu_count(), "median": summary, "runs": runs,
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
