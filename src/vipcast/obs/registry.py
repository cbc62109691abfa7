"""The metrics registry type: app/ builds one and passes it to every part that has metrics.

Only :mod:`vipcast.obs` imports ``prometheus_client`` (an import-linter contract); other
layers name the registry through this module.
"""

from __future__ import annotations

from prometheus_client.registry import CollectorRegistry

__all__ = ["CollectorRegistry"]
