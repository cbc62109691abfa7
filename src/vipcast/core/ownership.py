"""One L2 owner per address, agreed by every node without talking: rendezvous hashing.

Every (node, address) pair gets a 64-bit score; an address's candidates are its eligible nodes
by ascending score (ties, which need two equal 64-bit scores, by name), and the first one alive
owns it. Removing a node moves only the addresses it owned; adding one takes about ``1/n`` of
them, each from whichever node had it.

The score is defined by :func:`score` and must never change, since nodes running different
versions have to agree on it::

    key(text)          = first 8 bytes, big-endian, of BLAKE2b(text as UTF-8,
                         digest_size=8, person=b"vipcast-l2")
    score(node, ip)    = mix(key(node) XOR key(ip))
    mix(z)             = the SplitMix64 finalizer (mod 2**64):
                         z = (z ^ z >> 30) * 0xBF58476D1CE4E5B9
                         z = (z ^ z >> 27) * 0x94D049BB133111EB
                         z =  z ^ z >> 31

Only integers and BLAKE2b are involved: the same in every process, platform and Python version
(no ``hash()``). :class:`Ranking` computes the same order for many addresses over one node set
at once, holding every node's key in one lane of a big integer so that each step of ``mix`` is
one integer operation for all nodes.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable

_PERSON = b"vipcast-l2"
_M64 = (1 << 64) - 1
_C1 = 0xBF58476D1CE4E5B9
_C2 = 0x94D049BB133111EB
#: lane width in :class:`Ranking`: a 64-bit value times a 64-bit constant fits in 128 bits
_LANE = 128


def key(text: str) -> int:
    """The 64-bit key of a node name or an address text."""
    digest = hashlib.blake2b(text.encode(), digest_size=8, person=_PERSON).digest()
    return int.from_bytes(digest, "big")


def mix(z: int) -> int:
    """SplitMix64's finalizer: a bijection on 64-bit integers with good avalanche."""
    z = ((z ^ (z >> 30)) * _C1) & _M64
    z = ((z ^ (z >> 27)) * _C2) & _M64
    return z ^ (z >> 31)


def score(node: str, ip: str) -> int:
    """The node's rank for ``ip``: the lowest score among the eligible nodes owns the address."""
    return mix(key(node) ^ key(ip))


class Ranking:
    """The candidate order of any address over one fixed set of nodes.

    ``Ranking(nodes).order(ip)`` equals the nodes sorted by ``(score(node, ip), node)``.
    """

    def __init__(self, nodes: Iterable[str]) -> None:
        self.nodes: tuple[str, ...] = tuple(sorted(set(nodes)))
        count = len(self.nodes)
        self._indexes = range(count)
        self._repeat = sum(1 << (_LANE * i) for i in self._indexes)
        self._low = _M64 * self._repeat
        self._keys = sum(key(n) << (_LANE * i) for i, n in enumerate(self.nodes))
        self._size = count * _LANE // 8
        self._lanes = struct.Struct("<" + "Q8x" * count)

    def scores(self, ip: str) -> tuple[int, ...]:
        """``score(node, ip)`` for every node of :attr:`nodes`, in that order."""
        low = self._low
        z = self._keys ^ (key(ip) * self._repeat)
        z = ((z ^ ((z >> 30) & low)) * _C1) & low
        z = ((z ^ ((z >> 27) & low)) * _C2) & low
        z ^= (z >> 31) & low
        lanes: tuple[int, ...] = self._lanes.unpack(z.to_bytes(self._size, "little"))
        return lanes

    def order(self, ip: str) -> tuple[str, ...]:
        """The nodes in candidate order for ``ip`` (sort is stable: ties keep name order)."""
        by_score = sorted(self._indexes, key=self.scores(ip).__getitem__)
        return tuple(map(self.nodes.__getitem__, by_score))


def l2_candidates(ip: str, nodes: Iterable[str]) -> tuple[str, ...]:
    """Eligible nodes in candidate order; the first is the owner while it is alive."""
    return Ranking(nodes).order(ip)
