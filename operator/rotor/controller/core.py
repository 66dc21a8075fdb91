"""The controller: one index fed by Rotor's own informers (ManagedSecrets, managed Secrets, stores,
policies), a decision of what is urgent, and a fixed pool of workers over one work queue.
Refreshes are due times in one heap, not a timer task per object.

With leader election (``rotor.kube.lease``), every replica keeps its index warm, and only the
leader runs workers, validates stores and writes. Gaining the Lease re-reads the whole index as a
restarted operator would; losing it stops new work at once (work in flight finishes).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import zlib
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import aiohttp

from rotor.api.duration import parse_duration
from rotor.api.names import FORCE_SYNC_ANNOTATION, MANAGED_BY_LABEL, ROTATE_ANNOTATION
from rotor.clock import Clock, parse_time
from rotor.conditions import get_condition
from rotor.controller.fanout import FanoutController
from rotor.controller.index import Index, key_of, older
from rotor.controller.push import PushController
from rotor.controller.queue import WorkQueue
from rotor.kube.gateway import KubeError, KubeGateway, NotLeader
from rotor.kube.informer import Informer
from rotor.kube.lease import LeaderElector
from rotor.observability.metrics import (
    APISERVER_ERRORS,
    LEADER,
    WORKQUEUE_DEPTH,
    WORKQUEUE_IN_FLIGHT,
    WORKQUEUE_OLDEST,
    ObjectSample,
)
from rotor.providers.base import RemoteRef
from rotor.rotation.backoff import retry_delay
from rotor.services.ports import ObjectIndex, ObjKey, StoreKey, WorkScheduler
from rotor.services.stores import StoreService
from rotor.services.wiring import ServiceOptions, build_services
from rotor.sync.refresh import next_refresh

log = logging.getLogger("rotor.controller")

#: the back-off of a sync that failed on the apiserver (the formula of rotation/backoff.py)
APISERVER_RETRY_BASE = dt.timedelta(seconds=2)
APISERVER_RETRY_CAP = dt.timedelta(minutes=5)
#: a sync that failed unexpectedly (a bug) is tried again this much later
UNEXPECTED_RETRY = 30.0
#: /healthz turns red when keys have waited this long and no sync has finished for as long
STALL_BOUND = 300.0


@dataclass
class Settings:
    concurrency: int = 8
    restart_limit: int = 2
    restart_limit_cluster: int = 0  # 0: no cluster-wide limit
    restart_min_interval: float = 600.0
    restart_debounce: float = 30.0
    hash_key: bytes = b""
    namespaces: list[str] = field(default_factory=list)  # kopf-style patterns; empty: all
    #: the shard's name (its Lease's name), for the ``rotor_leader`` metric
    shard: str = "rotor"
    #: change notifications: the receiver's per-store rate and burst
    notify_rate: float = 10.0
    notify_burst: int = 100


def _ts(value: str | None) -> float | None:
    parsed = parse_time(value)
    return parsed.timestamp() if parsed else None


def _lease_due(status: Mapping[str, Any]) -> float | None:
    """When the recorded lease of dynamic credentials needs a sync: its renewal (or replacement),
    which status.expiry.renewalTime holds, or the end of the previous credentials kept."""
    lease = status.get("lease")
    if not isinstance(lease, Mapping) or not lease.get("id"):
        return None
    times = [
        _ts((status.get("expiry") or {}).get("renewalTime")),
        _ts((lease.get("previous") or {}).get("expiresAt")),
    ]
    return min((t for t in times if t is not None), default=None)


def stable_fraction(seed: str) -> float:
    """A number in [0, 1) from ``seed``, the same in every process (unlike ``hash()``)."""
    return zlib.crc32(seed.encode()) / 2**32


def same_slot_after(slot: float, period: float, now: float) -> float:
    """``slot`` if it is still ahead, else the first time after ``now`` on the grid
    ``slot + k * period`` (a refresh slot missed while the operator was down, kept in phase)."""
    if slot > now or period <= 0:
        return slot
    return slot + (int((now - slot) // period) + 1) * period


def apiserver_trouble(exc: BaseException) -> str | None:
    """The kind of an apiserver outage this error is (connection, timeout, throttled, server),
    or None when it is something else."""
    if isinstance(exc, NotLeader):
        return None
    if isinstance(exc, KubeError):
        if exc.status == 429:
            return "throttled"
        if exc.status >= 500:
            return "server"
        return "connection" if exc.status == 0 else None
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientError | ConnectionError):
        return "connection"
    return None


class Controller:
    def __init__(
        self,
        gateway: KubeGateway,
        clock: Clock,
        settings: Settings,
        *,
        elector: LeaderElector | None = None,
    ) -> None:
        self.gateway = gateway
        self.clock = clock
        self.settings = settings
        self.index = Index()
        self.secret_cache = self.index.secrets
        self.queue = WorkQueue()
        self.stores = StoreService(gateway, clock)
        self.stores.on_ready_change.append(self._store_ready_changed)
        self.services = build_services(
            gateway,
            clock,
            self.index,
            self,
            ServiceOptions(
                hash_key=settings.hash_key,
                restart_limit=settings.restart_limit,
                restart_limit_cluster=settings.restart_limit_cluster,
                restart_min_interval=settings.restart_min_interval,
                restart_debounce=settings.restart_debounce,
                notify_rate=settings.notify_rate,
                notify_burst=settings.notify_burst,
            ),
            ledger=self.index,
            stores=self.stores,
            config_maps=self.index,
        )
        self.sync = self.services.sync
        self.tasks: list[asyncio.Task[None]] = []
        self.synced_once = asyncio.Event()
        self.busy = 0
        self._background: set[asyncio.Task[None]] = set()
        self._store_locks: dict[StoreKey, asyncio.Lock] = {}
        self._failures: dict[ObjKey, int] = {}
        self._outage = 0  # syncs failed on the apiserver since the last one that went through
        self.elector = elector
        #: True while this replica does the work (always, without leader election)
        self.leading = elector is None
        self._lead = asyncio.Event()
        if self.leading:
            self._lead.set()
        if elector is not None:
            elector.on_change.append(self.set_leading)
            gateway.write_fence = elector.may_write
        LEADER.labels(shard=settings.shard).set(1 if self.leading else 0)
        patterns = settings.namespaces
        self.secrets_informer = Informer(
            gateway, "Secret", self.observe_secret, namespaces=patterns, label_selector=MANAGED_BY_LABEL
        )
        self.informer = Informer(gateway, "ManagedSecret", self.observe, namespaces=patterns)
        #: stores and policies: namespaced kinds follow the patterns, cluster-scoped ones do not
        self.side_informers = [
            Informer(gateway, "SecretStore", self._store_events("SecretStore"), namespaces=patterns),
            Informer(gateway, "ClusterSecretStore", self._store_events("ClusterSecretStore")),
            Informer(gateway, "RotationPolicy", self._policy_events("RotationPolicy"), namespaces=patterns),
            Informer(gateway, "ClusterRotationPolicy", self._policy_events("ClusterRotationPolicy")),
            # template.from: every ConfigMap event is looked at, only the used ones are held
            Informer(gateway, "ConfigMap", self.observe_config_map, namespaces=patterns),
        ]
        #: PushSecrets: their own informers, queue and workers, on the same stores and leadership
        self.push = PushController(
            gateway,
            clock,
            self.stores,
            hash_key=settings.hash_key,
            namespaces=patterns,
            leading=lambda: self.leading,
        )
        #: ClusterManagedSecrets: their own informers (and Namespaces'), fed ManagedSecret events
        self.fanout = FanoutController(
            gateway, clock, self.index, serves=self.informer.accepts, leading=lambda: self.leading
        )

    # ------------------------------------------------------------------ the ports services use
    @property
    def objects(self) -> ObjectIndex:
        """The one index, as services see it (read-only)."""
        return self.index

    @property
    def scheduler(self) -> WorkScheduler:
        """How services ask for an object to be reconciled again."""
        return self

    # ------------------------------------------------------------------ WorkScheduler
    def requeue(self, key: ObjKey, *, urgent: bool) -> None:
        """Reconcile ``key`` again (ignored on a standby: gaining the Lease re-reads everything)."""
        if self.leading and key in self.index:
            self.queue.add(key, urgent=urgent)

    # ------------------------------------------------------------------ ManagedSecrets and Secrets
    def observe(self, body: dict[str, Any], event_type: str | None) -> None:
        meta = body["metadata"]
        key: ObjKey = (meta["namespace"], meta["name"])
        self.fanout.observe_managed(body, event_type)
        if event_type == "DELETED":
            self.index.drop_managed(key)
            self.sync.reads.pop(key, None)
            self.queue.forget(key)
            self._failures.pop(key, None)
            return
        previous = self.index.get(key)
        if previous is not None and older(body, previous):
            return  # an echo of a write we have already absorbed
        self.index.put_managed(key, body)
        if self.leading:
            self._enqueue(key, body, previous)

    def _enqueue(self, key: ObjKey, body: dict[str, Any], previous: dict[str, Any] | None) -> None:
        if previous is None and self.services.rollout is not None:
            # first sight by this leader: a restart an earlier one decided may be outstanding
            self.services.rollout.resume(body)
        urgent, when = self._triage(body, previous)
        if urgent:
            self.queue.add(key, urgent=True)
        elif when is not None and self.queue.due_at(key) is None:
            self.queue.schedule(key, when)

    def _triage(self, body: dict[str, Any], previous: dict[str, Any] | None) -> tuple[bool, float | None]:
        meta = body["metadata"]
        status = body.get("status") or {}
        annotations = meta.get("annotations") or {}
        if meta.get("deletionTimestamp"):
            return True, None
        if status.get("observedGeneration") != meta.get("generation"):
            return True, None
        force = annotations.get(FORCE_SYNC_ANNOTATION)
        if force and force != status.get("lastForceSync"):
            return True, None
        rotation = status.get("rotation") or {}
        rotate = annotations.get(ROTATE_ANNOTATION)
        if rotate and rotate != rotation.get("lastRotateRequest"):
            return True, None
        if previous is not None:
            return False, None  # our own status write echoing back, or metadata noise
        # first sight of an object already handled (operator restart): keep its slot
        now = self.clock.timestamp()
        ready = (get_condition(status.get("conditions"), "Ready") or {}).get("status") == "True"
        if rotation.get("phase") not in (None, "", "Completed", "Failed"):
            return True, None  # a rotation was interrupted: resume it first
        candidates = [
            _ts(status.get("nextRefreshTime")),
            _ts(rotation.get("nextRotationTime")),
            _ts(rotation.get("previousRetainedUntil")),
        ]
        lease_due = _lease_due(status)
        if lease_due is not None and lease_due <= now:
            # a lease renewal (or the previous credentials' end) missed while we were down: soon,
            # not spread over the refresh interval (the lease may end first)
            return False, now + 1 + int(5 * stable_fraction(f"{meta['namespace']}/{meta['name']}"))
        candidates.append(lease_due)
        if not ready:  # spread the retries of objects that were failing over 30 s
            return False, now + 1 + int(30 * stable_fraction(f"{meta['namespace']}/{meta['name']}"))
        wanted = min((c for c in candidates if c is not None), default=None)
        if wanted is None:
            return False, None
        interval = parse_duration(str((body.get("spec") or {}).get("refresh", {}).get("interval") or "1h"))
        refresh_at = candidates[0]
        if wanted == refresh_at and refresh_at is not None:
            # the object's own refresh slot (one or more intervals on if missed while we were
            # down: the slots are already spread). The status records it to the second, so the
            # slot itself lies within the second after: a sync before it would come back to it
            # at once (a second sync, and with another seed a second read, in one interval)
            return False, same_slot_after(refresh_at, interval.total_seconds(), now) + 1.0
        if wanted <= now:  # missed while we were down: spread, do not stampede
            return False, next_refresh(
                f"{meta['namespace']}/{meta['name']}", interval, self.clock.now()
            ).timestamp()
        return False, wanted

    def observe_secret(self, body: dict[str, Any], event_type: str | None) -> None:
        meta = body["metadata"]
        skey = (meta["namespace"], meta["name"])
        owner = (meta.get("labels") or {}).get(MANAGED_BY_LABEL)
        ours = self.secret_cache.get(skey)
        if event_type == "DELETED":
            self.secret_cache.pop(skey, None)
            if owner:
                self.requeue((meta["namespace"], owner), urgent=True)
            return
        if ours is not None and ours.get("metadata", {}).get("resourceVersion") == meta.get(
            "resourceVersion"
        ):
            return
        self.secret_cache[skey] = body
        if ours is not None and owner:
            # changed by someone else: the owner re-checks it (and restores it if needed)
            self.requeue((meta["namespace"], owner), urgent=True)

    def observe_config_map(self, body: dict[str, Any], event_type: str | None) -> None:
        """A ConfigMap that a ``template.from`` names changed, came or went: its users re-render
        (an unused ConfigMap is dropped at once; one whose data did not change re-renders nothing)."""
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        users = self.index.config_map_users(key)
        if not users:
            return
        known = self.index.config_map(*key)
        if event_type == "DELETED":
            self.index.drop_config_map(key)
        elif not self.index.put_config_map(body):
            return  # an echo of what is held
        elif known is not None and (known.get("data"), known.get("binaryData")) == (
            body.get("data"),
            body.get("binaryData"),
        ):
            return  # labels or annotations only
        for user in users:
            self.requeue(user, urgent=False)

    # ------------------------------------------------------------------ stores and policies
    def _store_events(self, kind: str) -> Callable[[dict[str, Any], str | None], None]:
        return lambda body, event_type: self.observe_store(kind, body, event_type)

    def _policy_events(self, kind: str) -> Callable[[dict[str, Any], str | None], None]:
        return lambda body, event_type: self.observe_policy(kind, body, event_type)

    def observe_store(self, kind: str, body: dict[str, Any], event_type: str | None) -> None:
        key: StoreKey = key_of(kind, body)
        if event_type == "DELETED":
            self.index.drop_store(key)
            self._spawn(self._forget_store(key))
            return
        known = self.index.store(key)
        if known is not None and older(body, known):
            return
        self.index.put_store(key, body)
        self.stores.observe(kind, body)
        if self.leading:
            self._validate_store(key)

    async def _forget_store(self, key: StoreKey) -> None:
        async with self._store_lock(key):
            await self.stores.forget(key)
        self._store_ready_changed(key)

    def _store_lock(self, key: StoreKey) -> asyncio.Lock:
        return self._store_locks.setdefault(key, asyncio.Lock())

    def _validate_store(self, key: StoreKey) -> None:
        body = self.index.store(key)
        if body is None:
            return
        handle = self.stores.handles.get(key)
        if handle is None or handle.generation != int(body["metadata"].get("generation") or 0):
            self._spawn(self._ensure_store(key))

    async def _ensure_store(self, key: StoreKey) -> None:
        async with self._store_lock(key):
            if not self.leading or self.index.store(key) is None:
                return
            try:
                await self.stores.ensure(key)
            except NotLeader:
                return
            except Exception as exc:
                if apiserver_trouble(exc):
                    log.warning("store %s could not be validated (%s); trying again later", key, exc)
                else:
                    log.exception("store %s could not be validated", key)

    def _store_ready_changed(self, key: StoreKey) -> None:
        for user in self.index.store_users(key):
            self.requeue(user, urgent=False)

    def observe_policy(self, kind: str, body: dict[str, Any], event_type: str | None) -> None:
        key = key_of(kind, body)
        known = self.index.policy(key)
        if event_type == "DELETED":
            self.index.drop_policy(key)
        else:
            if known is not None and older(body, known):
                return  # an echo of a status write already absorbed
            self.index.put_policy(key, body)
            if known is not None and known["metadata"].get("generation") == body["metadata"].get(
                "generation"
            ):
                return  # a status change: nothing for the ManagedSecrets to re-evaluate
        self.services.policy_changed(key)

    # ------------------------------------------------------------------ leadership
    def set_leading(self, leading: bool) -> None:
        """The elector's callback. Gaining: triage every indexed object as on a restart and
        validate the stores. Losing: drop the queue (workers finish what they hold)."""
        if leading == self.leading:
            return
        self.leading = leading
        LEADER.labels(shard=self.settings.shard).set(1 if leading else 0)
        self.queue.clear()
        self._failures.clear()
        self.push.set_leading(leading)
        if not leading:
            self._lead.clear()
            return
        for key, body in list(self.index.items()):
            self._enqueue(key, body, None)
        for store_key, _ in self.index.stores():
            self._validate_store(store_key)
        self.fanout.mark_all()
        self._lead.set()

    # ------------------------------------------------------------------ running
    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _prefetch_wave(self, keys: list[Any]) -> None:
        """A refresh wave: objects of one AWS Secrets Manager store come due together; list the
        store's versions once and fetch what changed in batches of 20 before the workers sync.
        The refs are those each object read at its last sync (a spec change syncs urgently)."""
        if not self.leading:
            return
        by_store: dict[StoreKey, list[RemoteRef]] = {}
        for key in keys:
            read = self.sync.reads.get(key)
            if read is None:
                continue
            store_key, refs = read
            handle = self.stores.handles.get(store_key)
            if handle is None or handle.backend is None or not handle.backend.detects_changes:
                continue
            by_store.setdefault(store_key, []).extend(refs)
        for store_key, wanted in by_store.items():
            backend = self.stores.handles[store_key].backend
            if backend is not None and len(wanted) > 1:
                self._spawn(backend.prefetch(wanted))

    async def start(self) -> None:
        WORKQUEUE_DEPTH.set_function(lambda: self.queue.depth)
        WORKQUEUE_IN_FLIGHT.set_function(lambda: self.queue.in_flight)
        WORKQUEUE_OLDEST.set_function(self.queue.oldest_age)
        self.tasks.append(
            asyncio.create_task(self.queue.run_timer(self.clock.timestamp, on_release=self._prefetch_wave))
        )
        self.tasks.append(asyncio.create_task(self._run_informers()))
        self.tasks.append(asyncio.create_task(self.fanout.run(self.informer.synced)))
        for i in range(self.settings.concurrency):
            self.tasks.append(asyncio.create_task(self._worker(i)))
        self.tasks.append(asyncio.create_task(self._revalidate_stores()))
        self.tasks.extend(self.push.start())
        if self.elector is not None:
            self.tasks.append(asyncio.create_task(self.elector.run()))
        self.services.start()

    async def _run_informers(self) -> None:
        """Secrets, stores and policies first: with them listed, a sync compares against memory
        and finds its store. A list that keeps failing (RBAC) delays ManagedSecrets by 30 s at
        most; syncs then read what they need one by one."""
        first = [self.secrets_informer, *self.side_informers]
        running = [asyncio.create_task(informer.run()) for informer in first]
        try:
            await asyncio.wait_for(
                asyncio.gather(*(informer.synced.wait() for informer in first)), timeout=30
            )
        except TimeoutError:
            missing = [i.kind for i in first if not i.synced.is_set()]
            log.warning("%s not listed yet; starting on ManagedSecrets anyway", ", ".join(missing))
        try:
            await self.informer.run()
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    @property
    def informers(self) -> list[Informer]:
        return [
            self.secrets_informer,
            self.informer,
            *self.side_informers,
            *self.push.informers,
            *self.fanout.informers,
        ]

    @property
    def listed(self) -> bool:
        """Every informer has listed once (readiness, on a standby too)."""
        return all(informer.synced.is_set() for informer in self.informers)

    def stalled(self) -> bool:
        """The leader's workers are stuck: keys wait and no sync finished for ``STALL_BOUND``."""
        return self.leading and self.queue.stalled(STALL_BOUND)

    async def stop(self) -> None:
        if self.elector is not None:
            self.set_leading(False)  # no new work from here on
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()
        if self.elector is not None:
            await self.elector.release()
        for handle in list(self.stores.handles.values()):
            if handle.backend is not None:
                await handle.backend.close()

    async def _worker(self, number: int) -> None:
        while True:
            await self._lead.wait()
            key = cast(ObjKey, await self.queue.get())
            if not self.leading:  # the Lease was lost meanwhile: gaining it re-reads everything
                self.queue.done(key)
                continue
            self.busy += 1
            try:
                body = self.index.get(key)
                if body is None:
                    continue
                try:
                    outcome = await self.sync.sync(body)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.queue.schedule(key, self._after_failure(key, exc))
                    continue
                self._succeeded(key)
                when = outcome.next_at.timestamp() if outcome.next_at else None
                self.queue.schedule(key, when)
                # the echo of a write made during the sync may have replaced the indexed body with
                # one older than what the sync has just recorded: keep the newest
                current = self.index.get(key)
                if current is not None and current is not body and older(current, body):
                    self.index.put_managed(key, body)
            finally:
                self.busy -= 1
                self.queue.done(key)

    def _after_failure(self, key: ObjKey, exc: Exception) -> float | None:
        """Log and count a failed sync; return when to try again."""
        name = "/".join(key)
        if isinstance(exc, NotLeader):
            log.debug("sync of %s stopped: this replica no longer leads", name)
            return None  # whoever leads now has it
        trouble = apiserver_trouble(exc)
        if trouble is None:
            log.exception("unexpected error syncing %s", name)
            return self.clock.timestamp() + UNEXPECTED_RETRY
        APISERVER_ERRORS.labels(kind=trouble).inc()
        if self._outage == 0:
            log.warning(
                "the Kubernetes API is unavailable (%s: %s); syncs are retried with back-off",
                trouble,
                exc if isinstance(exc, KubeError) else type(exc).__name__,
                extra={"reason": "APIServerUnavailable"},
            )
        self._outage += 1
        failed = self._failures[key] = self._failures.get(key, 0) + 1
        delay = retry_delay(failed, base=APISERVER_RETRY_BASE, cap=APISERVER_RETRY_CAP, seed=name)
        return self.clock.timestamp() + delay.total_seconds()

    def _succeeded(self, key: ObjKey) -> None:
        self._failures.pop(key, None)
        if self._outage:
            log.info("the Kubernetes API answers again (%d syncs failed meanwhile)", self._outage)
            self._outage = 0

    async def _revalidate_stores(self) -> None:
        while True:
            await asyncio.sleep(self.stores.revalidate_every)
            if self.leading:
                await self.stores.revalidate_all()

    # ------------------------------------------------------------------ views
    def samples(self) -> Iterable[ObjectSample]:
        """Per-object series, from the leader only (a standby's would duplicate every series)."""
        if not self.leading:
            return
        for (namespace, name), body in list(self.index.items()):
            status = body.get("status") or {}
            ready = (get_condition(status.get("conditions"), "Ready") or {}).get("status") == "True"
            expiry = status.get("expiry") or {}
            rotation = status.get("rotation") or {}
            yield ObjectSample(
                namespace=namespace,
                name=name,
                ready=ready,
                expiry=_ts(expiry.get("notAfter")),
                renewal=_ts(expiry.get("renewalTime")),
                last_sync=_ts(status.get("lastSyncTime")),
                last_rotation=_ts(rotation.get("lastRotationTime")),
                next_rotation=_ts(rotation.get("nextRotationTime")),
            )

    def now(self) -> dt.datetime:
        return self.clock.now()
