"""``vipcast drain NODE`` / ``undrain NODE`` composed: the Node annotation
``vipcast.io/drain: "true"`` set or removed in the object files (docs/drain.md)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vipcast.core.drain import DRAIN_ANNOTATION
from vipcast.sources.node_annotations import NodeNotFound as NodeNotFound
from vipcast.sources.node_annotations import set_node_annotation


def mark_drain(config: Sequence[Path], node: str, drain: bool) -> Path:
    """Set (``drain``) or remove Node ``node``'s drain annotation; the file edited.
    :class:`NodeNotFound` names the known nodes, and nothing is written then."""
    return set_node_annotation(config, node, DRAIN_ANNOTATION, "true" if drain else None)
