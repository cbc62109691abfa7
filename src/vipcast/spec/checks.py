"""Cross-object checks of a Spec: every finding is an Issue naming file, object and field."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence

from vipcast.spec.addresses import AddressRange
from vipcast.spec.cni_checks import check_cni
from vipcast.spec.errors import Issue
from vipcast.spec.gateway.checks import check_gateway_objects
from vipcast.spec.keystone import keystone_credential
from vipcast.spec.kube import ANNOTATION_IPS, Service, annotation
from vipcast.spec.load import Spec, requested_ips
from vipcast.spec.meta import LabelSelector
from vipcast.spec.objects import IPAddressPool, parse_community


def check_all(spec: Spec) -> list[Issue]:
    return [
        *_pool_overlaps(spec),
        *_selectors(spec),
        *_advertisement_refs(spec),
        *_peer_refs(spec),
        *_communities(spec),
        *_providers(spec),
        *check_gateway_objects(spec),
        *check_cni(spec),
    ]


def _issue(spec: Spec, kind: str, name: str, field: str, message: str) -> Issue:
    return Issue(spec.origins.get(f"{kind}/{name}", ""), kind, name, field, message)


def _pool_overlaps(spec: Spec) -> Iterator[Issue]:
    ranges: list[tuple[str, int, AddressRange]] = [
        (pool.name, i, r) for pool in spec.pools for i, r in enumerate(pool.spec.ranges)
    ]
    ranges.sort(key=lambda t: (t[2].version, t[2].first))
    # sorted sweep: a range overlaps an earlier one iff it starts before the furthest end so far
    widest: tuple[str, AddressRange] | None = None
    for name, i, cur in ranges:
        if widest is not None and widest[1].overlaps(cur) and widest[0] != name:
            yield _issue(
                spec, "IPAddressPool", name, f"spec.addresses[{i}]",
                f"{cur.text} overlaps {widest[1].text} of pool {widest[0]}",
            )
        if widest is None or widest[1].version != cur.version or cur.last > widest[1].last:
            widest = (name, cur)


def _selector_issues(
    spec: Spec, kind: str, name: str, field: str, selectors: Sequence[LabelSelector]
) -> Iterator[Issue]:
    for i, sel in enumerate(selectors):
        for problem in sel.contradictions():
            yield _issue(spec, kind, name, f"{field}[{i}]", f"selector can never match: {problem}")


def _selectors(spec: Spec) -> Iterator[Issue]:
    for pool in spec.pools:
        alloc = pool.spec.service_allocation
        if alloc:
            yield from _selector_issues(
                spec, "IPAddressPool", pool.name, "spec.serviceAllocation.namespaceSelectors",
                alloc.namespace_selectors,
            )
            yield from _selector_issues(
                spec, "IPAddressPool", pool.name, "spec.serviceAllocation.serviceSelectors",
                alloc.service_selectors,
            )
    for peer in spec.peers:
        yield from _selector_issues(
            spec, "BGPPeer", peer.name, "spec.nodeSelectors", peer.spec.node_selectors
        )
    for kind, advs in (("BGPAdvertisement", spec.bgp_advertisements),
                       ("L2Advertisement", spec.l2_advertisements)):
        for adv in advs:
            yield from _selector_issues(
                spec, kind, adv.name, "spec.nodeSelectors", adv.spec.node_selectors
            )
            yield from _selector_issues(
                spec, kind, adv.name, "spec.ipAddressPoolSelectors",
                adv.spec.ip_address_pool_selectors,
            )


def _pool_refs(
    spec: Spec, kind: str, name: str, names: Sequence[str]
) -> Iterator[Issue]:
    for i, pool in enumerate(names):
        if spec.pool(pool) is None:
            yield _issue(spec, kind, name, f"spec.ipAddressPools[{i}]", f"unknown pool {pool!r}")


def _min_prefix(pool: IPAddressPool, version: int) -> int | None:
    """The longest prefix length among the CIDRs that make up the pool's ranges of a family."""
    longest: int | None = None
    for r in pool.spec.ranges:
        if r.version != version:
            continue
        if r.prefixlen is not None:
            lengths = [r.prefixlen]
        else:
            nets = ipaddress.summarize_address_range(r.address(r.first), r.address(r.last))
            lengths = [n.prefixlen for n in nets]
        top = max(lengths)
        longest = top if longest is None else max(longest, top)
    return longest


def _advertisement_refs(spec: Spec) -> Iterator[Issue]:
    for adv in spec.l2_advertisements:
        yield from _pool_refs(spec, "L2Advertisement", adv.name, adv.spec.ip_address_pools)
    for bgp in spec.bgp_advertisements:
        yield from _pool_refs(spec, "BGPAdvertisement", bgp.name, bgp.spec.ip_address_pools)
        for i, peer in enumerate(bgp.spec.peers):
            if spec.peer(peer) is None:
                yield _issue(
                    spec, "BGPAdvertisement", bgp.name, f"spec.peers[{i}]",
                    f"unknown BGPPeer {peer!r}",
                )
        pools = spec.pools_selected(
            bgp.spec.ip_address_pools, bgp.spec.ip_address_pool_selectors
        )
        for pool in pools:
            for version, field, agg in ((4, "aggregationLength", bgp.spec.aggregation_length),
                                        (6, "aggregationLengthV6", bgp.spec.aggregation_length_v6)):
                longest = _min_prefix(pool, version)
                if longest is not None and agg < longest:
                    yield _issue(
                        spec, "BGPAdvertisement", bgp.name, f"spec.{field}",
                        f"{agg} is shorter than the /{longest} blocks of pool {pool.name}: "
                        "the aggregate would announce addresses outside the pool",
                    )


def _peer_refs(spec: Spec) -> Iterator[Issue]:
    for peer in spec.peers:
        profile = peer.spec.bfd_profile
        if profile and spec.bfd_profile(profile) is None:
            yield _issue(
                spec, "BGPPeer", peer.name, "spec.bfdProfile", f"unknown BFDProfile {profile!r}"
            )


def _communities(spec: Spec) -> Iterator[Issue]:
    seen: dict[str, str] = {}
    for obj in spec.communities:
        for i, alias in enumerate(obj.spec.communities):
            if alias.name in seen:
                yield _issue(
                    spec, "Community", obj.name, f"spec.communities[{i}].name",
                    f"alias {alias.name!r} is also defined in Community {seen[alias.name]}",
                )
            seen[alias.name] = obj.name
    for bgp in spec.bgp_advertisements:
        for i, text in enumerate(bgp.spec.communities):
            if parse_community(text) is None and text not in seen:
                yield _issue(
                    spec, "BGPAdvertisement", bgp.name, f"spec.communities[{i}]",
                    f"unknown community alias {text!r}",
                )


def service_issues(source: str, svc: Service) -> Iterator[Issue]:
    """The checks of one Service that need nothing else (run per document, when it is
    validated: a source caches them with the Service)."""
    key = svc.key

    def issue(field: str, message: str) -> Issue:
        return Issue(source, "Service", key, field, message)

    try:
        ips = requested_ips(svc)
    except ValueError:
        raw = annotation(svc.metadata, ANNOTATION_IPS)
        yield issue(f"metadata.annotations[{ANNOTATION_IPS}]",
                    f"{raw!r} is not a comma-separated list of IP addresses")
        return
    versions = [6 if ":" in ip else 4 for ip in ips]  # canonical text (requested_ips)
    if len(versions) != len(set(versions)):
        yield issue(f"metadata.annotations[{ANNOTATION_IPS}]",
                    "at most one requested IP per family")
    for i, cidr in enumerate(svc.spec.load_balancer_source_ranges):
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            yield issue(f"spec.loadBalancerSourceRanges[{i}]", f"{cidr!r} is not a CIDR")


def _providers(spec: Spec) -> Iterator[Issue]:
    classes: dict[str, str] = {}
    provider_pools: dict[str, str] = {}
    for prov in spec.providers:
        kind, name = "LoadBalancerProvider", prov.name
        cls = prov.load_balancer_class
        if cls in classes:
            yield _issue(spec, kind, name, "spec.loadBalancerClass",
                         f"class {cls} is also served by LoadBalancerProvider {classes[cls]}")
        classes.setdefault(cls, name)
        for i, pool_name in enumerate(prov.spec.options.address_pools):
            field = f"spec.options.addressPools[{i}]"
            pool = spec.pool(pool_name)
            if pool is None:
                yield _issue(spec, kind, name, field, f"unknown pool {pool_name!r}")
            elif pool.spec.auto_assign:
                yield _issue(spec, kind, name, field,
                             f"pool {pool_name} must have autoAssign: false (else vipcast's own "
                             "Services could be given the same addresses)")
            elif pool_name in provider_pools:
                yield _issue(spec, kind, name, field,
                             f"pool {pool_name} is also used by LoadBalancerProvider "
                             f"{provider_pools[pool_name]}")
            provider_pools.setdefault(pool_name, name)
        if prov.spec.driver == "octavia" and not (
            prov.spec.options.vip_subnet_id or prov.spec.options.vip_network_id
        ):
            yield _issue(spec, kind, name, "spec.options",
                         "the octavia driver needs vipSubnetId or vipNetworkId")


def password_problems(spec: Spec) -> list[Issue]:
    """Peers whose ``passwordSecret`` gives no usable password. Not part of :func:`check_all`:
    a missing or broken Secret stops only that peer's session (a condition on the peer), never
    the whole config."""
    out = []
    for peer in spec.peers:
        problem = spec.password_problem(peer)
        if problem is not None:
            out.append(_issue(spec, "BGPPeer", peer.name, "spec.passwordSecret", problem))
    return out


def credential_problems(spec: Spec) -> list[Issue]:
    """LoadBalancerProviders whose ``credentialsSecret`` gives no value. Not part of
    :func:`check_all`, like :func:`password_problems`: a missing Secret stops only that
    provider (its controller reports it), never the whole config -- and vipcast's own
    controller and speakers never read these Secrets at all."""
    out = []
    for prov in spec.providers:
        ref = prov.spec.credentials_secret
        if ref and prov.spec.driver == "octavia":  # the Secret's keys are Keystone's fields
            where = f"Secret {ref.namespace or 'default'}/{ref.name}"
            secret = spec.secret(ref.name, ref.namespace)
            problem = f"{where} not found" if secret is None else None
            if secret is not None:
                try:
                    keystone_credential(secret)
                except ValueError as exc:
                    problem = f"{where}: {exc}"
            if problem:
                out.append(_issue(spec, "LoadBalancerProvider", prov.name,
                                  "spec.credentialsSecret", problem))
            continue
        if ref and spec.secret_value(ref.name, ref.namespace, ref.key) is None:
            out.append(_issue(
                spec, "LoadBalancerProvider", prov.name, "spec.credentialsSecret",
                f"Secret {ref.namespace or 'default'}/{ref.name} with key {ref.key!r} not found",
            ))
    return out
