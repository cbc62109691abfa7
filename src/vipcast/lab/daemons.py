"""One import for every lab daemon launcher (FRR, BIRD, GoBGP, ExaBGP).

Each launcher runs its daemon inside a :class:`~vipcast.lab.netns.Netns` with config, state,
sockets and logs in a directory you pass, and returns an instance with ``pid``, ``alive()``,
``stop()``, ``log_text()``, ``neighbor_states()``, ``established()``, ``wait_established()``,
``routes(family)`` and ``route(prefix)`` (paths as :class:`~vipcast.lab.bgpconf.BgpPath`).
"""

from __future__ import annotations

from vipcast.lab.bgpconf import BgpPath, Family, Neighbor
from vipcast.lab.bird import BirdConfig, BirdInstance, start_bird
from vipcast.lab.exabgp import ExabgpConfig, ExabgpInstance, start_exabgp
from vipcast.lab.frr import BfdProfile, FrrConfig, FrrInstance, start_frr
from vipcast.lab.gobgp import GobgpConfig, GobgpInstance, start_gobgp

__all__ = [
    "BfdProfile",
    "BgpPath",
    "BirdConfig",
    "BirdInstance",
    "ExabgpConfig",
    "ExabgpInstance",
    "Family",
    "FrrConfig",
    "FrrInstance",
    "GobgpConfig",
    "GobgpInstance",
    "Neighbor",
    "start_bird",
    "start_exabgp",
    "start_frr",
    "start_gobgp",
]
