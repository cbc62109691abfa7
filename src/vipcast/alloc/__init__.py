"""The address allocator (pure): pools and services in, assignments with reasons out."""

from vipcast.alloc.allocator import allocate
from vipcast.alloc.families import wanted_families
from vipcast.alloc.model import (
    ANNOTATION_IPS,
    ANNOTATION_POOL,
    ANNOTATION_SHARING,
    AllocationResult,
    Assignment,
    IPRange,
    MatchLabels,
    PoolInput,
    Reason,
    Selector,
    ServiceInput,
)
from vipcast.alloc.sharing import share_conflict

__all__ = [
    "ANNOTATION_IPS",
    "ANNOTATION_POOL",
    "ANNOTATION_SHARING",
    "AllocationResult",
    "Assignment",
    "IPRange",
    "MatchLabels",
    "PoolInput",
    "Reason",
    "Selector",
    "ServiceInput",
    "allocate",
    "share_conflict",
    "wanted_families",
]
