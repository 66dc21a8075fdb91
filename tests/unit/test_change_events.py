"""The SQS change-event consumer over a fake backend: an event refreshes the readers of the named
secret before its message is deleted, other messages are deleted as ignored, failures back off
(1 s doubling to 60 s) and delete nothing, and only a leader with a ready store polls."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from rotor.providers.base import QueuedChange, Unreachable
from rotor.services.change_events import ChangeEventService
from rotor.services.notifications import Refreshed

STORE = ("SecretStore", "team", "aws")
ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:app/db-AbC123"


def _event(secret_id: str) -> str:
    return json.dumps(
        {
            "source": "aws.secretsmanager",
            "detail-type": "AWS API Call via CloudTrail",
            "detail": {"eventName": "PutSecretValue", "requestParameters": {"secretId": secret_id}},
        }
    )


class Log:
    def __init__(self) -> None:
        self.events: list[Any] = []


class FakeBackend:
    store = "SecretStore/team/aws"
    change_events = True

    def __init__(self, log: Log, answers: list[Any]) -> None:
        self.log = log
        self.answers = answers

    async def receive_changes(self, wait_seconds: int) -> list[QueuedChange]:
        if not self.answers:
            await asyncio.Event().wait()  # a long poll that never returns
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def delete_changes(self, receipts: list[str]) -> None:
        self.log.events.append(("delete", sorted(receipts)))


class FakeNotifications:
    def __init__(self, log: Log) -> None:
        self.log = log

    def refresh(self, store: Any, names: Any) -> Refreshed:
        self.log.events.append(("refresh", store, tuple(names)))
        return Refreshed(queued=1)


class Handle:
    def __init__(self, backend: Any, ready: bool = True) -> None:
        self.backend = backend
        self.ready = ready


class Stores:
    def __init__(self) -> None:
        self.handles: dict[Any, Handle] = {}


class Scheduler:
    leading = True

    def requeue(self, key: Any, *, urgent: bool) -> None:
        pass


def _service(log: Log, backend: FakeBackend, sleeps: list[float]) -> tuple[ChangeEventService, Stores]:
    stores = Stores()
    stores.handles[STORE] = Handle(backend)

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    service = ChangeEventService(stores, FakeNotifications(log), Scheduler(), sleep=sleep)  # type: ignore[arg-type]
    return service, stores


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_an_event_is_refreshed_before_its_message_is_deleted_and_other_messages_are_ignored() -> None:
    log = Log()
    backend = FakeBackend(
        log,
        [
            [
                QueuedChange("r1", _event(ARN)),
                QueuedChange("r2", "not an event"),
                QueuedChange("r3", _event("x")),
            ]
        ],
    )
    service, _ = _service(log, backend, [])
    service.reconcile()
    await _settle()
    assert log.events == [
        ("refresh", STORE, (ARN,)),
        ("refresh", STORE, ("x",)),
        ("delete", ["r1", "r2", "r3"]),
    ]
    await service.stop()


async def test_failures_back_off_doubling_to_a_minute_and_delete_nothing() -> None:
    log = Log()
    failures: list[Any] = [Unreachable("the queue cannot be reached") for _ in range(9)]
    backend = FakeBackend(log, [*failures, [QueuedChange("r1", _event(ARN))]])
    sleeps: list[float] = []
    service, _ = _service(log, backend, sleeps)
    service.reconcile()
    await _settle()
    assert sleeps == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert log.events == [("refresh", STORE, (ARN,)), ("delete", ["r1"])]
    await service.stop()


async def test_only_a_leader_with_a_ready_store_polls() -> None:
    log = Log()
    backend = FakeBackend(log, [])
    service, stores = _service(log, backend, [])
    stores.handles[STORE].ready = False
    service.reconcile()
    assert not service.polling
    stores.handles[STORE].ready = True
    service.scheduler.leading = False  # type: ignore[misc]
    service.reconcile()
    assert not service.polling
    service.scheduler.leading = True  # type: ignore[misc]
    service.reconcile()
    assert service.polling == {STORE}
    # a store gone (or rebuilt with a new backend) stops its poller
    del stores.handles[STORE]
    service.reconcile()
    assert not service.polling
    await service.stop()
