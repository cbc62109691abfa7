"""The envelope shared by the Gateway API kinds and Ingress: metadata with creation time."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from vipcast.spec.meta import Model, ObjectMeta


class TimedMeta(ObjectMeta):
    """Object metadata plus ``creationTimestamp`` (route precedence ties are broken by it)."""

    #: RFC 3339 as the API server writes it (``2026-12-06T01:02:03Z``); absent in hand-written
    #: files, where such an object counts as created at the epoch
    creation_timestamp: str | None = None
    generation: int | None = None


class GatewayObject(Model):
    """Common envelope: apiVersion, kind, metadata; ``status`` is the controller's, not read."""

    api_version: str
    kind: str
    metadata: TimedMeta
    status: dict[str, Any] | None = Field(default=None, exclude=True)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace or "default"

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.metadata.name}"
