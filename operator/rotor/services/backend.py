"""The async face of one store's provider.

- Every call runs in a bounded thread pool (hvac and boto3 block), never on the event loop.
- The store's rate limit is enforced per call.
- Every call is counted in ``rotor_provider_requests_total``.
- Reads are shared: concurrent and recent reads of the same (key, version) are served once;
  reads that arrive within a few milliseconds are batched where the provider can batch (AWS).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from rotor.observability.metrics import PROVIDER_CACHE_HITS, PROVIDER_DURATION, PROVIDER_REQUESTS
from rotor.providers.base import (
    SHARE_WINDOW,
    BatchReader,
    Capabilities,
    CertificateIssuer,
    ChangeEventSource,
    ChangeLister,
    Creator,
    DatabaseCredentials,
    InvalidSpec,
    LeasedCredentials,
    LeasedValue,
    LeaseGrant,
    MapsOnly,
    PathReader,
    Provider,
    ProviderError,
    QueuedChange,
    RemoteDeleter,
    RemoteRef,
    RemoteSecret,
    RetiresVersions,
    RolledBack,
    RollingBack,
    SecretMetadata,
    SelfCounting,
    SelfRotating,
    StagedWriter,
    TagFinder,
    Unsupported,
    VersionReader,
    WriteChecker,
    WriteDenied,
    WriteResult,
)
from rotor.services.ratelimit import DEFAULT_BURST, DEFAULT_QPS, AdaptiveLimiter

T = TypeVar("T")

_POOL: ThreadPoolExecutor | None = None
#: long polls (SQS ReceiveMessage waits up to 20 s) get threads of their own, so that they never
#: hold the threads reads need
_LONG_POLLS: ThreadPoolExecutor | None = None


def thread_pool(size: int = 16) -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=size, thread_name_prefix="rotor-backend")
    return _POOL


@dataclass
class _Entry:
    future: asyncio.Future[RemoteSecret]
    stored_at: float


class Backend:
    def __init__(
        self,
        provider: Provider,
        *,
        store: str,
        qps: float = DEFAULT_QPS,
        burst: int = DEFAULT_BURST,
        share_window: float = SHARE_WINDOW,
        batch_delay: float = 0.02,
    ) -> None:
        self.provider = provider
        self.store = store
        self.bucket = AdaptiveLimiter(qps, burst, name=store)
        self.share_window = share_window
        self.batch_delay = batch_delay
        self._reads: dict[RemoteRef, _Entry] = {}
        self._gc_at = 0.0
        self._batch: dict[RemoteRef, asyncio.Future[RemoteSecret]] = {}
        self._batch_task: asyncio.Task[None] | None = None
        self.capabilities: Capabilities | None = None
        #: reads that arrive together go out as one read_many (AWS BatchGetSecretValue)
        self.batches = isinstance(provider, BatchReader)
        #: the provider reports every real API call itself (a batch of 20 is one call)
        self.self_counting = isinstance(provider, SelfCounting)
        if isinstance(provider, SelfCounting):
            provider.observe_calls(self._observe_call)
        #: change detection by version listing: key -> the last value read (versions are immutable)
        self.detects_changes = isinstance(provider, ChangeLister)
        self._latest: dict[str, RemoteSecret] = {}
        self._index: tuple[float, dict[str, str]] | None = None
        self._index_task: asyncio.Task[dict[str, str]] | None = None
        self.index_ttl = 2.0

    def _observe_call(self, operation: str, result: str, seconds: float) -> None:
        """One sample per real API call of a self-counting provider (from its worker thread)."""
        PROVIDER_REQUESTS.labels(self.store, self.provider.name, operation, result).inc()
        PROVIDER_DURATION.labels(self.provider.name, operation).observe(seconds)

    async def call(self, operation: str, fn: Callable[..., T], *args: Any, tokens: int = 1) -> T:
        await self.bucket.acquire(tokens)
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        result = "success"
        try:
            return await loop.run_in_executor(thread_pool(), lambda: fn(*args))
        except ProviderError as err:
            result = err.reason
            self.bucket.feedback(err)  # a throttling answer slows this store down
            raise
        except Exception:
            result = "error"
            raise
        finally:
            if not self.self_counting:
                PROVIDER_REQUESTS.labels(self.store, self.provider.name, operation, result).inc()
                PROVIDER_DURATION.labels(self.provider.name, operation).observe(time.perf_counter() - started)

    # ------------------------------------------------------------------ reads
    async def read(self, ref: RemoteRef) -> RemoteSecret:
        now = time.monotonic()
        entry = self._reads.get(ref)
        if entry is not None and (not entry.future.done() or now - entry.stored_at < self.share_window):
            if entry.future.done() and entry.future.exception() is not None:
                pass  # failures are not shared beyond the in-flight window
            else:
                PROVIDER_CACHE_HITS.inc()
                return await asyncio.shield(entry.future)
        if self.detects_changes and ref.version in (None, "AWSCURRENT"):
            known = self._latest.get(ref.key)
            if known is not None:
                index = await self.version_index([ref.key])
                if index.get(ref.key) == known.version:
                    PROVIDER_CACHE_HITS.inc()  # unchanged at the source: no fetch
                    return known
        loop = asyncio.get_running_loop()
        future: asyncio.Future[RemoteSecret] = loop.create_future()
        self._reads[ref] = _Entry(future, now)
        self._gc(now)
        try:
            if self.batches and (ref.version is None or ref.version == "AWSCURRENT"):
                value = await self._batched(ref)
            else:
                value = await self.call("read", self.provider.read, ref)
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc)
                future.exception()  # mark retrieved
            current = self._reads.get(ref)
            if current is not None and current.future is future:
                del self._reads[ref]
            raise
        future.set_result(value)
        current = self._reads.get(ref)
        if current is not None and current.future is future:
            # still the shared read of this ref: share it for a window from now. A read that
            # ``forget`` dropped while it was on the wire may hold a value from before a change:
            # it answers its own callers, and is shared with no one after them.
            self._reads[ref] = _Entry(future, time.monotonic())
            if self.detects_changes and ref.version in (None, "AWSCURRENT"):
                self._latest[ref.key] = value
        return value

    async def version_index(self, keys: list[str]) -> dict[str, str]:
        """Current version id per secret, from one shared ListSecrets pass (cached briefly, so a
        refresh wave of many objects lists once)."""
        now = time.monotonic()
        if (
            self._index is not None
            and now - self._index[0] < self.index_ttl
            and all(k in self._index[1] or k not in self._latest for k in keys)
        ):
            return self._index[1]
        provider = self.provider
        if not isinstance(provider, ChangeLister):
            return {}
        if self._index_task is None or self._index_task.done():
            wanted = sorted(self._latest) or keys
            self._index_task = asyncio.create_task(self.call("list_changes", provider.list_changes, wanted))
        try:
            index = await asyncio.shield(self._index_task)
        except ProviderError:
            return {}
        self._index = (time.monotonic(), index)
        return index

    async def prefetch(self, refs: list[RemoteRef]) -> None:
        """Read ahead for a refresh wave: list versions once, then fetch only what changed, in
        batches of 20. Reads of these refs that arrive meanwhile wait for this instead of making
        calls of their own."""
        current = sorted({r for r in refs if r.version in (None, "AWSCURRENT")}, key=lambda r: r.key)
        if not (self.detects_changes and self.batches and current):
            return
        loop = asyncio.get_running_loop()
        stamp = time.monotonic()
        pending: dict[RemoteRef, asyncio.Future[RemoteSecret]] = {}
        for ref in current:
            entry = self._reads.get(ref)
            if entry is not None and (not entry.future.done() or stamp - entry.stored_at < self.share_window):
                continue  # already being read, or just read
            fut: asyncio.Future[RemoteSecret] = loop.create_future()
            self._reads[ref] = _Entry(fut, stamp)
            pending[ref] = fut
        if not pending:
            return
        try:
            index = await self.version_index([r.key for r in pending])
            stale: list[RemoteRef] = []
            for ref, fut in pending.items():
                known = self._latest.get(ref.key)
                if known is not None and known.version == index.get(ref.key):
                    PROVIDER_CACHE_HITS.inc()
                    fut.set_result(known)
                else:
                    stale.append(ref)
            results: dict[RemoteRef, RemoteSecret | ProviderError] = {}
            if stale:
                results = await self.call(
                    "read_many", self.provider.read_many, stale, tokens=max(1, len(stale) // 20)
                )
        except BaseException as exc:
            for ref, fut in pending.items():
                if not fut.done():
                    fut.set_exception(exc)
                    fut.exception()
                    self._reads.pop(ref, None)
            if isinstance(exc, ProviderError):
                return
            raise
        stamp = time.monotonic()
        for ref in stale:
            fut = pending[ref]
            res = results.get(ref)
            if isinstance(res, RemoteSecret):
                fut.set_result(res)
                entry = self._reads.get(ref)
                if entry is not None and entry.future is fut:  # not forgotten meanwhile
                    self._reads[ref] = _Entry(fut, stamp)
                    self._latest[ref.key] = res
            else:
                fut.set_exception(res or ProviderError(f"no result for '{ref.key}'"))
                fut.exception()
                self._reads.pop(ref, None)

    def forget(self, refs: list[RemoteRef]) -> None:
        """Drop shared reads, settled or still on the wire: the next read of these refs asks the
        source (a force-sync, or a change notification, must see the source as it is now, not a
        read that started before the change). A read in flight still answers those already
        waiting on it."""
        for ref in refs:
            self._latest.pop(ref.key, None)
            self._reads.pop(ref, None)
        if refs and self.detects_changes:
            self._index = None  # the version listing may predate the change too

    def _gc(self, now: float) -> None:
        """Drop settled reads older than the share window, at most once per window (values do
        not stay in memory longer than they can be shared)."""
        if now - self._gc_at < self.share_window:
            return
        self._gc_at = now
        for ref, entry in list(self._reads.items()):
            if entry.future.done() and now - entry.stored_at >= self.share_window:
                del self._reads[ref]

    async def _batched(self, ref: RemoteRef) -> RemoteSecret:
        loop = asyncio.get_running_loop()
        fut = self._batch.get(ref)
        if fut is None:
            fut = loop.create_future()
            self._batch[ref] = fut
        if self._batch_task is None or self._batch_task.done():
            self._batch_task = asyncio.create_task(self._flush_batch())
        return await asyncio.shield(fut)

    async def _flush_batch(self) -> None:
        """Send what has gathered, then whatever gathered meanwhile, until nothing waits: a read
        that arrives while a batch is on the wire joins the next batch, never a lost one."""
        while self._batch:
            await asyncio.sleep(self.batch_delay)
            pending, self._batch = self._batch, {}
            refs = list(pending)
            try:
                results = await self.call(
                    "read_many", self.provider.read_many, refs, tokens=max(1, len(refs) // 20)
                )
            except BaseException as exc:  # the whole batch failed
                for fut in pending.values():
                    if not fut.done():
                        fut.set_exception(exc)
                        fut.exception()
                if not isinstance(exc, Exception):
                    raise
                continue
            for ref, fut in pending.items():
                if fut.done():
                    continue
                res = results.get(ref)
                if isinstance(res, RemoteSecret):
                    fut.set_result(res)
                else:
                    fut.set_exception(res or ProviderError(f"no result for '{ref.key}'"))
                    fut.exception()

    # ------------------------------------------------------------------ the rest
    async def find(self, path: str, regexp: str | None, tags: dict[str, str] | None = None) -> list[str]:
        p = self.provider
        if not tags:
            return await self.call("find", p.find, path, regexp)
        if not isinstance(p, TagFinder):
            raise InvalidSpec(
                f"dataFrom.find.tags: the {p.name} provider of store {self.store} has no tags or labels "
                "to match; remove find.tags and select by path and name.regexp"
            )
        return await self.call("find", p.find_tagged, path, regexp, tags)

    async def describe(self, key: str) -> SecretMetadata:
        return await self.call("describe", self.provider.describe, key)

    async def validate(self) -> Capabilities:
        self.capabilities = await self.call("validate", self.provider.validate)
        return self.capabilities

    # ------------------------------------------------------------------ capabilities
    def _unsupported(self, what: str) -> Unsupported:
        return Unsupported(
            f"the {self.provider.name} provider of store {self.store} cannot {what}; use a store whose "
            "provider can, or change what the object asks for"
        )

    @property
    def checks_writes(self) -> bool:
        """Whether write access is judged per path before writing (``check_write`` asks)."""
        return isinstance(self.provider, WriteChecker)

    async def missing_write(self, keys: list[str], *, creating: bool = False) -> dict[str, list[str]]:
        """The paths among ``keys`` the credentials cannot write, with the capabilities each
        lacks; empty when all can be written, or when the provider does not judge per path (it
        then reports a denied write when it happens, as AWS does)."""
        p = self.provider
        if not isinstance(p, WriteChecker) or not keys:
            return {}
        return await self.call("capabilities", lambda: p.missing_write(list(keys), creating=creating))

    async def check_write(self, keys: list[str], *, creating: bool = False) -> None:
        """Before a rotation writes ``keys``: raise ``WriteDenied`` (reason Forbidden) naming
        every path and missing capability, and where to grant it, if any cannot be written."""
        missing = await self.missing_write(keys, creating=creating)
        if missing:
            p = self.provider
            assert isinstance(p, WriteChecker)
            raise WriteDenied(p.describe_missing_write(missing), missing)

    @property
    def creates(self) -> bool:
        """Whether a missing key can be created without overwriting (createIfMissing)."""
        return isinstance(self.provider, Creator)

    async def create(self, key: str, value: dict[str, Any] | bytes | str, token: str) -> WriteResult:
        """Create ``key``; ``WriteConflict`` when anything exists there (nothing is written)."""
        p = self.provider
        if not isinstance(p, Creator):
            raise self._unsupported("create a missing key without overwriting")
        return await self.call("create", p.create, key, value, token)

    @property
    def stages_writes(self) -> bool:
        return isinstance(self.provider, StagedWriter)

    async def stage(self, key: str, value: dict[str, Any] | bytes | str, token: str) -> str:
        p = self.provider
        if not isinstance(p, StagedWriter):
            raise self._unsupported("stage a version")
        return await self.call("stage", p.stage, key, value, token)

    async def verify(self, key: str, version_id: str, expected: dict[str, Any] | bytes | str) -> bool:
        p = self.provider
        if not isinstance(p, StagedWriter):
            raise self._unsupported("verify a staged version")
        return await self.call("verify", p.verify, key, version_id, expected)

    async def promote(self, key: str, version_id: str) -> None:
        p = self.provider
        if not isinstance(p, StagedWriter):
            raise self._unsupported("promote a version")
        await self.call("promote", p.promote, key, version_id)

    async def rotate(self, key: str, token: str | None = None) -> str | None:
        p = self.provider
        if not isinstance(p, SelfRotating):
            raise self._unsupported("rotate by itself")
        return await self.call("rotate", p.rotate, key, token)

    async def database_credentials(self, mount: str, role: str) -> RemoteSecret:
        p = self.provider
        if not isinstance(p, DatabaseCredentials):
            raise self._unsupported("read database credentials")
        return await self.call("read", p.read_database_credentials, mount, role)

    async def rotate_database_role(self, mount: str, role: str) -> None:
        p = self.provider
        if not isinstance(p, DatabaseCredentials):
            raise self._unsupported("rotate a database role")
        await self.call("rotate", p.rotate_database_role, mount, role)

    async def issue_leased(self, path: str) -> LeasedValue:
        """New credentials from ``path`` (never shared: every read issues a new lease)."""
        p = self.provider
        if not isinstance(p, LeasedCredentials):
            raise self._unsupported("issue credentials with a lease (vaultDynamic)")
        return await self.call("issue", p.issue_leased, path)

    async def renew_lease(self, lease_id: str, increment: int) -> LeaseGrant:
        p = self.provider
        if not isinstance(p, LeasedCredentials):
            raise self._unsupported("renew leases")
        return await self.call("renew", p.renew_lease, lease_id, increment)

    async def revoke_lease(self, lease_id: str) -> None:
        p = self.provider
        if not isinstance(p, LeasedCredentials):
            raise self._unsupported("revoke leases")
        await self.call("revoke", p.revoke_lease, lease_id)

    async def issue_certificate(
        self, mount: str, role: str, common_name: str, alt_names: list[str], ttl: str | None
    ) -> dict[str, str]:
        p = self.provider
        if not isinstance(p, CertificateIssuer):
            raise self._unsupported("issue certificates")
        return await self.call("issue", p.issue_certificate, mount, role, common_name, alt_names, ttl)

    async def rollback(self, key: str) -> RolledBack:
        p = self.provider
        if not isinstance(p, RollingBack):
            raise self._unsupported("roll back")
        return await self.call("rollback", p.rollback, key)

    @property
    def retires_versions(self) -> bool:
        """Whether a replaced version is retired after a rotation's grace period (``retire_version``)."""
        return isinstance(self.provider, RetiresVersions)

    async def retire_version(self, key: str, version: str) -> bool:
        p = self.provider
        if not isinstance(p, RetiresVersions):
            raise self._unsupported("retire versions")
        return await self.call("retire", p.retire_version, key, version)

    @property
    def reads_versions(self) -> bool:
        """Whether earlier versions can be read back by id (``read_version``)."""
        return isinstance(self.provider, VersionReader)

    async def read_version(self, key: str, version: str) -> RemoteSecret:
        """Exactly version ``version`` of ``key`` (not shared with current reads: a rare read,
        made when the previous value cannot come from this reconcile)."""
        p = self.provider
        if not isinstance(p, VersionReader):
            raise self._unsupported("read an earlier version")
        return await self.call("read", p.read_version, key, version)

    async def read_path(self, path: str) -> dict[str, bytes]:
        p = self.provider
        if not isinstance(p, PathReader):
            raise self._unsupported("read a whole path")
        return await self.call("read", p.read_path, path)

    # ------------------------------------------------------------------ pushes (PushSecret)
    async def read_fresh(self, ref: RemoteRef) -> RemoteSecret:
        """One read that is not shared with other readers: a push must see the value as it is now,
        not as another object read it within the share window."""
        self.forget([ref])
        return await self.call("read", self.provider.read, ref)

    async def write(self, key: str, value: dict[str, Any] | bytes | str, cas: str | None) -> WriteResult:
        result = await self.call("write", self.provider.write, key, value, cas)
        self.forget([RemoteRef(key)])
        return result

    @property
    def maps_only(self) -> bool:
        """The backend stores maps of properties only (Vault KV)."""
        return isinstance(self.provider, MapsOnly)

    @property
    def deletes(self) -> bool:
        return isinstance(self.provider, RemoteDeleter)

    async def delete_secret(self, key: str) -> None:
        p = self.provider
        if not isinstance(p, RemoteDeleter):
            raise self._unsupported("delete a remote secret")
        await self.call("delete", p.delete_secret, key)
        self.forget([RemoteRef(key)])

    @property
    def change_events(self) -> bool:
        """The store names a change-event queue its provider can poll."""
        p = self.provider
        return isinstance(p, ChangeEventSource) and p.has_change_events

    async def receive_changes(self, wait_seconds: int) -> list[QueuedChange]:
        """One long poll of the store's change-event queue (on a thread of its own)."""
        global _LONG_POLLS
        p = self.provider
        if not isinstance(p, ChangeEventSource):
            raise self._unsupported("deliver change events")
        if _LONG_POLLS is None:
            _LONG_POLLS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="rotor-longpoll")
        loop = asyncio.get_running_loop()
        pool = _LONG_POLLS
        return await loop.run_in_executor(pool, lambda: p.receive_changes(wait_seconds))

    async def delete_changes(self, receipts: list[str]) -> None:
        p = self.provider
        if not isinstance(p, ChangeEventSource):
            raise self._unsupported("deliver change events")
        await self.call("delete_changes", p.delete_changes, receipts)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(thread_pool(), self.provider.close)
