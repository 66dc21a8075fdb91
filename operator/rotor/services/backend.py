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
from rotor.providers.base import Capabilities, Provider, ProviderError, RemoteRef, RemoteSecret, SecretMetadata
from rotor.services.ratelimit import TokenBucket

T = TypeVar("T")

_POOL: ThreadPoolExecutor | None = None


def thread_pool(size: int = 16) -> ThreadPoolExecutor:
    global _POOL  # noqa: PLW0603 - one pool per process, sized once at startup
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
        qps: float = 20,
        burst: int = 40,
        share_window: float = 5.0,
        batch_delay: float = 0.02,
    ) -> None:
        self.provider = provider
        self.store = store
        self.bucket = TokenBucket(qps, burst)
        self.share_window = share_window
        self.batch_delay = batch_delay
        self._reads: dict[RemoteRef, _Entry] = {}
        self._batch: dict[RemoteRef, asyncio.Future[RemoteSecret]] = {}
        self._batch_task: asyncio.Task[None] | None = None
        self.capabilities: Capabilities | None = None
        self.batches = callable(getattr(provider, "read_many", None)) and provider.name.startswith("aws")

    async def call(self, operation: str, fn: Callable[..., T], *args: Any, tokens: int = 1) -> T:
        await self.bucket.acquire(tokens)
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        result = "success"
        try:
            return await loop.run_in_executor(thread_pool(), lambda: fn(*args))
        except ProviderError as err:
            result = err.reason
            raise
        except Exception:
            result = "error"
            raise
        finally:
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
            self._reads.pop(ref, None)
            raise
        future.set_result(value)
        self._reads[ref] = _Entry(future, time.monotonic())
        return value

    def forget(self, refs: list[RemoteRef]) -> None:
        """Drop shared reads (force-sync must see the source now)."""
        for ref in refs:
            entry = self._reads.get(ref)
            if entry is not None and entry.future.done():
                self._reads.pop(ref, None)

    def _gc(self, now: float) -> None:
        if len(self._reads) < 4096:
            return
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
        await asyncio.sleep(self.batch_delay)
        pending, self._batch = self._batch, {}
        refs = list(pending)
        try:
            results = await self.call("read_many", self.provider.read_many, refs, tokens=max(1, len(refs) // 20))
        except BaseException as exc:  # the whole batch failed
            for fut in pending.values():
                if not fut.done():
                    fut.set_exception(exc)
                    fut.exception()
            return
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
    async def find(self, path: str, regexp: str | None) -> list[str]:
        return await self.call("find", self.provider.find, path, regexp)

    async def describe(self, key: str) -> SecretMetadata:
        return await self.call("describe", self.provider.describe, key)

    async def validate(self) -> Capabilities:
        self.capabilities = await self.call("validate", self.provider.validate)
        return self.capabilities

    async def extra(self, operation: str, method: str, *args: Any) -> Any:
        fn = getattr(self.provider, method, None)
        if fn is None:
            raise ProviderError(f"the {self.provider.name} provider cannot {operation}")
        return await self.call(operation, fn, *args)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(thread_pool(), self.provider.close)
