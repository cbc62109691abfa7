"""Untyped documents at the edges: a decoded JSON/YAML object before (or instead of) a model.

Kubernetes objects as the API server sends them, libnftables commands, AS3 declarations and
CRD schemas are all this one shape; name it once here, the lowest layer, so every package
says the same thing.
"""

from __future__ import annotations

from typing import Any

#: one decoded JSON object (a Kubernetes object, a libnftables command, an AS3 declaration)
JSON = dict[str, Any]

__all__ = ["JSON"]
