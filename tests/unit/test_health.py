"""/healthz and /readyz (rotor.observability.http) over a stand-in controller: no servers."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from rotor.controller.queue import WorkQueue
from rotor.observability.http import MetricsServer


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def stand_in(queue: WorkQueue, *, leading: bool = True, listed: bool = True) -> Any:
    async def forever() -> None:
        await asyncio.Event().wait()

    controller = SimpleNamespace(
        tasks=[asyncio.create_task(forever())],
        leading=leading,
        listed=listed,
        queue=queue,
        samples=lambda: [],
        stores=SimpleNamespace(samples=lambda: []),
    )
    controller.stalled = lambda: controller.leading and queue.stalled(300)
    return controller


async def answer(handler: Any) -> tuple[int, str]:
    response = await handler(None)
    return response.status, response.text


async def test_healthz_turns_red_when_the_leaders_queue_stalls_and_green_when_work_finishes() -> None:
    ticks = Ticks()
    queue = WorkQueue(monotonic=ticks)
    controller = stand_in(queue)
    server = MetricsServer("127.0.0.1:0", controller)
    try:
        assert await answer(server.healthz) == (200, "ok")
        queue.add(("ns", "a"))
        ticks.now = 299
        assert (await answer(server.healthz))[0] == 200
        ticks.now = 301
        status, text = await answer(server.healthz)
        assert status == 500 and "stalled" in text
        # a standby's queue never counts
        controller.leading = False
        assert (await answer(server.healthz))[0] == 200
        controller.leading = True
        key = await queue.get()
        queue.done(key)
        assert (await answer(server.healthz))[0] == 200
    finally:
        for task in controller.tasks:
            task.cancel()
        await server.stop()


async def test_healthz_is_red_when_a_controller_task_ended() -> None:
    controller = stand_in(WorkQueue())
    server = MetricsServer("127.0.0.1:0", controller)
    try:
        controller.tasks[0].cancel()
        await asyncio.sleep(0)
        assert await answer(server.healthz) == (500, "controller stopped")
    finally:
        await server.stop()


async def test_readyz_says_ready_on_a_listed_standby_and_which_role() -> None:
    controller = stand_in(WorkQueue(), leading=False, listed=False)
    server = MetricsServer("127.0.0.1:0", controller)
    try:
        assert await answer(server.readyz) == (503, "starting")
        controller.listed = True
        assert await answer(server.readyz) == (200, "ready (standby)")
        controller.leading = True
        assert await answer(server.readyz) == (200, "ready (leader)")
    finally:
        for task in controller.tasks:
            task.cancel()
        await server.stop()
