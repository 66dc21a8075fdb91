"""Change notifications: refresh exactly the ManagedSecrets that read the notified keys, through
the normal shared-read path, and no more often than the store's reads can be shared.

- The readers are found from the index's store → users map and what each one read at its last
  sync (``SyncService.reads``); an object not synced by this replica yet is judged by its spec.
- A notified key's shared reads are forgotten (``Backend.forget``) and its readers queued
  (urgent), at most once per share window per (store, key). Notifications that arrive within the
  window coalesce into one more refresh at its end, so a burst of any size costs one backend
  read per window, and the last change of a burst is never missed.
- Each store has a token bucket; the receiver answers 429 when it is empty.
- The receiver's HMAC key is read from a Secret (``--notify-secret namespace/name``, key
  ``hmac-key``), cached briefly and re-read when a signature does not verify (key rotation).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from pydantic import ValidationError

from rotor.api.managedsecret import ManagedSecretSpec
from rotor.api.names import NOTIFY_SECRET_KEY
from rotor.kube.gateway import KubeError, KubeGateway
from rotor.notify.bucket import TokenBucket
from rotor.notify.message import names_match
from rotor.observability.metrics import NOTIFICATIONS
from rotor.providers.base import RemoteRef
from rotor.services.ports import ObjectIndex, ObjKey, StoreKey, WorkScheduler
from rotor.services.stores import StoreService
from rotor.sync.sources import sources_of

log = logging.getLogger("rotor.notify")

#: the share window of a store whose backend is not built yet
DEFAULT_WINDOW = 5.0
#: how long the HMAC key read from its Secret is used before it is read again
KEY_TTL = 30.0
#: a signature that does not verify re-reads the key, at most this often
KEY_RELOAD_MIN = 5.0

Reads = Mapping[ObjKey, tuple[StoreKey, tuple[RemoteRef, ...]]]


@dataclass
class Refreshed:
    """What a notification did: readers queued now, and readers left to the coalesced refresh
    at the end of the current share window."""

    queued: int = 0
    coalesced: int = 0

    @property
    def result(self) -> str:
        if self.queued:
            return "queued"
        return "coalesced" if self.coalesced else "no_readers"


@dataclass
class _KeyState:
    last: float
    trailing: asyncio.TimerHandle | None = None


class NotificationService:
    def __init__(
        self,
        index: ObjectIndex,
        scheduler: WorkScheduler,
        stores: StoreService,
        reads: Reads,
        *,
        rate: float = 10.0,
        burst: int = 100,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.index = index
        self.scheduler = scheduler
        self.stores = stores
        self.reads = reads
        self.rate = rate
        self.burst = burst
        self._monotonic = monotonic
        self._buckets: dict[StoreKey, TokenBucket] = {}
        self._keys: dict[tuple[StoreKey, str], _KeyState] = {}

    # ------------------------------------------------------------------ the receiver's checks
    def known_store(self, store: StoreKey) -> bool:
        return store in self.stores.bodies

    def allow(self, store: StoreKey) -> bool:
        """Take one token of the store's bucket (False: answer 429)."""
        bucket = self._buckets.get(store)
        if bucket is None:
            bucket = self._buckets[store] = TokenBucket(self.rate, self.burst, clock=self._monotonic)
        return bucket.take()

    # ------------------------------------------------------------------ refreshing
    def _refs_of(self, key: ObjKey) -> Iterable[RemoteRef]:
        read = self.reads.get(key)
        if read is not None:
            return read[1]
        body = self.index.managed_secret(key)
        if body is None:
            return ()
        try:
            return sources_of(ManagedSecretSpec.model_validate(body.get("spec") or {})).refs
        except (ValidationError, ValueError):
            return ()  # an invalid spec reads nothing; its own sync reports why

    def readers(self, store: StoreKey, names: Iterable[str]) -> dict[str, dict[ObjKey, list[RemoteRef]]]:
        """Per remote key read through ``store`` that one of ``names`` names: its readers, each
        with the refs of that key it reads."""
        wanted = list(names)
        found: dict[str, dict[ObjKey, list[RemoteRef]]] = {}
        for user in self.index.store_users(store):
            for ref in self._refs_of(user):
                if any(names_match(n, ref.key) for n in wanted):
                    found.setdefault(ref.key, {}).setdefault(user, []).append(ref)
        return found

    def _window(self, store: StoreKey) -> float:
        handle = self.stores.handles.get(store)
        if handle is not None and handle.backend is not None:
            return handle.backend.share_window
        return DEFAULT_WINDOW

    def refresh(self, store: StoreKey, names: Iterable[str]) -> Refreshed:
        """Refresh the readers of ``names`` in ``store`` now, or at the end of the share window
        when their keys were refreshed less than a window ago."""
        names = list(names)
        outcome = Refreshed()
        now = self._monotonic()
        window = self._window(store)
        for key, users in self.readers(store, names).items():
            state = self._keys.get((store, key))
            if state is None or now - state.last >= window:
                if state is not None and state.trailing is not None:
                    state.trailing.cancel()
                self._keys[(store, key)] = _KeyState(last=now)
                outcome.queued += self._forget_and_queue(store, users)
                continue
            outcome.coalesced += len(users)
            if state.trailing is None:
                delay = max(0.0, state.last + window - now)
                state.trailing = asyncio.get_running_loop().call_later(delay, self._trailing, store, key)
        self._prune(now, window)
        return outcome

    def _trailing(self, store: StoreKey, key: str) -> None:
        """The end of a window in which more notifications came: one more refresh, of whoever
        reads the key now."""
        self._keys[(store, key)] = _KeyState(last=self._monotonic())
        users = self.readers(store, [key]).get(key, {})
        self._forget_and_queue(store, users)

    def _forget_and_queue(self, store: StoreKey, users: Mapping[ObjKey, list[RemoteRef]]) -> int:
        handle = self.stores.handles.get(store)
        if handle is not None and handle.backend is not None:
            refs = {ref for refs in users.values() for ref in refs}
            handle.backend.forget(list(refs))
        for user in users:
            self.scheduler.requeue(user, urgent=True)
        return len(users)

    def _prune(self, now: float, window: float) -> None:
        if len(self._keys) < 10_000:
            return
        for k, state in list(self._keys.items()):
            if state.trailing is None and now - state.last >= window:
                del self._keys[k]

    def close(self) -> None:
        for state in self._keys.values():
            if state.trailing is not None:
                state.trailing.cancel()
        self._keys.clear()


def count(source: str, result: str) -> None:
    NOTIFICATIONS.labels(source, result).inc()


class NotifyKey:
    """The receiver's HMAC key, from key ``hmac-key`` of the Secret ``namespace/name``."""

    def __init__(
        self,
        gateway: KubeGateway,
        namespace: str,
        name: str,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.gateway = gateway
        self.namespace = namespace
        self.name = name
        self._monotonic = monotonic
        self._key: bytes | None = None
        self._read_at: float | None = None
        self._lock = asyncio.Lock()

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.name}"

    async def get(self, *, reload: bool = False) -> bytes | None:
        """The key (None when the Secret or its key is missing). ``reload`` re-reads it unless it
        was read moments ago."""
        now = self._monotonic()
        fresh = self._read_at is not None and now - self._read_at < (KEY_RELOAD_MIN if reload else KEY_TTL)
        if fresh:
            return self._key
        async with self._lock:
            now = self._monotonic()
            if self._read_at is not None and now - self._read_at < KEY_RELOAD_MIN:
                return self._key
            try:
                secret = await self.gateway.get_secret(self.namespace, self.name)
            except KubeError as exc:
                log.warning("cannot read the notify Secret %s: %s", self.id, exc)
                return self._key  # keep the last key through an apiserver blip
            self._read_at = self._monotonic()
            raw = ((secret or {}).get("data") or {}).get(NOTIFY_SECRET_KEY)
            if not raw:
                if self._key is not None or secret is None:
                    log.warning(
                        "the notify Secret %s or its key %s is missing; notifications are refused",
                        self.id,
                        NOTIFY_SECRET_KEY,
                    )
                self._key = None
                return None
            try:
                self._key = base64.b64decode(raw, validate=True) or None
            except ValueError:
                log.warning("key %s of the notify Secret %s is not base64", NOTIFY_SECRET_KEY, self.id)
                self._key = None
            return self._key
