"""Which address families a service gets (rule: families from ipFamilies), and their names in
reasons."""

from __future__ import annotations

from vipcast.alloc.model import ServiceInput

#: the rule named in reasons (docs/allocation.md has a section for it)
FAMILIES = "rule: families from ipFamilies"


def wanted_families(service: ServiceInput) -> tuple[int, ...]:
    """Families the service should get, in its preference order (rule: families from
    ipFamilies).

    ``ipFamilies`` as the API server settled it decides, as in MetalLB: PreferDualStack with one
    listed family is that family only (the cluster gave the Service one family). Two cases have
    no settled list to follow: an empty ``ipFamilies`` (standalone files, no API server) is
    IPv4, or IPv4 then IPv6 under a dual-stack policy; RequireDualStack with one listed family
    (which an API server never stores) wants both, the listed one first.
    """
    fams = tuple(dict.fromkeys(f for f in service.ip_families if f in (4, 6)))
    if service.ip_family_policy == "SingleStack":
        return fams[:1] or (4,)
    if not fams:
        return (4, 6)
    if len(fams) == 1 and service.ip_family_policy == "RequireDualStack":
        return (fams[0], 10 - fams[0])
    return fams


def family_name(version: int) -> str:
    return f"IPv{version}"
