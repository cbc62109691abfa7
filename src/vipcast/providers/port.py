"""The driver port: what every external load balancer driver offers (the cloud-provider shape).

``get`` / ``ensure`` / ``update_members`` / ``delete`` mirror Kubernetes' cloud-provider
``GetLoadBalancer`` / ``EnsureLoadBalancer`` / ``UpdateLoadBalancer`` /
``EnsureLoadBalancerDeleted``. Every call is idempotent: ensuring what is already there changes
nothing (``Applied.changes == 0``), deleting what is gone succeeds. Expected failures (the
product is busy or not ready yet, it refused the request, a quota, a wrong credential, it cannot
be reached) are returned as :class:`Retry` values carrying when to try again; anything else
raised by a driver is a bug.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, Protocol

from vipcast.core.external import Capabilities, DesiredLB


class Failure(StrEnum):
    NOT_READY = "NotReady"
    BUSY = "Busy"
    REFUSED = "Refused"
    QUOTA = "Quota"
    BAD_CREDENTIAL = "BadCredential"
    UNREACHABLE = "Unreachable"


@dataclass(frozen=True)
class Retry:
    """An expected failure: nothing (more) was changed; try again after ``retry_after`` s."""

    failure: Failure
    message: str
    retry_after: float


@dataclass(frozen=True)
class Applied:
    """The load balancer is as desired. ``changes`` counts the product objects written."""

    name: str
    vip: str | None
    changes: int
    ip_mode: Literal["VIP", "Proxy"] = "VIP"


Outcome = Applied | Retry


class LoadBalancerDriver(Protocol):
    """One product (HAProxy appliance, Octavia, AS3) behind the port."""

    @property
    def capabilities(self) -> Capabilities: ...

    async def get(self, name: str) -> DesiredLB | Retry | None:
        """The load balancer as the product has it now (in the model's terms), or None."""

    async def ensure(self, desired: DesiredLB) -> Outcome:
        """Create or repair the whole load balancer (VIP, listeners, monitors, members)."""

    async def update_members(self, desired: DesiredLB) -> Outcome:
        """Only the members (nodes came or went); falls back to ``ensure`` when the rest moved."""

    async def delete(self, name: str) -> Outcome:
        """Remove the load balancer and everything under it; gone already is success."""

    async def names(self) -> tuple[str, ...] | Retry:
        """The names of the load balancers this driver manages (for adoption and cleanup)."""
