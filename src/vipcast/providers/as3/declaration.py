"""AS3 declarations from desired load balancers, and back (pure).

One AS3 Application per load balancer inside the provider's Tenant; per listener a
``Service_TCP`` / ``Service_UDP`` (``vs-<proto>-<port>``), a ``Pool`` (``pool-…``) and a
``Monitor`` (``mon-…``). What the model needs back that AS3 has no field for (the owning
Service, rise/fall of the monitor, the member's node) rides in ``metadata`` and ``remark``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from vipcast.core.external import DesiredLB, HealthMonitor, Listener, Member, Protocol
from vipcast.spec.documents import JSON

SCHEMA_VERSION = "3.56.0"
_CLASS = {"TCP": "Service_TCP", "UDP": "Service_UDP"}
_PROTOCOL: dict[str, Protocol] = {"Service_TCP": "TCP", "Service_UDP": "UDP"}
_MODE = {"ROUND_ROBIN": "round-robin", "LEAST_CONNECTIONS": "least-connections-member",
         "SOURCE_IP": "round-robin"}
_ALGORITHM = {"round-robin": "ROUND_ROBIN", "least-connections-member": "LEAST_CONNECTIONS"}


def _meta(**values: str) -> JSON:
    return {k: {"value": v} for k, v in values.items()}


def _monitor(listener: Listener) -> JSON:
    mon = listener.monitor
    out: JSON = {"class": "Monitor", "monitorType": "http" if mon.kind == "HTTP" else "tcp",
                 "interval": max(1, round(mon.interval)), "timeout": max(1, round(mon.timeout))}
    if mon.kind == "HTTP":
        out["send"] = f"GET {mon.path or '/'} HTTP/1.0\\r\\n\\r\\n"
        out["receive"] = "200"
    if mon.port is not None:
        out["targetPort"] = mon.port
    return out


def application(lb: DesiredLB) -> JSON:
    """The AS3 Application of one load balancer."""
    app: JSON = {"class": "Application", "remark": "managed by vipcast"}
    for listener in lb.listeners:
        suffix = listener.name
        app[f"mon-{suffix}"] = _monitor(listener)
        app[f"pool-{suffix}"] = {
            "class": "Pool",
            "loadBalancingMode": _MODE[listener.algorithm],
            "monitors": [{"use": f"mon-{suffix}"}],
            "members": [{"servicePort": m.port, "serverAddresses": [m.address],
                         "ratio": m.weight, "remark": m.node,
                         "adminState": "enable" if m.weight else "disable"}
                        for m in listener.members],
            "metadata": _meta(
                vipcast_service=listener.service,
                vipcast_monitor=json.dumps([listener.monitor.kind, listener.monitor.port,
                                            listener.monitor.path, listener.monitor.interval,
                                            listener.monitor.timeout, listener.monitor.rise,
                                            listener.monitor.fall]),
                vipcast_algorithm=listener.algorithm,
            ),
        }
        # a source range: the [destination, accept-from] pair AS3 documents
        address: Any = [lb.vip, listener.allowed_cidrs[0]] if listener.allowed_cidrs else lb.vip
        app[f"vs-{suffix}"] = {
            "class": _CLASS[listener.protocol],
            "virtualAddresses": [address],
            "virtualPort": listener.port,
            "pool": f"pool-{suffix}",
        }
    return app


def declaration(tenant: str, apps: Mapping[str, JSON], decl_id: str) -> JSON:
    """The AS3 request that deploys ``tenant`` with exactly these applications."""
    return {
        "class": "AS3",
        "action": "deploy",
        "persist": True,
        "declaration": {
            "class": "ADC",
            "schemaVersion": SCHEMA_VERSION,
            "id": decl_id,
            "label": "vipcast",
            tenant: {"class": "Tenant", **{name: apps[name] for name in sorted(apps)}},
        },
    }


def applications(tenant_decl: Mapping[str, Any]) -> dict[str, JSON]:
    """The Application objects of a Tenant (what GET .../declare/<tenant> holds for it)."""
    return {k: v for k, v in tenant_decl.items()
            if isinstance(v, dict) and v.get("class") == "Application"}


def load_balancer(name: str, app: Mapping[str, Any]) -> DesiredLB:
    """The model's view of an Application this module rendered (for ``get`` and drift)."""
    listeners = []
    vip: str | None = None
    for _name, vs in sorted(app.items()):
        if not (isinstance(vs, dict) and vs.get("class") in _PROTOCOL):
            continue
        pool = app.get(vs.get("pool", ""), {})
        meta = pool.get("metadata", {})
        kind, port, path, interval, timeout, rise, fall = json.loads(
            meta.get("vipcast_monitor", {}).get("value", '["TCP",null,null,5,3,2,3]'))
        members = tuple(sorted(
            Member(addr, m["servicePort"], m.get("remark", ""), m.get("ratio", 1))
            for m in pool.get("members", ()) for addr in m.get("serverAddresses", ())))
        address = vs["virtualAddresses"][0]
        vip, cidrs = (address[0], (address[1],)) if isinstance(address, list) else (address, ())
        listeners.append(Listener(
            _PROTOCOL[vs["class"]], vs["virtualPort"], members,
            HealthMonitor(kind, port, path, interval, timeout, rise, fall), cidrs, "none",
            meta.get("vipcast_algorithm", {}).get("value", "ROUND_ROBIN"),
            meta.get("vipcast_service", {}).get("value", ""),
        ))
    listeners.sort(key=lambda x: (x.protocol, x.port))
    services = tuple(sorted({x.service for x in listeners}))
    return DesiredLB(name, services, vip, tuple(listeners))
