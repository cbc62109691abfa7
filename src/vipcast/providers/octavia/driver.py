"""The OpenStack Octavia driver, on openstacksdk, mapped as cloud-provider-openstack maps.

A load balancer ``kube_service_<cluster>_<ns>_<name>`` per Service; per port a listener
(``allowed_cidrs`` from the source ranges, the Service key in its description), a pool
(PROXYV2 pools carry the client address), a health monitor (``max_retries`` = rise,
``max_retries_down`` = fall) and members (named by node; ``monitor_port`` is the
healthCheckNodePort with ``Local`` policy).

Octavia makes a load balancer immutable while it is PENDING_*: after every write the driver
waits for ACTIVE with backoff; a 409 is answered by waiting and trying again, and when the
wait runs out the outcome is a ``Retry`` (requeue). A load balancer that lands in ERROR at
creation is deleted and created again with the same VIP. Load balancers are found by name, so
a restarted vipcast adopts what it created before and never creates a second one.

With a Keystone credential (an application credential or a password, from the provider's
Secret) openstacksdk gets a token from Keystone and the load balancers belong to the token's
project; without one it talks to a ``noauth`` endpoint. Keystone refusing the credential,
Octavia refusing the token (401) or forbidding the call by policy (403) come back as
``BAD_CREDENTIAL`` naming the credential (never its secret); a project quota met (403
QuotaException) as ``QUOTA`` -- and when that happens while a load balancer created in the
same call is being filled in, that load balancer is deleted again, so nothing half-made is
left. openstacksdk is synchronous: each call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import openstack
from keystoneauth1 import exceptions as ks_exc
from openstack import exceptions as os_exc
from openstack import warnings as os_warnings

from vipcast.core.external import Capabilities, DesiredLB, HealthMonitor, Listener, Member
from vipcast.providers.port import Applied, Failure, Outcome, Retry
from vipcast.spec.keystone import KeystoneCredential

CAPABILITIES = Capabilities("octavia", frozenset({"TCP", "UDP", "SCTP"}), proxy_protocol=True,
                            forwarded_for=True, source_ranges=True, assigns_vip=True)
T = TypeVar("T")


class _Requeue(Exception):
    def __init__(self, retry: Retry) -> None:
        self.retry = retry


class OctaviaDriver:
    def __init__(self, endpoint: str, *, project_id: str | None,
                 vip_subnet_id: str | None = None, vip_network_id: str | None = None,
                 credential: KeystoneCredential | None = None, user_agent: str = "vipcast",
                 wait_timeout: float = 60.0, backoff: tuple[float, float, float] = (0.05, 1.5,
                                                                                   2.0)) -> None:
        """``project_id`` None: the token's project (with a credential; noauth needs one).
        ``user_agent`` names the writer in Octavia's and Keystone's logs."""
        self.endpoint = endpoint.rstrip("/")
        self.project_id = project_id
        self.vip_subnet_id = vip_subnet_id
        self.vip_network_id = vip_network_id
        self.credential = credential
        self.wait_timeout = wait_timeout
        self.backoff = backoff
        auth: dict[str, Any] = {"auth_type": "none"}
        if credential is not None:
            auth = {"auth_type": credential.auth_type, "auth": credential.auth(),
                    "region_name": credential.region_name}
        with warnings.catch_warnings():
            # openstacksdk 4.x warns about its own default (empty) InfluxDB metrics config
            warnings.filterwarnings("ignore", message="Support for InfluxDB",
                                    category=os_warnings.RemovedInSDK60Warning)
            self.conn = openstack.connection.Connection(
                load_balancer_endpoint_override=self.endpoint, app_name=user_agent,
                app_version="", **auth)
        self._lb: Any = None
        #: Octavia API calls made (for the bench), 409s met, load balancers created
        self.calls = 0
        self.conflicts = 0
        self.creates = 0

    @property
    def capabilities(self) -> Capabilities:
        return CAPABILITIES

    async def close(self) -> None:
        await asyncio.to_thread(self.conn.close)

    # ------------------------------------------------------------ calls

    @property
    def lb(self) -> Any:
        """openstacksdk's load-balancer proxy (after :meth:`_connect`)."""
        if self._lb is None:
            raise RuntimeError("OctaviaDriver: _connect() first")
        return self._lb

    async def _connect(self) -> None:
        """Make the proxy: with a credential this is where Keystone is first asked for a
        token, so it goes through :meth:`_call`'s error mapping (never at construction)."""
        if self._lb is None:
            self._lb = await self._run(lambda: self.conn.load_balancer)

    def _who(self) -> str:
        return self.credential.describe() if self.credential is not None else "noauth"

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One Octavia API call (counted), its failures mapped by :meth:`_run`."""
        self.calls += 1
        return await self._run(fn, *args, **kwargs)

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except os_exc.HttpException as exc:
            failure = self._http_failure(exc)
            if failure is None:
                raise  # 404 and 409 are the caller's to handle
            raise failure from exc
        except (ks_exc.Unauthorized, ks_exc.Forbidden) as exc:  # Keystone said no
            assert self.credential is not None
            raise _Requeue(Retry(
                Failure.BAD_CREDENTIAL, f"authentication failed: Keystone "
                f"{self.credential.auth_url} refused the {self._who()} ({exc.http_status}); "
                "nothing was changed", 300.0)) from exc
        except (ks_exc.ConnectFailure, ks_exc.ConnectTimeout) as exc:
            raise _Requeue(Retry(Failure.UNREACHABLE, str(exc), 10.0)) from exc
        except (ks_exc.ClientException, os_exc.SDKException) as exc:
            where = self.credential.auth_url if self.credential is not None else self.endpoint
            raise _Requeue(Retry(Failure.UNREACHABLE, f"{where}: {exc}", 10.0)) from exc

    def _http_failure(self, exc: os_exc.HttpException) -> _Requeue | None:
        """What an error answer from Octavia means (None: 404 and 409, the caller's)."""
        status = exc.status_code
        details = str(exc.details or exc)
        if status in (404, 409):
            return None
        if status == 401:
            return _Requeue(Retry(Failure.BAD_CREDENTIAL, f"authentication failed: Octavia "
                                  f"refused the token of the {self._who()} (401): {details}; "
                                  "nothing was changed", 300.0))
        if status == 403 and "quota" in f"{details} {exc}".lower():
            return _Requeue(Retry(Failure.QUOTA, f"Octavia project quota: {details}", 300.0))
        if status == 403:
            return _Requeue(Retry(Failure.BAD_CREDENTIAL, f"Octavia forbids this to the "
                                  f"{self._who()} (403: {details}): it needs the member (or "
                                  "load-balancer_member) role on its project", 300.0))
        return _Requeue(Retry(Failure.REFUSED, f"Octavia answered {status}: {details}", 60.0))

    async def _wait_active(self, lb_id: str) -> str:
        """Wait (with backoff) until the LB leaves PENDING_*; returns its status."""
        first, factor, cap = self.backoff
        loop = asyncio.get_running_loop()
        end = loop.time() + self.wait_timeout
        delay = first
        while True:
            lb = await self._call(self.lb.get_load_balancer, lb_id)
            status = str(lb.provisioning_status)
            if not status.startswith("PENDING_"):
                return status
            if loop.time() + delay > end:
                raise _Requeue(Retry(Failure.NOT_READY, f"load balancer {lb.name} still "
                                     f"{status} after {self.wait_timeout:.0f} s", 5.0))
            await asyncio.sleep(delay)
            delay = min(cap, delay * factor)

    async def _write(self, lb_id: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One write while the LB is immutable-when-pending: 409 -> wait ACTIVE, try again."""
        for _ in range(5):
            try:
                result = await self._call(fn, *args, **kwargs)
            except os_exc.ConflictException as exc:
                self.conflicts += 1
                if "immutable" not in str(exc).lower() and "pending" not in str(exc).lower() \
                        and "invalid state" not in str(exc).lower():
                    raise _Requeue(Retry(Failure.REFUSED, f"Octavia conflict: {exc.details}",
                                         60.0)) from exc
                await self._wait_active(lb_id)
                continue
            await self._wait_active(lb_id)
            return result
        raise _Requeue(Retry(Failure.BUSY, "load balancer stayed immutable (409)", 5.0))

    async def _find(self, name: str) -> Any | None:
        # a load balancer being deleted is gone already (a new one may take its name)
        found = [lb for lb in await self._call(lambda: list(self.lb.load_balancers(name=name)))
                 if lb.provisioning_status not in ("DELETED", "PENDING_DELETE")]
        found.sort(key=lambda lb: str(lb.created_at))
        return found[0] if found else None

    # ------------------------------------------------------------ model <-> Octavia

    async def _observe(self, lb: Any) -> DesiredLB:
        listeners = []
        for lst in await self._call(lambda: list(self.lb.listeners(load_balancer_id=lb.id))):
            if lst.provisioning_status == "DELETED":
                continue
            members: tuple[Member, ...] = ()
            monitor = HealthMonitor("TCP", None, None, 5.0, 3.0, 2, 3)
            client = "xff" if (lst.insert_headers or {}).get("X-Forwarded-For") else "none"
            algorithm = "ROUND_ROBIN"
            if lst.default_pool_id:
                pool = await self._call(self.lb.get_pool, lst.default_pool_id)
                algorithm = str(pool.lb_algorithm)
                if pool.protocol == "PROXYV2":
                    client = "proxy-v2"
                raw = [m for m in await self._call(lambda p=pool: list(self.lb.members(p)))
                       if m.provisioning_status != "DELETED"]
                members = tuple(sorted(Member(m.address, m.protocol_port, m.name or "",
                                              m.weight) for m in raw))
                if pool.health_monitor_id:
                    hm = await self._call(self.lb.get_health_monitor, pool.health_monitor_id)
                    port = raw[0].monitor_port if raw else None
                    monitor = HealthMonitor(
                        "HTTP" if hm.type == "HTTP" else "TCP", port,
                        hm.url_path if hm.type == "HTTP" else None, float(hm.delay),
                        float(hm.timeout), hm.max_retries, hm.max_retries_down)
            listeners.append(Listener(
                lst.protocol if lst.protocol != "HTTP" else "TCP", lst.protocol_port, members,
                monitor, tuple(sorted(lst.allowed_cidrs or ())), client,  # type: ignore[arg-type]
                algorithm, lst.description or ""))
        listeners.sort(key=lambda x: (x.protocol, x.port))
        return DesiredLB(lb.name, tuple(sorted({x.service for x in listeners})), lb.vip_address,
                         tuple(listeners))

    async def _create_lb(self, desired: DesiredLB, vip: str | None) -> Any:
        args: dict[str, Any] = {"name": desired.name, "description": "managed by vipcast",
                                "tags": ["vipcast"]}
        if self.project_id:
            args["project_id"] = self.project_id
        if self.vip_subnet_id:
            args["vip_subnet_id"] = self.vip_subnet_id
        else:
            args["vip_network_id"] = self.vip_network_id
        if vip:
            args["vip_address"] = vip
        for _attempt in range(3):
            lb = await self._call(self.lb.create_load_balancer, **args)
            self.creates += 1
            status = await self._wait_active(lb.id)
            if status != "ERROR":
                return lb
            # ERROR at creation: delete it and create it again, keeping its VIP
            args["vip_address"] = lb.vip_address
            await self._call(self.lb.delete_load_balancer, lb.id, cascade=True)
        raise _Requeue(Retry(Failure.REFUSED, f"{desired.name} landed in ERROR three times "
                             "at creation", 60.0))

    async def _ensure_listener(self, lb_id: str, lb_name: str, want: Listener,
                               have: Any) -> int:
        changes = 0
        pool_protocol = "PROXYV2" if want.client_address == "proxy-v2" else (
            "HTTP" if want.client_address == "xff" else want.protocol)
        listener_protocol = "HTTP" if want.client_address == "xff" else want.protocol
        cidrs = list(want.allowed_cidrs) or None
        if have is not None and have.protocol != listener_protocol:
            await self._delete_listener(lb_id, have)
            have, changes = None, changes + 1
        if have is None:
            extra = {"insert_headers": {"X-Forwarded-For": "true"}} \
                if want.client_address == "xff" else {}
            have = await self._write(
                lb_id, self.lb.create_listener, name=f"listener_{want.name}_{lb_name}",
                load_balancer_id=lb_id, protocol=listener_protocol,
                protocol_port=want.port, allowed_cidrs=cidrs, description=want.service,
                **extra)
            changes += 1
        elif sorted(have.allowed_cidrs or ()) != sorted(want.allowed_cidrs) or \
                (have.description or "") != want.service:
            await self._write(lb_id, self.lb.update_listener, have.id,
                              allowed_cidrs=list(want.allowed_cidrs),
                              description=want.service)
            changes += 1
        pool = await self._call(self.lb.get_pool, have.default_pool_id) \
            if have.default_pool_id else None
        if pool is not None and (pool.protocol != pool_protocol
                                 or pool.lb_algorithm != want.algorithm):
            await self._write(lb_id, self.lb.delete_pool, pool.id)
            pool, changes = None, changes + 1
        if pool is None:
            pool = await self._write(lb_id, self.lb.create_pool, name=f"pool_{want.name}_"
                                     f"{lb_name}", listener_id=have.id, protocol=pool_protocol,
                                     lb_algorithm=want.algorithm)
            changes += 1
        changes += await self._ensure_monitor(lb_id, lb_name, want, pool)
        changes += await self._ensure_members(lb_id, want, pool)
        return changes

    async def _ensure_monitor(self, lb_id: str, lb_name: str, want: Listener, pool: Any) -> int:
        mon = want.monitor
        fields: dict[str, Any] = {"delay": max(1, round(mon.interval)),
                                  "timeout": max(1, round(mon.timeout)),
                                  "max_retries": mon.rise, "max_retries_down": mon.fall}
        kind = "HTTP" if mon.kind == "HTTP" else ("UDP-CONNECT" if want.protocol == "UDP"
                                                 else "TCP")
        if mon.kind == "HTTP":
            fields |= {"url_path": mon.path or "/", "http_method": "GET",
                       "expected_codes": "200"}
        if pool.health_monitor_id:
            hm = await self._call(self.lb.get_health_monitor, pool.health_monitor_id)
            if hm.type == kind and all(getattr(hm, k) == v for k, v in fields.items()):
                return 0
            await self._write(lb_id, self.lb.delete_health_monitor, hm.id)
        await self._write(lb_id, self.lb.create_health_monitor, pool_id=pool.id, type=kind,
                          name=f"monitor_{want.name}_{lb_name}", **fields)
        return 1

    async def _ensure_members(self, lb_id: str, want: Listener, pool: Any) -> int:
        changes = 0
        have = {(m.address, m.protocol_port): m
                for m in await self._call(lambda: list(self.lb.members(pool.id)))
                if m.provisioning_status != "DELETED"}
        wanted = {(m.address, m.port): m for m in want.members}
        monitor_port = want.monitor.port
        for key in sorted(set(have) - set(wanted)):
            await self._write(lb_id, self.lb.delete_member, have[key].id, pool.id)
            changes += 1
        for key, member in sorted(wanted.items()):
            current = have.get(key)
            if current is None:
                await self._write(lb_id, self.lb.create_member, pool.id, address=member.address,
                                  protocol_port=member.port, name=member.node,
                                  weight=member.weight, monitor_port=monitor_port)
                changes += 1
            elif (current.weight, current.name or "", current.monitor_port) != (
                    member.weight, member.node, monitor_port):
                await self._write(lb_id, self.lb.update_member, current.id, pool.id,
                                  weight=member.weight, name=member.node,
                                  monitor_port=monitor_port)
                changes += 1
        return changes

    async def _delete_listener(self, lb_id: str, listener: Any) -> None:
        if listener.default_pool_id:
            await self._write(lb_id, self.lb.delete_pool, listener.default_pool_id)
        await self._write(lb_id, self.lb.delete_listener, listener.id)

    # ------------------------------------------------------------ the port

    async def get(self, name: str) -> DesiredLB | Retry | None:
        try:
            await self._connect()
            lb = await self._find(name)
            return None if lb is None else await self._observe(lb)
        except _Requeue as exc:
            return exc.retry

    async def ensure(self, desired: DesiredLB) -> Outcome:
        try:
            await self._connect()
            return await self._ensure(desired)
        except _Requeue as exc:
            return exc.retry

    async def _ensure(self, desired: DesiredLB) -> Outcome:
        changes = 0
        lb = await self._find(desired.name)  # adopt what a previous run created
        if lb is not None and lb.provisioning_status == "ERROR":
            vip = lb.vip_address
            await self._call(self.lb.delete_load_balancer, lb.id, cascade=True)
            lb = await self._create_lb(desired, desired.vip or vip)
            changes += 2
        elif lb is None:
            lb = await self._create_lb(desired, desired.vip)
            try:
                changes = 1 + await self._ensure_listeners(lb, desired)
            except _Requeue as exc:
                if exc.retry.failure is Failure.QUOTA:
                    raise _Requeue(await self._undo_create(lb, exc.retry)) from exc
                raise
            return Applied(desired.name, lb.vip_address, changes, desired.ip_mode)
        elif desired.vip and lb.vip_address != desired.vip:
            return Retry(Failure.REFUSED, f"{desired.name} has VIP {lb.vip_address}; "
                         f"Octavia cannot move it to {desired.vip}", 300.0)
        changes += await self._ensure_listeners(lb, desired)
        return Applied(desired.name, lb.vip_address, changes, desired.ip_mode)

    async def _undo_create(self, lb: Any, why: Retry) -> Retry:
        """A load balancer created in this call could not be completed (a quota met on a
        listener, pool, monitor or member): delete it, so nothing half-made is left."""
        try:
            await self._wait_active(lb.id)
            await self._call(self.lb.delete_load_balancer, lb.id, cascade=True)
        except (_Requeue, os_exc.HttpException) as exc:
            cause = exc.retry.message if isinstance(exc, _Requeue) else str(exc)
            return Retry(why.failure, f"{why.message}; deleting the incomplete {lb.name} "
                         f"failed too: {cause}", why.retry_after)
        return Retry(why.failure, f"{why.message}; the incomplete {lb.name} created in this "
                     "pass was deleted again", why.retry_after)

    async def _ensure_listeners(self, lb: Any, desired: DesiredLB) -> int:
        changes = 0
        have = {(x.protocol if x.protocol != "HTTP" else "TCP", x.protocol_port): x
                for x in await self._call(lambda: list(self.lb.listeners(
                    load_balancer_id=lb.id))) if x.provisioning_status != "DELETED"}
        wanted = {(x.protocol, x.port): x for x in desired.listeners}
        for key in sorted(set(have) - set(wanted)):
            await self._delete_listener(lb.id, have[key])
            changes += 1
        for key, listener in sorted(wanted.items()):
            changes += await self._ensure_listener(lb.id, desired.name, listener, have.get(key))
        return changes

    async def update_members(self, desired: DesiredLB) -> Outcome:
        return await self.ensure(desired)

    async def delete(self, name: str) -> Outcome:
        try:
            await self._connect()
            lb = await self._find(name)
            if lb is None or lb.provisioning_status == "PENDING_DELETE":
                return Applied(name, None, 0)
            try:
                await self._call(self.lb.delete_load_balancer, lb.id, cascade=True)
            except os_exc.ConflictException:
                # the Service went while its LB is PENDING_*: wait for it, then delete
                self.conflicts += 1
                await self._wait_active(lb.id)
                await self._call(self.lb.delete_load_balancer, lb.id, cascade=True)
            except os_exc.NotFoundException:
                return Applied(name, None, 0)
            return Applied(name, lb.vip_address, 1)
        except _Requeue as exc:
            return exc.retry

    async def names(self) -> tuple[str, ...] | Retry:
        try:
            await self._connect()
            lbs = await self._call(lambda: list(self.lb.load_balancers(tags="vipcast")))
        except _Requeue as exc:
            return exc.retry
        return tuple(sorted({lb.name for lb in lbs
                             if lb.provisioning_status not in ("DELETED", "PENDING_DELETE")}))
