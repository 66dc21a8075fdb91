"""The AWS change-event consumer: for each ready store with ``changeEvents.sqsQueueURL``, the
leader long-polls the queue (20 s waits, on threads of their own) and refreshes the readers of the
secret each Secrets Manager event names, through ``NotificationService`` (so bursts coalesce).

A message is deleted only once its refresh is queued (or it is no change event at all: those are
deleted as ``ignored``, or they would come back forever). A message whose handling failed is left
for the queue to deliver again after its visibility timeout. Errors back off, 1 s doubling to 60 s.
Standbys poll nothing; a store that goes away, or whose spec changes, stops its poller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from rotor.notify.eventbridge import parse_change
from rotor.providers.base import ProviderError
from rotor.services.backend import Backend
from rotor.services.notifications import NotificationService, count
from rotor.services.ports import StoreKey, WorkScheduler
from rotor.services.stores import StoreService

log = logging.getLogger("rotor.notify")

SOURCE = "sqs"
WAIT_SECONDS = 20
BACKOFF_CAP = 60.0


class ChangeEventService:
    def __init__(
        self,
        stores: StoreService,
        notifications: NotificationService,
        scheduler: WorkScheduler,
        *,
        wait_seconds: int = WAIT_SECONDS,
        check_every: float = 2.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._sleep = sleep
        self.stores = stores
        self.notifications = notifications
        self.scheduler = scheduler
        self.wait_seconds = wait_seconds
        self.check_every = check_every
        self._pollers: dict[StoreKey, tuple[Backend, asyncio.Task[None]]] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def polling(self) -> set[StoreKey]:
        """The stores whose queues are being polled."""
        return set(self._pollers)

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise())

    async def stop(self) -> None:
        tasks = [t for _, t in self._pollers.values()]
        if self._task is not None:
            tasks.append(self._task)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._pollers.clear()

    def _wanted(self) -> dict[StoreKey, Backend]:
        if not self.scheduler.leading:
            return {}
        wanted: dict[StoreKey, Backend] = {}
        for key, handle in list(self.stores.handles.items()):
            if handle.ready and handle.backend is not None and handle.backend.change_events:
                wanted[key] = handle.backend
        return wanted

    async def _supervise(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                self.reconcile()
            await asyncio.sleep(self.check_every)

    def reconcile(self) -> None:
        """Start a poller per wanted store (a new backend: a new poller), stop the others."""
        wanted = self._wanted()
        for key, (backend, task) in list(self._pollers.items()):
            if wanted.get(key) is not backend or task.done():
                task.cancel()
                del self._pollers[key]
        for key, backend in wanted.items():
            if key not in self._pollers:
                self._pollers[key] = (backend, asyncio.create_task(self._poll(key, backend)))

    async def _poll(self, store: StoreKey, backend: Backend) -> None:
        failures = 0
        while True:
            try:
                messages = await backend.receive_changes(self.wait_seconds)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                delay = min(BACKOFF_CAP, 2.0 ** (failures - 1))
                count(SOURCE, "error")
                log.warning(
                    "receiving change events for store %s failed (%s); trying again in %.0f s",
                    backend.store,
                    exc.message if isinstance(exc, ProviderError) else type(exc).__name__,
                    delay,
                    extra={"reason": exc.reason if isinstance(exc, ProviderError) else "ProviderError"},
                )
                await self._sleep(delay)
                continue
            failures = 0
            done: list[str] = []
            for message in messages:
                change = parse_change(message.body)
                if change is None:
                    count(SOURCE, "ignored")
                    done.append(message.receipt)
                    continue
                outcome = self.notifications.refresh(store, change.secret_ids)
                count(SOURCE, outcome.result)
                log.info(
                    "change event %s for %s: %d ManagedSecrets queued, %d coalesced",
                    change.event,
                    change.secret_ids[0],
                    outcome.queued,
                    outcome.coalesced,
                    extra={"store": backend.store},
                )
                done.append(message.receipt)
            if done:
                try:
                    await backend.delete_changes(done)
                except ProviderError as exc:
                    # the refreshes are queued; the messages come back and refresh once more
                    log.warning(
                        "deleting %d change events of store %s failed: %s",
                        len(done),
                        backend.store,
                        exc.message,
                    )
