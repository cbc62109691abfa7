"""Editing one annotation of a Node object in the object files (``vipcast drain NODE``).

The file holding the Node is rewritten whole (its other documents kept, in order) through a
temporary file and a rename, so an agent watching the files sees either the old or the new
content. Comments in that file are not kept (PyYAML does not carry them).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from vipcast.sources.files import config_files


class NodeNotFound(LookupError):
    """No Node object by that name in the files (the message lists the known ones)."""


def _nodes_in(doc: object) -> Iterable[dict[str, Any]]:
    if not isinstance(doc, dict):
        return
    if doc.get("kind") == "List":
        for item in doc.get("items") or []:
            yield from _nodes_in(item)
    elif doc.get("kind") == "Node":
        yield doc


def set_node_annotation(paths: Iterable[str | Path], node: str, key: str,
                        value: str | None) -> Path:
    """Set (or with None remove) annotation ``key`` on Node ``node``; returns the file edited.
    NodeNotFound names the known nodes; nothing is written then."""
    files, _ = config_files(paths)
    known: list[str] = []
    for path in files:
        text = path.read_text()
        docs = list(yaml.safe_load_all(text))
        target = None
        for doc in docs:
            for obj in _nodes_in(doc):
                name = str((obj.get("metadata") or {}).get("name", ""))
                known.append(name)
                if name == node:
                    target = obj
        if target is None:
            continue
        meta = target.setdefault("metadata", {})
        annotations = meta.get("annotations") or {}
        if value is None:
            annotations.pop(key, None)
        else:
            annotations[key] = value
        if annotations:
            meta["annotations"] = annotations
        else:
            meta.pop("annotations", None)
        tmp = path.with_name(f".{path.name}.vipcast-edit")
        tmp.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        os.replace(tmp, path)
        return path
    listed = ", ".join(sorted(set(known))) or "none"
    raise NodeNotFound(f"no Node {node!r} in the object files (known: {listed})")
