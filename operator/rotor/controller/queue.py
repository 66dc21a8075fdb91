"""One work queue for every ManagedSecret: urgent work (new objects, spec changes, force-sync,
deletions) is always served before routine refreshes, each key is worked on by one worker at a
time, and due times live in a single heap, so idle objects cost nothing.

It also says how it is doing: ``depth`` (keys waiting), ``in_flight`` (keys being worked on),
``oldest_age`` (how long the longest-waiting key has waited) and ``stalled`` (keys wait and
nothing has finished for a while: the liveness rule of ``/healthz``)."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable, Hashable


class WorkQueue:
    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._since: dict[Hashable, float] = {}  # queued key -> when it was queued
        #: when a key was last done (or the queue created or cleared)
        self.last_done = monotonic()
        self._urgent: deque[Hashable] = deque()
        self._routine: deque[Hashable] = deque()
        self._queued: dict[Hashable, bool] = {}  # key -> urgent?
        self._active: set[Hashable] = set()
        self._again: dict[Hashable, bool] = {}  # keys added while active
        self._heap: list[tuple[float, int, Hashable]] = []
        self._due: dict[Hashable, float] = {}
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._timer_wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self._urgent) + len(self._routine)

    @property
    def scheduled(self) -> int:
        return len(self._due)

    def add(self, key: Hashable, *, urgent: bool = False) -> None:
        if key in self._active:
            self._again[key] = self._again.get(key, False) or urgent
            return
        queued = self._queued.get(key)
        if queued is None:
            self._queued[key] = urgent
            self._since[key] = self._monotonic()
            (self._urgent if urgent else self._routine).append(key)
        elif urgent and not queued:
            self._queued[key] = True
            self._urgent.append(key)  # the stale routine entry is skipped when popped
        self._wake.set()

    def schedule(self, key: Hashable, when: float | None) -> None:
        """Run ``key`` (routine) at ``when`` (a timestamp on the controller's clock); None cancels."""
        if when is None:
            self._due.pop(key, None)
            return
        if self._due.get(key) == when:
            return
        self._due[key] = when
        heapq.heappush(self._heap, (when, next(self._seq), key))
        self._timer_wake.set()

    @property
    def depth(self) -> int:
        """Keys waiting for a worker (not those scheduled for later)."""
        return len(self._queued)

    @property
    def in_flight(self) -> int:
        return len(self._active)

    def oldest_age(self) -> float:
        """Seconds the longest-waiting key has waited (0 when none waits)."""
        if not self._since:
            return 0.0
        return max(0.0, self._monotonic() - min(self._since.values()))

    def stalled(self, bound: float) -> bool:
        """Keys have waited longer than ``bound`` and no key was done for as long: the workers
        are stuck (an idle queue, or a busy one that finishes work, is not stalled)."""
        return self.oldest_age() > bound and self._monotonic() - self.last_done > bound

    def clear(self) -> None:
        """Drop every waiting and scheduled key (keys being worked on finish; their ``done`` and
        ``schedule`` calls still count)."""
        self._urgent.clear()
        self._routine.clear()
        self._queued.clear()
        self._since.clear()
        self._again.clear()
        self._heap.clear()
        self._due.clear()
        self.last_done = self._monotonic()

    def forget(self, key: Hashable) -> None:
        self._due.pop(key, None)
        self._again.pop(key, None)

    def due_at(self, key: Hashable) -> float | None:
        return self._due.get(key)

    async def get(self) -> Hashable:
        while True:
            for dq in (self._urgent, self._routine):
                while dq:
                    key = dq.popleft()
                    urgent_flag = self._queued.get(key)
                    if urgent_flag is None:
                        continue  # already taken via the other deque
                    if dq is self._routine and urgent_flag:
                        continue  # promoted; the urgent entry will serve it
                    del self._queued[key]
                    self._since.pop(key, None)
                    self._active.add(key)
                    return key
            self._wake.clear()
            await self._wake.wait()

    def done(self, key: Hashable) -> None:
        self._active.discard(key)
        self.last_done = self._monotonic()
        again = self._again.pop(key, None)
        if again is not None:
            self.add(key, urgent=again)

    def pop_due(self, now: float, released: list[Hashable] | None = None) -> float | None:
        """Move every key due by ``now`` to the routine queue; return the next due time."""
        while self._heap:
            when, _, key = self._heap[0]
            if self._due.get(key) != when:
                heapq.heappop(self._heap)  # superseded
                continue
            if when > now:
                return when
            heapq.heappop(self._heap)
            del self._due[key]
            if released is not None:
                released.append(key)
            self.add(key)
        return None

    async def run_timer(
        self,
        now: Callable[[], float],
        *,
        max_sleep: float = 1.0,
        on_release: Callable[[list[Hashable]], None] | None = None,
    ) -> None:
        """Forever: release due keys. ``now`` returns the clock's timestamp; ``on_release`` sees
        each batch of keys released together (a refresh wave)."""
        clock = now
        while True:
            released: list[Hashable] = []
            nxt = self.pop_due(clock(), released)
            if released and on_release is not None:
                on_release(released)
            delay = max_sleep if nxt is None else max(0.0, min(max_sleep, nxt - clock()))
            self._timer_wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._timer_wake.wait(), timeout=delay)
