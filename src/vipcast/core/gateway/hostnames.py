"""Hostnames as the Gateway API reads them: ``*.example.com`` matches one or more labels in
front of ``example.com`` (never ``example.com`` itself); ``*`` stands for "any hostname"."""

from __future__ import annotations

ANY = "*"


def matches(pattern: str, host: str) -> bool:
    """Whether the hostname ``pattern`` (exact, ``*.`` wildcard or ``*``) covers ``host``.

    ``host`` may itself be a wildcard: ``*.com`` covers ``*.example.com``.
    """
    if pattern in (ANY, host):
        return True
    if host == ANY or not pattern.startswith("*."):
        return False
    suffix = pattern[1:]  # ".example.com"
    return host.endswith(suffix) and len(host) > len(suffix)


def intersect(listener: str | None, route: str | None) -> str | None:
    """The hostnames both a listener's and a route's hostname accept (None when none).

    None stands for "no hostname" (any). The result is the more specific of the two.
    """
    lis = listener or ANY
    rte = route or ANY
    if matches(lis, rte):
        return rte
    if matches(rte, lis):
        return lis
    return None


def specificity(hostname: str) -> tuple[int, int]:
    """Precedence of a matching hostname (higher first): characters of a non-wildcard
    hostname, then characters of the hostname (the Gateway API's order)."""
    if hostname == ANY:
        return (0, 0)
    exact = 0 if hostname.startswith("*.") else len(hostname)
    return (exact, len(hostname))


def most_specific(patterns: list[str | None], host: str) -> str | bool | None:
    """Of listener hostnames, the most specific one covering ``host`` (False: none does)."""
    covering = [p for p in patterns if matches(p or ANY, host)]
    if not covering:
        return False
    return max(covering, key=lambda p: specificity(p or ANY))
