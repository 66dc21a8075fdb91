"""The controller: keeps an index of ManagedSecrets (fed by its own informers), decides what is
urgent, and runs a fixed pool of workers over one work queue. Refreshes are due times in one
heap, not a timer task per object."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from rotor.api.duration import parse_duration
from rotor.api.names import FORCE_SYNC_ANNOTATION, MANAGED_BY_LABEL, ROTATE_ANNOTATION
from rotor.clock import Clock, parse_time
from rotor.conditions import get_condition
from rotor.controller.queue import WorkQueue
from rotor.kube.gateway import KubeGateway
from rotor.kube.informer import Informer
from rotor.observability.metrics import ObjectSample
from rotor.providers.base import RemoteRef
from rotor.services.memindex import MemoryIndex
from rotor.services.ports import PolicyKey
from rotor.services.stores import StoreKey, StoreService
from rotor.services.wiring import ServiceOptions, build_services
from rotor.sync.refresh import next_refresh

log = logging.getLogger("rotor.controller")

ObjKey = tuple[str, str]


@dataclass
class Settings:
    concurrency: int = 8
    restart_limit: int = 2
    restart_debounce: float = 30.0
    hash_key: bytes = b""
    namespaces: list[str] = field(default_factory=list)  # kopf-style patterns; empty: all


def _older(incoming: dict[str, Any], known: dict[str, Any]) -> bool:
    try:
        return int(incoming["metadata"]["resourceVersion"]) < int(known["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return False


def _ts(value: str | None) -> float | None:
    parsed = parse_time(value)
    return parsed.timestamp() if parsed else None


class Controller:
    def __init__(self, gateway: KubeGateway, clock: Clock, settings: Settings) -> None:
        self.gateway = gateway
        self.clock = clock
        self.settings = settings
        self.index: dict[ObjKey, dict[str, Any]] = {}
        self.secret_cache: dict[tuple[str, str], dict[str, Any]] = {}
        self.store_users: dict[StoreKey, set[ObjKey]] = {}
        self.queue = WorkQueue()
        self.policies: dict[PolicyKey, dict[str, Any]] = {}
        # the ports the services read; until the informer-fed index implements them, a view over
        # the dicts above
        self.objects = MemoryIndex(self.index, self.secret_cache, self.policies)
        self.stores = StoreService(gateway, clock)
        self.stores.on_ready_change.append(self._store_ready_changed)
        self.services = build_services(
            gateway,
            clock,
            self.objects,
            self,
            ServiceOptions(
                hash_key=settings.hash_key,
                restart_limit=settings.restart_limit,
                restart_debounce=settings.restart_debounce,
            ),
            ledger=self.objects,
            stores=self.stores,
        )
        self.sync = self.services.sync
        self.tasks: list[asyncio.Task[None]] = []
        self.synced_once = asyncio.Event()
        self.busy = 0
        self._background: set[asyncio.Task[None]] = set()
        self._peering: tuple[str, str, int, list[str]] | None = None
        self.secrets_informer = Informer(
            gateway,
            "Secret",
            self.observe_secret,
            namespaces=settings.namespaces,
            label_selector=MANAGED_BY_LABEL,
        )
        self.informer = Informer(gateway, "ManagedSecret", self.observe, namespaces=settings.namespaces)
        self.paused = False

    # ------------------------------------------------------------------ feeding
    def observe(self, body: dict[str, Any], event_type: str | None) -> None:
        meta = body["metadata"]
        key: ObjKey = (meta["namespace"], meta["name"])
        if event_type == "DELETED":
            self.index.pop(key, None)
            self.sync.reads.pop(key, None)
            self.queue.forget(key)
            for users in self.store_users.values():
                users.discard(key)
            return
        previous = self.index.get(key)
        if previous is not None and _older(body, previous):
            return  # an echo of a write we have already absorbed
        self.index[key] = body
        spec = body.get("spec") or {}
        ref = spec.get("storeRef") or {}
        kind = ref.get("kind") or "SecretStore"
        store_key: StoreKey = (kind, "" if kind == "ClusterSecretStore" else key[0], ref.get("name") or "")
        self.store_users.setdefault(store_key, set()).add(key)
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
        if annotations.get(FORCE_SYNC_ANNOTATION) and annotations.get(FORCE_SYNC_ANNOTATION) != status.get(
            "lastForceSync"
        ):
            return True, None
        rotation = status.get("rotation") or {}
        if annotations.get(ROTATE_ANNOTATION) and annotations.get(ROTATE_ANNOTATION) != rotation.get(
            "lastRotateRequest"
        ):
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
        if not ready:
            return False, now + 1 + (hash(meta["name"]) % 30)
        wanted = min((c for c in candidates if c is not None), default=None)
        if wanted is None:
            return False, None
        if wanted <= now:  # missed while we were down: spread, do not stampede
            interval = parse_duration(
                str((body.get("spec") or {}).get("refresh", {}).get("interval") or "1h")
            )
            return False, next_refresh(
                f"{meta['namespace']}/{meta['name']}", interval, self.clock.now()
            ).timestamp()
        return False, wanted

    def requeue(self, key: ObjKey, *, urgent: bool) -> None:
        """WorkScheduler port."""
        self.queue.add(key, urgent=urgent)

    def observe_policy(self, kind: str, body: dict[str, Any], event_type: str | None) -> None:
        meta = body["metadata"]
        key: PolicyKey = (kind, meta.get("namespace") or "", meta["name"])
        known = self.policies.get(key)
        if event_type == "DELETED":
            self.policies.pop(key, None)
        else:
            if known is not None and _older(body, known):
                return  # an echo of a status write already absorbed
            self.policies[key] = body
            if known is not None and known["metadata"].get("generation") == meta.get("generation"):
                return  # a status change: nothing for the ManagedSecrets to re-evaluate
        self.services.policy_changed(key)

    def observe_secret(self, body: dict[str, Any], event_type: str | None) -> None:
        meta = body["metadata"]
        skey = (meta["namespace"], meta["name"])
        owner = (meta.get("labels") or {}).get("rotor.dev/managed-by")
        ours = self.secret_cache.get(skey)
        if event_type == "DELETED":
            self.secret_cache.pop(skey, None)
            if owner and (meta["namespace"], owner) in self.index:
                self.queue.add((meta["namespace"], owner), urgent=True)
            return
        if ours is not None and ours.get("metadata", {}).get("resourceVersion") == meta.get(
            "resourceVersion"
        ):
            return
        self.secret_cache[skey] = body
        if ours is not None and owner and (meta["namespace"], owner) in self.index:
            # changed by someone else: the owner re-checks it (and restores it if needed)
            self.queue.add((meta["namespace"], owner), urgent=True)

    def _prefetch_wave(self, keys: list[Any]) -> None:
        """A refresh wave: objects of one AWS Secrets Manager store come due together; list the
        store's versions once and fetch what changed in batches of 20 before the workers sync.
        The refs are those each object read at its last sync (a spec change syncs urgently)."""
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
                task = asyncio.create_task(backend.prefetch(wanted))
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    def _store_ready_changed(self, key: StoreKey) -> None:
        for user in list(self.store_users.get(key, ())):
            self.queue.add(user, urgent=False)

    async def observe_store(self, kind: str, body: dict[str, Any], event_type: str | None) -> None:
        if event_type == "DELETED":
            meta = body["metadata"]
            key: StoreKey = (kind, meta.get("namespace") or "", meta["name"])
            await self.stores.forget(key)
            self._store_ready_changed(key)
            return
        key = self.stores.observe(kind, body)
        handle = self.stores.handles.get(key)
        generation = int(body["metadata"].get("generation") or 0)
        if handle is None or handle.generation != generation:
            try:
                await self.stores.ensure(key)
            except Exception:
                log.exception("store %s could not be validated", key)

    # ------------------------------------------------------------------ running
    async def start(self) -> None:
        self.tasks.append(
            asyncio.create_task(self.queue.run_timer(self.clock.timestamp, on_release=self._prefetch_wave))
        )
        self.tasks.append(asyncio.create_task(self._run_informers()))
        for i in range(self.settings.concurrency):
            self.tasks.append(asyncio.create_task(self._worker(i)))
        self.tasks.append(asyncio.create_task(self._revalidate_stores()))
        self.services.start()
        if self._peering is not None:
            self.tasks.append(asyncio.create_task(self._watch_peering()))

    async def _run_informers(self) -> None:
        """Secrets first: with them listed, a sync compares against memory instead of reading
        each Secret. A Secret list that keeps failing (RBAC) delays ManagedSecrets by 30 s at
        most; syncs then read Secrets one by one."""
        secrets = asyncio.create_task(self.secrets_informer.run())
        try:
            await asyncio.wait_for(self.secrets_informer.synced.wait(), timeout=30)
        except TimeoutError:
            log.warning("Secrets are not listed yet; starting on ManagedSecrets anyway")
        try:
            await self.informer.run()
        finally:
            secrets.cancel()
            await asyncio.gather(secrets, return_exceptions=True)

    @property
    def listed(self) -> bool:
        """Both informers have listed once (readiness)."""
        return self.informer.synced.is_set() and self.secrets_informer.synced.is_set()

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()
        for handle in list(self.stores.handles.values()):
            if handle.backend is not None:
                await handle.backend.close()

    def watch_peering(self, *, name: str, identity: str, priority: int, namespaces: list[str]) -> None:
        """Active/standby: while a live peer with a higher priority exists, this replica's workers
        pause (kopf stops delivering events, but Rotor's own queue would otherwise go on)."""
        self._peering = (name, identity, priority, namespaces)

    def _listen_to_kopf(self) -> None:
        """kopf logs the moment it pauses or resumes: act on it at once (the peering poll below
        is the fallback, and the judge on resume)."""
        controller = self

        class PeeringSignal(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                message = record.getMessage()
                if message.startswith(("Pausing operations", "Pausing all operators")):
                    controller.paused = True

        logging.getLogger("kopf._core.engines.peering").addHandler(PeeringSignal(logging.INFO))

    async def _watch_peering(self) -> None:
        assert self._peering is not None
        name, identity, priority, namespaces = self._peering
        self._listen_to_kopf()
        plain = [
            ns
            for pattern in namespaces
            for ns in pattern.split(",")
            if ns and not any(c in ns for c in "*?!")
        ]
        while True:
            try:
                bodies = (
                    [await self.gateway.get_peering(name, None)]
                    if not namespaces
                    else [await self.gateway.get_peering(name, ns) for ns in plain]
                )
                now = dt.datetime.now(dt.UTC)
                outranked = False
                for body in bodies:
                    for peer_id, peer in ((body or {}).get("status") or {}).items():
                        if peer_id == identity or not isinstance(peer, dict):
                            continue
                        seen = parse_time(peer.get("lastseen"))
                        alive = seen is not None and (now - seen).total_seconds() < float(
                            peer.get("lifetime") or 60
                        )
                        if alive and int(peer.get("priority") or 0) > priority:
                            outranked = True
                if outranked != self.paused:
                    log.info(
                        "peering: %s",
                        "standing by (a higher-priority peer is active)" if outranked else "active",
                    )
                self.paused = outranked
            except Exception:  # a peering read failure must not stop the watcher
                log.debug("peering check failed", exc_info=True)
            await asyncio.sleep(1)

    async def _worker(self, number: int) -> None:
        while True:
            key = await self.queue.get()
            if self.paused:  # standing by: hand the work back and wait
                self.queue.done(key)
                self.queue.schedule(key, self.clock.timestamp() + 5)
                while self.paused:  # noqa: ASYNC110 - paused flips from a logging hook and a poll
                    await asyncio.sleep(0.5)
                continue
            self.busy += 1
            try:
                body = self.index.get(cast(ObjKey, key))
                if body is None:
                    continue
                try:
                    outcome = await self.sync.sync(body)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("unexpected error syncing %s", "/".join(cast(ObjKey, key)))
                    self.queue.schedule(key, self.clock.timestamp() + 30)
                    continue
                when = outcome.next_at.timestamp() if outcome.next_at else None
                self.queue.schedule(key, when)
                # the echo of a write made during the sync may have replaced the indexed body with
                # one older than what the sync has just recorded: keep the newest
                current = self.index.get(cast(ObjKey, key))
                if current is not None and current is not body and _older(current, body):
                    self.index[cast(ObjKey, key)] = body
            finally:
                self.busy -= 1
                self.queue.done(key)

    async def _revalidate_stores(self) -> None:
        while True:
            await asyncio.sleep(self.stores.revalidate_every)
            await self.stores.revalidate_all()

    # ------------------------------------------------------------------ views
    def samples(self) -> Iterable[ObjectSample]:
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
