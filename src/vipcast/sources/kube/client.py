"""The Kubernetes client, as the rest of vipcast sees it.

``vipcast.sources.kube`` is the only package that imports lightkube; the composition roots
(controller, speaker, CLI) take the client type and its error from here.
"""

from __future__ import annotations

from pathlib import Path

from lightkube import ApiError, AsyncClient, KubeConfig
from lightkube.core.exceptions import ConfigError

__all__ = ["ApiError", "AsyncClient", "KubeconfigError", "make_client"]


class KubeconfigError(ValueError):
    """No usable client configuration: the kubeconfig file is missing or unreadable, or there is
    neither an in-cluster service account nor a default kubeconfig."""


def make_client(kubeconfig: Path | None, namespace: str, field_manager: str) -> AsyncClient:
    """An async client from a kubeconfig file, or the in-cluster/env configuration."""
    try:
        config = KubeConfig.from_file(kubeconfig) if kubeconfig else KubeConfig.from_env()
    except (ConfigError, OSError, ValueError) as exc:
        where = f"kubeconfig {kubeconfig}" if kubeconfig else "in-cluster/default configuration"
        raise KubeconfigError(f"{where}: {exc}") from exc
    return AsyncClient(config=config, namespace=namespace, field_manager=field_manager)
