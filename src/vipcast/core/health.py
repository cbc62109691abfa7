"""What the plan tells the health checker to probe (pure).

Per-service configuration comes from the ``vipcast.io/health-check`` annotation, parsed and
bounded by :func:`vipcast.spec.health.parse_health_check`. :func:`health_targets` turns a
node's NAT rules into the backends to probe, each with its config: the plan carries them, the
composition root hands them to the runtime's checker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from vipcast.core.desired import HealthTarget, NatRule
from vipcast.spec.health import CheckKind, HealthCheckConfig, parse_health_check

ANNOTATION = "vipcast.io/health-check"

__all__ = ["ANNOTATION", "CheckKind", "HealthCheckConfig", "HealthTarget", "health_targets",
           "parse_health_check"]


def health_targets(
    rules: Iterable[NatRule],
    configs: Mapping[str, HealthCheckConfig],
    usable: Callable[[NatRule], Iterable[tuple[str, int]]],
    default: HealthCheckConfig | None = None,
) -> tuple[HealthTarget, ...]:
    """Every TCP backend ``usable`` lists for the rules, with the services it serves and the
    config of the first of them (by name) that has one (else ``default``).

    UDP and SCTP ports cannot be checked by a TCP connect or an HTTP GET, so their backends
    are not probed (they count as healthy while ready)."""
    base = default or HealthCheckConfig()
    targets: dict[tuple[str, int], set[str]] = {}
    for rule in rules:
        if rule.protocol != "TCP":
            continue
        for key in usable(rule):
            targets.setdefault(key, set()).add(rule.service)
    out = []
    for (ip, port), services in sorted(targets.items()):
        names = tuple(sorted(services))
        config = next((configs[s] for s in names if s in configs), base)
        out.append(HealthTarget(ip, port, names, config))
    return tuple(out)
