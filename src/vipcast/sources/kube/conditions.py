"""The two Service conditions the controller writes (pure: values in, condition dicts out).

* ``vipcast.io/Allocated``: ``True`` (reason ``Allocated``) when the Service holds every
  address it asked for (the allocator's ``Assigned``, ``Kept``, ``Requested``, ``Moved``),
  else ``False`` with the allocator's reason (``PoolExhausted``, ``RequestedIPTaken``,
  ``NoEligiblePool``, ...) and its message (which names the holder of a taken address).
* ``vipcast.io/Announced``: ``True`` when at least one node's speaker announces all of the
  Service's addresses (message: which nodes, how), else ``False``: ``NotAllocated``,
  ``NoSpeakerReport`` (no speaker has reported yet) or ``NotAnnounced`` (each reporting node's
  reason, from its ``NodeAnnouncement``).

A Service that stops being a LoadBalancer (or leaves our class) loses its ingress and keeps
both conditions, ``False`` with reason ``NotLoadBalancer``/``NotAllocated``: removing
conditions by omission depends on field ownership that other writers can reset.

``lastTransitionTime`` moves only when a condition's status flips.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from vipcast.alloc import Assignment, Reason
from vipcast.sources.kube.announcements import ServiceAnnouncements
from vipcast.spec import ANNOTATION_HEALTH, BGPPeer, Spec
from vipcast.spec.documents import JSON
from vipcast.spec.health import parse_health_check

ALLOCATED = "vipcast.io/Allocated"
#: on a Service with the ``vipcast.io/health-check`` annotation: whether its value is usable
HEALTH_CHECK = "vipcast.io/HealthCheck"
#: on a BGPPeer with ``passwordSecret``: whether its Secret gives a usable password
PASSWORD_RESOLVED = "vipcast.io/PasswordResolved"
ANNOUNCED = "vipcast.io/Announced"
#: on a CNISpeaker with ``handOff.calico``: whether vipcast could write its BGPConfiguration
HANDED_OFF = "vipcast.io/HandedOff"
OUR_TYPES = (ALLOCATED, ANNOUNCED)
MAX_MESSAGE = 1024
_SHOWN_NODES = 8



def _cond(type_: str, ok: bool, reason: str, message: str) -> JSON:
    return {"type": type_, "status": "True" if ok else "False", "reason": reason,
            "message": message[:MAX_MESSAGE]}


def allocated_condition(assignment: Assignment) -> JSON:
    if assignment.ok and assignment.ips:
        # granted: the addresses and pool only. The allocator's message differs between the
        # round that assigned ("from pool p") and every later one ("unchanged"), so using it
        # rewrote every Service's status once more, and again after each leader change (at
        # 50,000 Services that is minutes of writes at the QPS limit: docs/scale.md)
        message = ", ".join(assignment.ips) + (f" from pool {assignment.pool}"
                                               if assignment.pool else "")
    elif assignment.message:
        message = assignment.message
    elif assignment.reason is Reason.NOT_LOAD_BALANCER:
        message = "not of type LoadBalancer: no address (any held were released)"
    elif assignment.ips:
        message = ", ".join(assignment.ips) + (f" from pool {assignment.pool}"
                                               if assignment.pool else "")
    else:
        message = "no address allocated"
    # granted: one stable reason (Assigned, then Kept next round, would rewrite the status
    # once more for nothing); the decision itself is in the Events
    reason = "Allocated" if assignment.ok else str(assignment.reason)
    return _cond(ALLOCATED, assignment.ok, reason, message)


def _nodes(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_SHOWN_NODES])
    more = len(items) - _SHOWN_NODES
    return shown + (f" and {more} more" if more > 0 else "")


def announced_condition(ips: Sequence[str], reporting_nodes: int,
                        seen: ServiceAnnouncements | None) -> JSON:
    if not ips:
        return _cond(ANNOUNCED, False, "NotAllocated", "no address allocated")
    want = set(ips)
    full = [(node, modes) for node, got, modes in (seen.by if seen else ())
            if want <= set(got)]
    if full:
        modes = sorted({m for _, ms in full for m in ms})
        return _cond(ANNOUNCED, True, "Announced",
                     f"announced by {len(full)} node(s) over {'+'.join(modes)}: "
                     f"{_nodes([n for n, _ in full])}")
    if reporting_nodes == 0:
        return _cond(ANNOUNCED, False, "NoSpeakerReport", "no speaker has reported yet")
    parts = [f"{node}: {reason}" for node, reason, _ in (seen.withheld if seen else ())]
    partial = [node for node, _, _ in (seen.by if seen else ())]
    if partial:
        parts.append(f"only some addresses on {_nodes(partial)}")
    why = "; ".join(parts[:_SHOWN_NODES]) if parts else "not in any speaker's report yet"
    if seen and seen.withheld:
        why += f" ({seen.withheld[0][2]})"
    return _cond(ANNOUNCED, False, "NotAnnounced",
                 f"not announced by any of {reporting_nodes} speaker(s): {why}")


def health_check_condition(text: str) -> JSON:
    """``vipcast.io/HealthCheck`` of a Service carrying the health-check annotation: a bad
    value is reported here, and the speakers use the default check instead."""
    parsed = parse_health_check(text)
    if isinstance(parsed, str):
        return _cond(HEALTH_CHECK, False, "InvalidAnnotation",
                     f"{ANNOTATION_HEALTH}: {parsed}; the default TCP check is used")
    what = f"{parsed.kind}" + (f" {parsed.path}" if parsed.kind == "http" else "")
    return _cond(HEALTH_CHECK, True, "Valid",
                 f"{what} every {parsed.interval:g}s (timeout {parsed.timeout:g}s, "
                 f"rise {parsed.rise}, fall {parsed.fall})" if parsed.kind != "none"
                 else "no health check")


def password_condition(spec: Spec, peer: BGPPeer, namespace: str,
                       readable: Sequence[str]) -> JSON:
    """``vipcast.io/PasswordResolved`` of a peer that names a ``passwordSecret``."""
    problem = spec.password_problem(peer)
    if problem is None:
        return _cond(PASSWORD_RESOLVED, True, "Resolved", "the Secret gives the TCP-MD5 password")
    ref = peer.spec.password_secret
    hint = ""
    if ref is not None and (ref.name not in readable or ref.namespace not in (None, namespace)):
        hint = (f" (vipcast reads only the Secrets of namespace {namespace} that its "
                f"installation names: {', '.join(readable) or 'none'})")
    return _cond(PASSWORD_RESOLVED, False, "SecretNotUsable",
                 f"{problem}: no BGP session to this peer until it is fixed{hint}")


def handed_off_condition(bgp_configuration: str, count: int, problem: str | None) -> JSON:
    """``vipcast.io/HandedOff`` of a CNISpeaker that hands off to Calico."""
    if problem is None:
        return _cond(HANDED_OFF, True, "Written",
                     f"{count} serviceLoadBalancerIPs in BGPConfiguration {bgp_configuration}")
    reason = "BGPConfigurationNotFound" if "not found" in problem else "WriteFailed"
    return _cond(HANDED_OFF, False, reason, problem)


def merged(existing: Sequence[Mapping[str, Any]], wanted: Sequence[JSON], generation: int | None,
           now: datetime | None = None) -> list[JSON]:
    """Our wanted conditions with ``lastTransitionTime`` kept from ``existing`` unless the
    status flipped (conditions of other types are not ours: SSA leaves them alone)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    old = {c.get("type"): c for c in existing}
    out = []
    for cond in wanted:
        prev = old.get(cond["type"])
        keep = prev is not None and prev.get("status") == cond["status"] and prev.get(
            "lastTransitionTime")
        out.append({**cond, "lastTransitionTime": prev["lastTransitionTime"] if keep and prev
                    else stamp,
                    **({"observedGeneration": generation} if generation is not None else {})})
    return out


def conditions_up_to_date(existing: Sequence[Mapping[str, Any]], wanted: Sequence[JSON],
                          generation: int | None) -> bool:
    old = {c.get("type"): c for c in existing}
    for cond in wanted:
        prev = old.get(cond["type"])
        if prev is None or any(prev.get(k) != cond[k] for k in ("status", "reason", "message")):
            return False
        if generation is not None and prev.get("observedGeneration") != generation:
            return False
    return True


def current_conditions(service: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list((service.get("status") or {}).get("conditions") or ())
