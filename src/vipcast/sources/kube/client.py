"""The Kubernetes client, as the rest of vipcast sees it.

``vipcast.sources.kube`` is the only package that imports lightkube; the composition roots
(controller, speaker, CLI) take the client type and its error from here.
"""

from __future__ import annotations

from pathlib import Path

from lightkube import ApiError, AsyncClient, KubeConfig

__all__ = ["ApiError", "AsyncClient", "make_client"]


def make_client(kubeconfig: Path | None, namespace: str, field_manager: str) -> AsyncClient:
    """An async client from a kubeconfig file, or the in-cluster/env configuration."""
    config = KubeConfig.from_file(kubeconfig) if kubeconfig else KubeConfig.from_env()
    return AsyncClient(config=config, namespace=namespace, field_manager=field_manager)
