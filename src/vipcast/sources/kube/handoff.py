"""The hand-off's writers in a cluster (coexistence mode ``HandOff``, docs/cni.md).

Consumers of plans, never sources: what they write comes from :mod:`vipcast.core.handoff`.

- :class:`FrrK8sHandOff` (a speaker's plan consumer): this node's ``FRRConfiguration``
  ``vipcast-<node>`` in the FRR-K8s namespace, exactly what the node announces to its hand-off
  peers; deleted when the node hands nothing to FRR-K8s any more.
- :func:`write_calico` (the controller, leader only): ``spec.serviceLoadBalancerIPs`` of an
  existing Calico ``BGPConfiguration``. vipcast never creates Calico's global configuration: a
  missing object is reported (and retried), not made up.

Both write with server-side apply under their own field manager, force on: vipcast owns the
fields it writes (Calico declares ``serviceLoadBalancerIPs`` an atomic list). Writes happen in
a background task (:meth:`FrrK8sHandOff.run`) so the node's plan pipeline never waits on the
API server; a failed write is retried with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import httpx2 as httpx
from lightkube import ApiError, AsyncClient
from lightkube.generic_resource import create_global_resource, create_namespaced_resource

from vipcast.core.backoff import Backoff
from vipcast.core.desired import NodePlan
from vipcast.core.handoff import frr_configuration, frr_configuration_name, handed_routes

log = logging.getLogger(__name__)

CALICO_GROUP, CALICO_VERSION = "crd.projectcalico.org", "v1"
FRR_K8S_GROUP, FRR_K8S_VERSION = "frrk8s.metallb.io", "v1beta1"
BGP_CONFIGURATIONS = create_global_resource(CALICO_GROUP, CALICO_VERSION, "BGPConfiguration",
                                            "bgpconfigurations")
FRR_CONFIGURATIONS = create_namespaced_resource(FRR_K8S_GROUP, FRR_K8S_VERSION,
                                                "FRRConfiguration", "frrconfigurations")
SPEAKER_HAND_OFF_MANAGER = "vipcast-speaker-handoff"
CONTROLLER_HAND_OFF_MANAGER = "vipcast-controller-handoff"


async def write_calico(client: AsyncClient, name: str, entries: list[dict[str, str]],
                       field_manager: str = CONTROLLER_HAND_OFF_MANAGER) -> str | None:
    """Set ``serviceLoadBalancerIPs`` of the BGPConfiguration ``name``; None when written,
    else why not (the object does not exist, the API refused, unreachable)."""
    try:
        await client.get(BGP_CONFIGURATIONS, name)
    except ApiError as exc:
        if exc.status.code == 404:
            return (f"BGPConfiguration {name} not found: vipcast writes its "
                    "serviceLoadBalancerIPs but never creates Calico's configuration")
        return f"BGPConfiguration {name}: {exc.status.message}"
    except (httpx.HTTPError, OSError) as exc:
        return f"BGPConfiguration {name}: {exc}"
    body = {"apiVersion": f"{CALICO_GROUP}/{CALICO_VERSION}", "kind": "BGPConfiguration",
            "metadata": {"name": name}, "spec": {"serviceLoadBalancerIPs": entries}}
    try:
        await client.apply(BGP_CONFIGURATIONS.from_dict(body), name,
                           field_manager=field_manager, force=True)
    except ApiError as exc:
        return f"BGPConfiguration {name}: {exc.status.message}"
    except (httpx.HTTPError, OSError) as exc:
        return f"BGPConfiguration {name}: {exc}"
    return None


class FrrK8sHandOff:
    """A plan consumer of the speaker: this node's FRRConfiguration, from its plan."""

    def __init__(self, client: AsyncClient, node: str,
                 field_manager: str = SPEAKER_HAND_OFF_MANAGER,
                 namespaces: tuple[str, ...] = ()) -> None:
        """``namespaces``: where this node's object may be left from before (a config that no
        longer hands off, a restart): it is deleted there unless the plan wants it."""
        self.client = client
        self.node = node
        self.field_manager = field_manager
        #: namespace -> the object wanted there (None: none; delete ours if it exists)
        self.wanted: dict[str, dict[str, Any] | None] = {ns: None for ns in namespaces}
        self.written: dict[str, dict[str, Any] | None] = {}
        self._changed = asyncio.Event()
        self._started = bool(namespaces)
        self.writes = 0
        self.deletes = 0
        self.errors = 0

    async def apply(self, plan: NodePlan) -> None:
        wanted: dict[str, dict[str, Any] | None] = {ns: None for ns in self.wanted}
        for target in plan.hand_off:
            if target.kind == "frrK8s":
                wanted[target.namespace] = frr_configuration(
                    self.node, target, handed_routes(plan, target))
        if wanted != self.wanted or self._started:
            self._started = False
            self.wanted = wanted
            self._changed.set()

    async def run(self, backoff: Backoff | None = None, seed: int | None = None) -> None:
        """Write each change (cancel to stop)."""
        backoff = backoff or Backoff(base=0.5, cap=30.0, jitter=0.2, rng=random.Random(seed))
        while True:
            await self._changed.wait()
            self._changed.clear()
            failed = False
            for namespace, body in list(self.wanted.items()):
                if namespace in self.written and self.written[namespace] == body:
                    continue
                if await self._write(namespace, body):
                    self.written[namespace] = body
                else:
                    failed = True
            if failed:
                self._changed.set()
                await asyncio.sleep(backoff.next_delay())
            else:
                backoff.reset()

    async def _write(self, namespace: str, body: dict[str, Any] | None) -> bool:
        name = frr_configuration_name(self.node)
        try:
            if body is None:
                try:
                    await self.client.delete(FRR_CONFIGURATIONS, name, namespace=namespace)
                    self.deletes += 1
                except ApiError as exc:
                    if exc.status.code != 404:
                        raise
            else:
                await self.client.apply(FRR_CONFIGURATIONS.from_dict(body), name,
                                        namespace=namespace, field_manager=self.field_manager,
                                        force=True)
                self.writes += 1
        except ApiError as exc:
            self.errors += 1
            log.warning("FRRConfiguration %s/%s not written: %s", namespace, name,
                        exc.status.message)
            return False
        except (httpx.HTTPError, OSError) as exc:
            self.errors += 1
            log.warning("FRRConfiguration %s/%s not written: %s", namespace, name, exc)
            return False
        return True
