"""Leader election with a ``coordination.k8s.io/v1`` Lease, one per shard.

Every replica runs an elector. The one named in ``spec.holderIdentity`` is the leader; it renews
``spec.renewTime`` every ``retry_period``. The others read the Lease as often, and take it over
only once the holder's ``renewTime + leaseDurationSeconds`` has passed (or the holder released
it). Every write is a conditional update (``metadata.resourceVersion``), so two candidates that
race for a free Lease cannot both win: the apiserver refuses the second with 409.

Timings (client-go's defaults): ``lease_duration`` 15 s, ``renew_deadline`` 10 s,
``retry_period`` 2 s. A leader that could not renew for ``renew_deadline`` steps down, which is
before any other replica may take over (``lease_duration`` after its last renewal). Between the
two, ``write_grace`` more seconds let work already in flight finish its writes; after that the
gateway's write fence (``may_write``) refuses them. The rule compares ``renewTime`` written by one
replica with the clock of another, so replicas need synchronised clocks (NTP, as Kubernetes nodes
have); skew larger than ``lease_duration - renew_deadline`` breaks the guarantee.

On a clean shutdown the leader releases the Lease (empty holder), so a standby takes over on its
next try instead of waiting for the Lease to expire.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from rotor.clock import parse_time
from rotor.kube.gateway import KubeError

log = logging.getLogger("rotor.lease")

LEASE_API_VERSION = "coordination.k8s.io/v1"


class LeaseAPI(Protocol):
    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def create_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]: ...

    async def replace_lease(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]: ...


@dataclass(frozen=True)
class LeaseConfig:
    name: str
    namespace: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "leader election needs retry-period < renew-deadline < lease-duration "
                f"(got {self.retry_period:g}s, {self.renew_deadline:g}s, {self.lease_duration:g}s)"
            )

    @property
    def write_grace(self) -> float:
        """Seconds after the last renewal during which writes are still let through (in-flight
        work finishing), kept one retry period short of the Lease's expiry."""
        return max(self.renew_deadline, self.lease_duration - self.retry_period)


def micro_time(when: dt.datetime) -> str:
    """Kubernetes MicroTime."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class LeaderElector:
    def __init__(
        self,
        api: LeaseAPI,
        config: LeaseConfig,
        *,
        wall: Callable[[], dt.datetime] = _utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.config = config
        self.wall = wall
        self.monotonic = monotonic
        self.sleep: Callable[[float], Any] = asyncio.sleep  # replaceable in tests
        self.leading = False
        #: the holder seen at the last read ("" when free, None before the first read)
        self.holder: str | None = None
        #: callbacks(leading) when leadership is gained or lost
        self.on_change: list[Callable[[bool], None]] = []
        self._renewed_at: float | None = None  # monotonic start of the last successful write
        self._lease: dict[str, Any] | None = None  # as last written by us
        self._failing = False

    # ------------------------------------------------------------------ the fence
    def may_write(self) -> bool:
        """True while this replica may write: it leads, or stepped down less than the grace ago."""
        if self._renewed_at is None:
            return False
        return self.monotonic() - self._renewed_at < self.config.write_grace

    # ------------------------------------------------------------------ one attempt
    def _spec(self, lease: dict[str, Any] | None) -> dict[str, Any]:
        return dict(((lease or {}).get("spec")) or {})

    def _held_by_other(self, spec: dict[str, Any], now: dt.datetime) -> bool:
        holder = spec.get("holderIdentity") or ""
        if not holder or holder == self.config.identity:
            return False
        renewed = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
        duration = float(spec.get("leaseDurationSeconds") or self.config.lease_duration)
        return renewed is None or now < renewed + dt.timedelta(seconds=duration)

    async def attempt(self) -> bool:
        """Read (unless we hold it), then create, renew or take over the Lease. True when this
        replica holds it afterwards. API errors propagate (the caller counts them as a failed try)."""
        cfg = self.config
        started = self.monotonic()
        now = self.wall()
        lease = self._lease if self.leading else None
        if lease is None:
            lease = await self.api.get_lease(cfg.namespace, cfg.name)
        if lease is None:
            body = {
                "apiVersion": LEASE_API_VERSION,
                "kind": "Lease",
                "metadata": {"name": cfg.name, "namespace": cfg.namespace},
                "spec": {
                    "holderIdentity": cfg.identity,
                    "leaseDurationSeconds": round(cfg.lease_duration),
                    "acquireTime": micro_time(now),
                    "renewTime": micro_time(now),
                    "leaseTransitions": 0,
                },
            }
            try:
                self._lease = await self.api.create_lease(cfg.namespace, body)
            except KubeError as err:
                if err.status == 409:
                    self.holder = None  # someone else created it first: read it next time
                    return False
                raise
            self._renewed_at = started
            self.holder = cfg.identity
            return True
        spec = self._spec(lease)
        self.holder = spec.get("holderIdentity") or ""
        if self._held_by_other(spec, now):
            self._lease = None
            return False
        ours = spec.get("holderIdentity") == cfg.identity
        new_spec = {
            **spec,
            "holderIdentity": cfg.identity,
            "leaseDurationSeconds": round(cfg.lease_duration),
            "renewTime": micro_time(now),
        }
        if not ours:
            new_spec["acquireTime"] = micro_time(now)
            new_spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        meta = lease.get("metadata") or {}
        body = {
            "apiVersion": LEASE_API_VERSION,
            "kind": "Lease",
            "metadata": {
                "name": cfg.name,
                "namespace": cfg.namespace,
                "resourceVersion": meta.get("resourceVersion"),
            },
            "spec": new_spec,
        }
        try:
            self._lease = await self.api.replace_lease(cfg.namespace, cfg.name, body)
        except KubeError as err:
            self._lease = None  # read it afresh next time
            if err.status == 409:
                return False
            raise
        self._renewed_at = started
        self.holder = cfg.identity
        return True

    # ------------------------------------------------------------------ the loop
    def _set_leading(self, leading: bool, *, releasing: bool = False) -> None:
        if leading == self.leading:
            return
        self.leading = leading
        if leading:
            log.info("leader election: acquired Lease %s/%s", self.config.namespace, self.config.name)
        elif releasing:
            log.info(
                "leader election: stepping down to release Lease %s/%s",
                self.config.namespace,
                self.config.name,
            )
        else:
            log.warning(
                "leader election: lost Lease %s/%s (holder now: %s); new work stops",
                self.config.namespace,
                self.config.name,
                self.holder or "none",
            )
        for callback in self.on_change:
            callback(leading)

    async def step(self) -> None:
        """One round: try, then update leadership from the result."""
        cfg = self.config
        if self.leading and self._renewed_at is not None:
            budget = cfg.renew_deadline - (self.monotonic() - self._renewed_at)
        else:
            budget = cfg.renew_deadline
        try:
            held = await asyncio.wait_for(self.attempt(), timeout=max(0.1, budget))
            if self._failing:
                log.info("leader election: the Lease API answers again")
            self._failing = False
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the apiserver is unreachable or refuses: try again
            held = False
            if not self._failing:
                log.warning(
                    "leader election: could not read or write Lease %s/%s (%s); retrying every %gs",
                    cfg.namespace,
                    cfg.name,
                    exc if isinstance(exc, KubeError) else type(exc).__name__,
                    cfg.retry_period,
                )
            self._failing = True
        if held:
            self._set_leading(True)
        elif self.leading:
            taken = self.holder not in (None, "", cfg.identity)
            expired = self._renewed_at is None or self.monotonic() - self._renewed_at >= cfg.renew_deadline
            if taken or expired:
                if taken:
                    self._renewed_at = None  # another replica holds it: no grace
                self._set_leading(False)

    async def run(self) -> None:
        """Forever: one round every ``retry_period`` (with a little jitter while standing by)."""
        while True:
            await self.step()
            delay = self.config.retry_period
            if not self.leading:
                delay *= 1 + 0.2 * random.random()
            await self.sleep(delay)

    async def release(self) -> None:
        """Give the Lease up (clean shutdown): an empty holder lets a standby take it at once."""
        cfg = self.config
        was_leading = self.leading
        self._set_leading(False, releasing=True)
        self._renewed_at = None
        if not was_leading:
            return
        try:
            lease = self._lease or await self.api.get_lease(cfg.namespace, cfg.name)
            spec = self._spec(lease)
            if lease is None or spec.get("holderIdentity") != cfg.identity:
                return
            spec.pop("holderIdentity", None)
            spec["leaseDurationSeconds"] = 1
            spec["renewTime"] = micro_time(self.wall())
            body = {
                "apiVersion": LEASE_API_VERSION,
                "kind": "Lease",
                "metadata": {
                    "name": cfg.name,
                    "namespace": cfg.namespace,
                    "resourceVersion": (lease.get("metadata") or {}).get("resourceVersion"),
                },
                "spec": spec,
            }
            await asyncio.wait_for(self.api.replace_lease(cfg.namespace, cfg.name, body), timeout=5)
            log.info("leader election: released Lease %s/%s", cfg.namespace, cfg.name)
        except Exception as exc:  # it expires by itself
            log.warning("leader election: could not release the Lease (%s); it expires by itself", exc)
        finally:
            self._lease = None
