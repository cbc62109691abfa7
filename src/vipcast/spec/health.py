"""The ``vipcast.io/health-check`` Service annotation (pure): parsed and bounded.

Whoever owns a Service sets this annotation, and every node's speaker probes that Service's
backends from the host network as it says. So the values are tenant input and are bounded
here, in one place, for the controller (which reports a bad value as a condition on that
Service) and the speaker (which then uses the default check):

* ``interval`` at least :data:`MIN_INTERVAL` (a probe storm from every node otherwise), at most
  an hour; ``timeout`` at least :data:`MIN_TIMEOUT` and no longer than ``interval``;
* ``rise``/``fall`` in 1..10;
* an HTTP path of RFC 3986 ``path-absolute [ "?" query ]`` characters only, ``%`` only as a
  ``%XX`` escape, at most :data:`MAX_PATH` characters -- no CR/LF, spaces or other bytes that
  could add headers or requests to the probe.

The format: ``"tcp"``, ``"http:/healthz"`` or ``"none"``, optionally followed by
``",interval=1,timeout=0.5,rise=2,fall=3"`` (seconds may carry an ``s``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

CheckKind = Literal["tcp", "http", "none"]
MIN_INTERVAL = 0.25
MAX_INTERVAL = 3600.0
MIN_TIMEOUT = 0.05
MAX_COUNT = 10
MAX_PATH = 256
MAX_ANNOTATION = 512
#: RFC 3986: pchar = unreserved / pct-encoded / sub-delims / ":" / "@"; a query adds "/" "?"
_PATH = re.compile(r"^/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*"
                   r"(?:\?(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*)?$")


@dataclass(frozen=True)
class HealthCheckConfig:
    """How one service's backends are checked."""

    kind: CheckKind = "tcp"
    path: str = "/"
    interval: float = 2.0
    timeout: float = 1.0
    rise: int = 2
    fall: int = 2


def valid_path(path: str) -> bool:
    """An HTTP probe path made of RFC 3986 path (and query) characters only."""
    return len(path) <= MAX_PATH and _PATH.match(path) is not None


def parse_health_check(
    text: str, default: HealthCheckConfig | None = None
) -> HealthCheckConfig | str:
    """The config an annotation value asks for, or a message saying what is wrong with it."""
    if len(text) > MAX_ANNOTATION:
        return f"longer than {MAX_ANNOTATION} characters"
    base = default or HealthCheckConfig()
    head, *options = [part.strip() for part in text.split(",")]
    kind, _, path = head.partition(":")
    kind = kind.strip().lower()
    if kind not in ("tcp", "http", "none"):
        return f"unknown health check kind {kind[:32]!r} (tcp, http:/path or none)"
    cfg = replace(base, kind=kind)  # type: ignore[arg-type]
    if kind == "http":
        path = path or "/"
        if not valid_path(path):
            return (f"HTTP health check path must start with '/' and hold only RFC 3986 path "
                    f"characters (at most {MAX_PATH}): {path[:64]!r}")
        cfg = replace(cfg, path=path)
    elif path:
        return f"{kind} health check takes no path"
    timeout_given = False
    for option in options:
        name, _, value = option.partition("=")
        name = name.strip()
        try:
            if name in ("interval", "timeout"):
                number = float(value.strip().removesuffix("s"))
                low = MIN_INTERVAL if name == "interval" else MIN_TIMEOUT
                if not low <= number <= MAX_INTERVAL:  # also refuses nan
                    return f"{name} must be in [{low}, {MAX_INTERVAL:g}] seconds"
                if name == "interval":
                    cfg = replace(cfg, interval=number)
                else:
                    cfg, timeout_given = replace(cfg, timeout=number), True
            elif name in ("rise", "fall"):
                count = int(value)
                if not 1 <= count <= MAX_COUNT:
                    return f"{name} must be in [1, {MAX_COUNT}]"
                cfg = replace(cfg, rise=count) if name == "rise" else replace(cfg, fall=count)
            else:
                return f"unknown health check option {name[:32]!r}"
        except ValueError:
            return f"bad value for {name}: {value[:32]!r}"
    if cfg.timeout > cfg.interval:
        if timeout_given:
            return f"timeout {cfg.timeout:g}s is longer than interval {cfg.interval:g}s"
        cfg = replace(cfg, timeout=cfg.interval)  # the default timeout fits a short interval
    return cfg
