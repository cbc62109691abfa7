"""What a lab is: its options, its addresses, and the state saved for later commands.

Every other part of the lab (``objects``, ``routers``, ``topology``) reads these; they read
nothing of the lab but these. ``LabState`` is saved as JSON in the work directory so ``vipcast
lab status``/``down`` work from another process.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from vipcast.app.lab.cni import CniKind, CoexistMode

ROUTER_ASN = 64512
NODE_ASN = 64513
LAN_V4 = "198.18.0"
LAN_V6 = "fd00:18::"
#: the router's addresses on the LAN (the nodes' BGP neighbor and default gateway)
ROUTER_V4 = f"{LAN_V4}.1"
ROUTER_V6 = f"{LAN_V6}1"
CLIENT_V4 = "203.0.113.10"
CLIENT_V6 = "2001:db8:cc::10"
POOL_V4 = "192.0.2.0/27"
POOL_V6 = "2001:db8:100::/120"
STATE_FILE = "lab-state.json"
DEFAULT_PREFIX = "vc-lab"
AGENT_STATUS_PORT = 9470

Step = Callable[[str], None]
RouterKind = Literal["frr", "bird"]


@dataclass(frozen=True)
class LabOptions:
    nodes: int = 3
    mode: Literal["bgp", "l2"] = "bgp"
    router: RouterKind = "frr"
    bfd: bool = True
    #: graceful restart on the agents' sessions (None: on only without BFD). FRR 8.4 and
    #: BIRD 2 keep a restarting agent's routes yet drop a dead node's on BFD down, so both
    #: can be on (docs/lab.md, "Graceful restart and BFD")
    graceful_restart: bool | None = True
    prefix: str = DEFAULT_PREFIX
    workdir: Path = Path("/tmp/vipcast-lab")
    #: BGP hold time the agents and the router use (seconds)
    hold_time: int = 9
    #: BFD on the router and the agents (``bfd``): both intervals, and the detect multiplier.
    #: The detection time (their product) must exceed the longest time an agent process may
    #: go unscheduled, or a live node's sessions drop: 100 ms x 3 is the failover benches'
    #: figure; the e2e tests on a shared CI machine use more (docs/lab.md, "A survivor's BFD")
    bfd_interval_ms: int = 100
    bfd_multiplier: int = 3
    #: Envoy on every node in front of the backends as pods (``app/lab/gateway.py``)
    gateway: bool = False
    #: ready endpoints of ``web-local`` per node (n1, n2, ...); set: the advertisement asks for
    #: weighted ECMP and the router hashes by L4 (docs/weighted-ecmp.md)
    backends: tuple[int, ...] = ()
    #: "bird": every node runs BIRD 2 playing a BGP-speaking CNI (calico-node's policy), and
    #: vipcast lives beside it as ``coexist`` says (``app/lab/cni.py``, docs/cni.md)
    cni: CniKind = "none"
    #: "daemon": mode 2, vipcast's VIPs go through the node's BIRD; "separate": mode 1,
    #: vipcast peers the router itself from a second node address; "handoff": mode 3, the
    #: agent speaks no BGP and hands the VIPs to the node's BIRD in a file
    coexist: CoexistMode = "daemon"
    #: node liveness (the SWIM membership) on the agents: a dead node's backends leave the
    #: others' Cluster-policy maps within its detection time (off: only by health check)
    liveness: bool = True

    @property
    def agent_graceful_restart(self) -> bool:
        if self.graceful_restart is not None:
            return self.graceful_restart
        return not (self.bfd and self.mode == "bgp")


@dataclass
class LabState:
    prefix: str
    workdir: str
    nodes: list[str]
    namespaces: list[str]
    pids: dict[str, int] = field(default_factory=dict)
    frr_dir: str = ""
    #: "frr" or "bird"; the router's state directory is ``frr_dir`` / ``bird_dir``
    router: str = "frr"
    bird_dir: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    def save(self) -> None:
        Path(self.workdir, STATE_FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def read(cls, workdir: Path) -> LabState | None:
        path = workdir / STATE_FILE
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))


def node_v4(i: int) -> str:
    return f"{LAN_V4}.{10 + i}"


def node_v6(i: int) -> str:
    return f"{LAN_V6}{10 + i:x}"


def vipcast_v4(i: int) -> str:
    """Node ``i``'s second address, vipcast's own beside a CNI (``coexist="separate"``)."""
    return f"{LAN_V4}.{40 + i}"


def vipcast_v6(i: int) -> str:
    return f"{LAN_V6}{40 + i:x}"


def backend_ips(i: int, count: int = 2) -> list[tuple[str, str]]:
    """(IPv4, IPv6) of the backends (pod addresses) on node ``i``: two unless ``count``."""
    return [(f"10.244.{i}.{10 + k}", f"fd00:244:{i}::{10 + k:x}") for k in range(count)]


def local_backends(opts: LabOptions, i: int) -> int:
    """How many ``web-local`` endpoints node ``i`` runs (``--backends``; else 2 on n1, n2)."""
    if opts.backends:
        return opts.backends[i - 1] if i <= len(opts.backends) else 0
    return 2 if i <= 2 or opts.nodes == 1 else 0


def options_of(state: LabState) -> LabOptions:
    return LabOptions(**{**state.options, "workdir": Path(state.workdir),
                         "backends": tuple(state.options.get("backends", ()))})
