"""The controller's Service status writes: each Service's status compared with its
assignment in a round, the writes it needs (addresses and conditions, under the client-side
rate limit) and the Events of the decisions that changed its addresses.

Mixed into :class:`~vipcast.app.controller.Controller`, whose round calls :meth:`_assign`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

import httpx2 as httpx

from vipcast.alloc import AllocationResult, Assignment, Reason
from vipcast.app.status_writes import Counts, WritePipeline
from vipcast.core.gateway.address import SUFFIX, readable
from vipcast.sources.kube.announcements import ServiceAnnouncements
from vipcast.sources.kube.client import ApiError, AsyncClient
from vipcast.sources.kube.conditions import (
    OUR_TYPES,
    allocated_condition,
    announced_condition,
    conditions_up_to_date,
    current_conditions,
    health_check_condition,
    merged,
)
from vipcast.sources.kube.status import (
    EventRecorder,
    apply_service_ips,
    current_ingress,
    ingress_up_to_date,
)
from vipcast.spec import ANNOTATION_HEALTH

if TYPE_CHECKING:
    from vipcast.sources.kube.leader import LeaderElector
    from vipcast.sources.kube.ratelimit import TokenBucket

log = logging.getLogger(__name__)

#: Services compared with their status between two returns to the event loop
YIELD_EVERY = 256


class RoundCounts(Counts, Protocol):
    allocated: int


class _Config(Protocol):
    @property
    def field_manager(self) -> str: ...


class ServiceStatusWrites:
    """Mixed into :class:`~vipcast.app.controller.Controller`."""

    if TYPE_CHECKING:
        client: AsyncClient
        config: _Config
        elector: LeaderElector
        events: EventRecorder
        write_limit: TokenBucket
        #: what this leader wrote last round (wins over a status echo still in flight)
        memory: dict[str, tuple[str, ...]]

    async def _assign(self, result: AllocationResult, services: dict[str, dict[str, object]],
                      nodes: int, seen: Mapping[str, ServiceAnnouncements],
                      writes: WritePipeline, written: dict[str, tuple[str, ...]],
                      later: list[tuple[dict[str, object], str, str, str]],
                      report: RoundCounts) -> None:
        """Each Service's status against its assignment: the writes it needs go to
        ``writes`` (in order, ``write_concurrency`` in flight)."""
        for n, (key, assignment) in enumerate(result.assignments.items()):
            if n % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)  # Lease renewals and watches between the Services
            svc = services.get(key)
            if svc is None or assignment.reason is Reason.CLASS_NOT_OURS:
                continue
            if SUFFIX in assignment.message:  # held by a Gateway: say so, by its name
                assignment = replace(assignment, message=readable(assignment.message))
            ips = assignment.ips
            had = current_ingress(svc)
            ours = any(c.get("type") in OUR_TYPES for c in current_conditions(svc))
            if assignment.reason is Reason.NOT_LOAD_BALANCER and not (had or ours):
                continue  # never ours: not touched
            # (no longer a LoadBalancer: the ingress is withdrawn, the conditions say so)
            wanted = [allocated_condition(assignment),
                      announced_condition(ips, nodes, seen.get(key))]
            health = _annotations(svc).get(ANNOTATION_HEALTH)
            if health is not None:
                wanted.append(health_check_condition(health))
            up = (ingress_up_to_date(svc, ips)
                  and conditions_up_to_date(current_conditions(svc), wanted, _generation(svc)))
            if ips:
                report.allocated += 1
            if not up:
                if not self.elector.is_leader:
                    break
                conds = merged(current_conditions(svc), wanted, _generation(svc))
                await writes.submit(self._write_and_tell(svc, assignment, had, conds))
            if (assignment.reason is Reason.KEPT and key not in self.memory and ips
                    and tuple(had) == tuple(ips)):
                # a new leader (or a restart) took these over from Service status
                later.append((svc, "Normal", "IPKept",
                              f"Kept {', '.join(ips)} (rebuilt from Service status)"))
            if ips:
                written[key] = ips
            if not assignment.ok and assignment.reason is not Reason.NOT_LOAD_BALANCER:
                await self.events.emit(svc, "Warning", str(assignment.reason),
                                       assignment.message)

    async def _decision_event(self, svc: dict[str, object], assignment: Assignment,
                              had: tuple[str, ...]) -> None:
        """The Event of a decision that changed a Service's addresses."""
        ips = assignment.ips
        pool = f" from pool {assignment.pool}" if assignment.pool else ""
        why = "; ".join(f"{ip}: {reason}" for ip, reason in assignment.invalidated)
        if ips and had:
            await self.events.emit(svc, "Warning", "IPMoved",
                                   f"Moved from {', '.join(had)} to {', '.join(ips)}{pool}"
                                   + (f" ({why})" if why else ""))
        elif ips:
            await self.events.emit(svc, "Normal", "IPAllocated",
                                   f"Assigned {', '.join(ips)}{pool}")
        else:
            cause = why or assignment.message or str(assignment.reason)
            await self.events.emit(svc, "Normal", "IPReleased",
                                   f"Released {', '.join(had)}: {cause}")

    async def _emit_batch(self, events: list[tuple[dict[str, object], str, str, str]],
                          width: int = 16) -> None:
        for i in range(0, len(events), width):
            await asyncio.gather(*(self.events.emit(*e) for e in events[i:i + width]))

    async def _write_and_tell(self, svc: dict[str, object], assignment: Assignment,
                              had: tuple[str, ...], conditions: list[dict[str, object]]) -> bool:
        """One Service's status, then (written, and its addresses changed) its Event."""
        ok = await self._write(svc, assignment.ips, conditions)
        if ok and tuple(had) != tuple(assignment.ips):
            await self._decision_event(svc, assignment, had)
        return ok

    async def _write(self, svc: dict[str, object], ips: tuple[str, ...],
                     conditions: list[dict[str, object]]) -> bool:
        meta = svc.get("metadata") or {}
        assert isinstance(meta, dict)
        await self.write_limit.take()
        try:
            await apply_service_ips(self.client, str(meta.get("namespace")),
                                    str(meta.get("name")), ips, self.config.field_manager,
                                    conditions)
            return True
        except ApiError as exc:
            log.warning("status of %s/%s not written: %s", meta.get("namespace"),
                        meta.get("name"), exc.status.message)
            return exc.status.code == 404  # gone: nothing to retry
        except (httpx.HTTPError, OSError) as exc:
            log.warning("status of %s/%s not written: %s", meta.get("namespace"),
                        meta.get("name"), exc)
            return False


def _annotations(svc: dict[str, object]) -> dict[str, str]:
    meta = svc.get("metadata") or {}
    assert isinstance(meta, dict)
    found = meta.get("annotations") or {}
    return found if isinstance(found, dict) else {}


def _generation(svc: dict[str, object]) -> int | None:
    meta = svc.get("metadata") or {}
    assert isinstance(meta, dict)
    gen = meta.get("generation")
    return gen if isinstance(gen, int) else None
