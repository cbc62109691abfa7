"""The e2e labs' shared moves: the router as FRR, a node's power loss under client load, and the
evidence a failing scenario prints (:class:`Evidence`). The lab itself, built under the run's
own prefix and torn down with nothing left behind, is ``lab_fixtures.running_lab``."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from vipcast.app.lab.demo import power_off, watch_next_hop_gone
from vipcast.app.lab.topology import LabState, router_of
from vipcast.lab.frr import FrrInstance
from vipcast.lab.netns import Netns, Topology
from vipcast.lab.workload import ClientLoad, Sample

#: the allocator's deterministic choice for default/web (a Cluster Service) in the lab config
WEB = "192.0.2.3"
#: the lab client's address (the source of every client connection, in conntrack)
CLIENT_V4 = "203.0.113.10"


def frr_router(topo: Topology, state: LabState) -> FrrInstance:
    """The lab's router, which the test needs to be FRR."""
    frr = router_of(topo, state)
    assert isinstance(frr, FrrInstance)
    return frr


def power_loss_under_load(
    topo: Topology, state: LabState, node: str, next_hop: str, *, duration: float,
    lead: float, evidence: Evidence | None = None,
) -> tuple[float | None, ClientLoad, float]:
    """A client sends new connections to the ``WEB`` VIP for ``duration`` s; ``lead`` s after
    its first request (its start-up takes seconds under load) ``node`` loses power. Returns
    when the router dropped ``next_hop`` from the VIP's route (seconds after the failure;
    None: not within the run), the client's load (its ``samples()`` wait for its end), and
    the failure's time on the load's clock. With ``evidence``, its timeline runs on the
    load's clock and it knows the failure's time."""
    load = ClientLoad(topo["client"], f"http://{WEB}/", duration=duration, interval=0.02,
                      timeout=0.25, response_timeout=2.0)
    if evidence is not None:
        evidence.watch(load)
    assert load.wait_started(), "the client load sent nothing within 60 s"
    time.sleep(lead)
    kill_at = power_off(topo, state, node, load.now)
    if evidence is not None:
        evidence.kill_at = kill_at
    # the client runs ``duration`` s from its own start: about ``duration - lead`` s are left
    gone = watch_next_hop_gone(topo["router"], f"{WEB}/32", next_hop, since=kill_at,
                               clock=load.now, until=kill_at + duration - lead)
    return gone, load, kill_at


# ------------------------------------------------------------------ evidence of a failure
#
# A failure under load on a CI machine happens once in tens of runs and its lab is gone with
# the run: what a failing test prints must be enough to find the cause. Every e2e scenario
# with a client load records a Timeline (what changed when, on the load's clock) and hands its
# samples to Evidence; the module's autouse fixture (see the test modules) writes the whole
# lab's state under the test's tmp dir and prints the parts that explain the failed requests.

#: lines of each source a Timeline keeps at most (a monitor is bounded like everything else)
TIMELINE_CAP = 4000


class Timeline:
    """Monitors run in lab namespaces while a scenario runs: ``ip monitor route`` on the router
    (the ECMP next hops the client's flows hash over), ``nft monitor`` on each node (the NAT
    maps), each line stamped with ``clock()`` as it arrives."""

    def __init__(self, topo: Topology, nodes: list[str], clock: Callable[[], float]) -> None:
        self._clock = clock
        self.lines: list[tuple[float, str, str]] = []
        self._procs: list[subprocess.Popen[str]] = []
        self._threads: list[threading.Thread] = []
        sources = [("router", topo["router"], ["ip", "monitor", "route"])]
        sources += [(n, topo[n], ["nft", "monitor"]) for n in nodes]
        for name, ns, argv in sources:
            proc = subprocess.Popen(ns.exec_argv(argv), stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
            thread = threading.Thread(target=self._read, args=(name, proc), daemon=True)
            thread.start()
            self._procs.append(proc)
            self._threads.append(thread)

    def _read(self, name: str, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        kept = 0
        for line in proc.stdout:
            if kept < TIMELINE_CAP:
                self.lines.append((self._clock(), name, line.rstrip()))
                kept += 1

    def stop(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)
        for proc in self._procs:
            if proc.stdout is not None:
                proc.stdout.close()

    def summary(self, since: float) -> str:
        """The timeline without the nft lines that only reshape shared chains: the router's
        routes, each transaction's end, and the IPv4 VIP and backend elements."""
        keep = ("svc4", "addr4-", "remote4", "new generation")
        return "\n".join(line for line in self.text(since).splitlines()
                         if " router " in line[:16] or any(k in line for k in keep))

    def text(self, since: float) -> str:
        return "\n".join(f"{t - since:+8.3f} {name:6} {line}"
                         for t, name, line in sorted(self.lines) if t >= since - 1.0)


@dataclass
class Evidence:
    """What a scenario saw, for its failure report: the client's samples on the load's time
    line, the failure's time on it, the monitors' timeline and the nodes' conntrack tables
    read right after the load (a refused or reset connection's entry lives 10 s)."""

    topo: Topology
    state: LabState
    samples: list[Sample] = field(default_factory=list)
    kill_at: float | None = None
    #: time.time() at the load clock's zero (the agents' logs are on the wall clock)
    t0: float | None = None
    timeline: Timeline | None = None
    conntrack: dict[str, str] = field(default_factory=dict)

    def watch(self, load: ClientLoad) -> Timeline:
        """Start the timeline on ``load``'s clock."""
        self.t0 = load.t0
        self.timeline = Timeline(self.topo, list(self.state.nodes), load.now)
        return self.timeline

    def loaded(self, samples: list[Sample]) -> list[Sample]:
        """The load ended: keep its samples and read the nodes' conntrack tables now."""
        self.samples = samples
        if self.timeline is not None:
            self.timeline.stop()
        self.conntrack = {n: _read(self.topo[n], ["cat", "/proc/net/nf_conntrack"])
                          for n in self.state.nodes}
        return samples

    def brief(self) -> str:
        """One line: the agents' longest event-loop stall and their BGP sessions lost (a
        survivor's flap under load), and the router's route changes during the load."""
        stalls, downs = [0], 0
        for path in Path(self.state.workdir).glob("*-agent.log"):
            for line in path.read_text(errors="replace").splitlines():
                if "event loop stalled " in line:
                    stalls.append(int(line.split("event loop stalled ", 1)[1].split()[0]))
                downs += "session down" in line
        changes = 0 if self.timeline is None else sum(
            1 for _, name, line in self.timeline.lines if name == "router" and
            not line.startswith(("\t", " ")))
        return (f"lab evidence: longest agent loop stall {max(stalls)} ms, BGP sessions down "
                f"(agents' logs) {downs}, router route changes during the load {changes}")

    def report(self, dest: Path) -> str:
        """Write the lab's state under ``dest`` and return the text that explains the
        failed requests (printed by the failing test)."""
        dest.mkdir(parents=True, exist_ok=True)
        if self.timeline is not None:
            self.timeline.stop()
        files = _lab_state(self.topo, self.state)
        files.update({f"conntrack-after-load-{n}.txt": t for n, t in self.conntrack.items()})
        since = self.kill_at if self.kill_at is not None else 0.0
        if self.samples:
            files["samples.txt"] = "\n".join(_sample_line(s, since) for s in self.samples)
        if self.timeline is not None:
            files["timeline.txt"] = self.timeline.text(since)
        for name, text in files.items():
            (dest / name).write_text(text)
        parts = [f"===== lab evidence: the whole state is in {dest} ====="]
        if self.t0 is not None:
            cut = "" if self.kill_at is None else (
                f"; the cut at {_wall(self.t0 + self.kill_at)} UTC is t=0 below")
            parts.append(f"load clock zero {_wall(self.t0)} UTC{cut}")
        failed = [s for s in self.samples if not s.ok]
        if failed:
            parts.append("failed requests (t after the cut, error, phase, connect_s, "
                         "seconds, client port) and their conntrack entries:")
            for s in failed[:60]:
                parts.append("  " + _sample_line(s, since))
                for node, table in self.conntrack.items():
                    parts.extend(f"      {node}: {line}" for line in _entries(table, s.sport))
            last = failed[-1].t
            parts.append("the requests around the last failure:")
            parts.extend("  " + _sample_line(s, since) for s in self.samples
                         if abs(s.t - last) <= 0.3)
        if self.timeline is not None:
            parts.append("timeline (t after the cut; router routes, nodes' IPv4 NAT changes; "
                         "all of it in timeline.txt):")
            parts.append(_head(self.timeline.summary(since), 400))
        for name in sorted(files):
            if name.endswith("-agent.log"):
                parts.append(f"----- {name} (last 60 lines) -----")
                parts.append("\n".join(files[name].splitlines()[-60:]))
        if "router-frr-daemons.log" in files:
            parts.append("----- router-frr-daemons.log (BGP and BFD events, last 80) -----")
            parts.append("\n".join([line for line in files["router-frr-daemons.log"].splitlines()
                                    if "bgp" in line.lower() or "bfd" in line.lower()][-80:]))
        for name in ("router-frr.txt", *(f"{n}-kernel.txt" for n in self.state.nodes)):
            if name in files:
                parts.append(f"----- {name} -----")
                parts.append(_head(files[name], 250))
        return "\n".join(parts)


def _wall(epoch: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}"


def _head(text: str, lines: int) -> str:
    rows = text.splitlines()
    more = f"\n... ({len(rows) - lines} more lines in the file)" if len(rows) > lines else ""
    return "\n".join(rows[:lines]) + more


def _sample_line(s: Sample, since: float) -> str:
    who = f"{s.node}/{s.backend}" if s.ok else f"{s.error} ({s.phase})"
    return (f"{s.t - since:+8.3f} {who:28} connect {s.connect_s} s, total {s.seconds} s, "
            f"port {s.sport}")


def _entries(table: str, sport: int | None) -> list[str]:
    """The conntrack entries of the client's connection from ``sport`` (its original
    direction: from the client's address and port; the reply direction names the backend)."""
    if sport is None:
        return []
    mark = f"src={CLIENT_V4} dst={WEB} sport={sport} "
    return [line for line in table.splitlines() if mark in line]


def _read(ns: Netns, argv: list[str]) -> str:
    try:
        done = ns.run(argv, check=False, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{' '.join(argv)}: {exc}"
    return done.stdout + (f"\n[stderr] {done.stderr}" if done.stderr.strip() else "")


def _lab_state(topo: Topology, state: LabState) -> dict[str, str]:
    """Every log and table of the lab, by file name: agents' and routers' logs, each node's
    ruleset, conntrack table, routes and packet counters, the router's BGP and BFD view."""
    files: dict[str, str] = {}
    for path in sorted(Path(state.workdir).glob("*.log")):
        files[path.name] = path.read_text(errors="replace")
    files["processes.log"] = topo.logs(tail=20000)
    for name in state.nodes:
        ns = topo[name]
        files[f"{name}-kernel.txt"] = "\n".join(
            f"$ {' '.join(argv)}\n{_read(ns, argv)}" for argv in (
                ["ip", "-s", "link"], ["ip", "route"], ["ip", "-6", "route"],
                ["nft", "list", "ruleset"]))
        files[f"{name}-conntrack.txt"] = _read(ns, ["cat", "/proc/net/nf_conntrack"])
    router = topo["router"]
    frr = router_of(topo, state)
    views = [f"$ ip route\n{_read(router, ['ip', 'route'])}",
             f"$ ip -s link\n{_read(router, ['ip', '-s', 'link'])}"]
    if isinstance(frr, FrrInstance):
        for command in ("show bgp summary", "show bfd peers brief", "show ip route"):
            try:
                views.append(f"$ vtysh {command}\n{frr.vtysh(command, daemon=None)}")
            except Exception as exc:  # a report must not fail on a dead daemon
                views.append(f"$ vtysh {command}: {exc}")
        files["router-frr-daemons.log"] = frr.log_text()
    files["router-frr.txt"] = "\n".join(views)
    return files


def evidence_of(request: pytest.FixtureRequest, topo: Topology, state: LabState,
                dest: Path) -> Iterator[Evidence]:
    """The body of a module's autouse ``evidence`` fixture: a test fills the Evidence; when
    its setup or call failed, the report is written under ``dest`` and printed (pytest shows
    it in the failure's "Captured stdout teardown")."""
    evidence = Evidence(topo, state)
    try:
        yield evidence
    finally:
        if evidence.timeline is not None:
            evidence.timeline.stop()
        reports = [getattr(request.node, f"report_{when}", None) for when in ("setup", "call")]
        if any(r is not None and r.failed for r in reports):
            print(evidence.report(dest))
        else:  # one line (shown with -rA): how close a passing run came to a timer's edge
            print(evidence.brief())
