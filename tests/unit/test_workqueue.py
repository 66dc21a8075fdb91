"""The work queue (rotor.controller.queue): ordering, one worker per key, due times, and the
numbers it reports (depth, in flight, oldest age, stalled). No servers."""

from __future__ import annotations

import asyncio

from rotor.controller.queue import WorkQueue


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def take(queue: WorkQueue, n: int) -> list[object]:
    return [await asyncio.wait_for(queue.get(), timeout=1) for _ in range(n)]


async def test_urgent_work_is_served_before_routine_work() -> None:
    queue = WorkQueue()
    queue.add("r1")
    queue.add("r2")
    queue.add("u1", urgent=True)
    assert await take(queue, 3) == ["u1", "r1", "r2"]


async def test_a_routine_key_made_urgent_is_served_once_and_first() -> None:
    queue = WorkQueue()
    queue.add("a")
    queue.add("b")
    queue.add("b", urgent=True)
    assert queue.depth == 2
    assert await take(queue, 2) == ["b", "a"]
    assert queue.depth == 0


async def test_a_key_is_worked_on_by_one_worker_at_a_time() -> None:
    queue = WorkQueue()
    queue.add("a")
    assert await take(queue, 1) == ["a"]
    queue.add("a", urgent=True)  # changed while being worked on: kept for later
    assert queue.depth == 0 and queue.in_flight == 1
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0.01)
    assert not getter.done()
    queue.done("a")
    assert await asyncio.wait_for(getter, timeout=1) == "a"


async def test_due_keys_are_released_in_order_and_rescheduling_supersedes() -> None:
    queue = WorkQueue()
    queue.schedule("late", 30.0)
    queue.schedule("early", 10.0)
    queue.schedule("moved", 5.0)
    queue.schedule("moved", 40.0)
    released: list[object] = []
    assert queue.pop_due(20.0, released) == 30.0
    assert released == ["early"]
    assert queue.pop_due(100.0, released) is None
    assert released == ["early", "late", "moved"]
    queue.schedule("gone", 1.0)
    queue.schedule("gone", None)
    assert queue.pop_due(100.0) is None and queue.due_at("gone") is None


async def test_depth_in_flight_and_oldest_age() -> None:
    ticks = Ticks()
    queue = WorkQueue(monotonic=ticks)
    assert (queue.depth, queue.in_flight, queue.oldest_age()) == (0, 0, 0.0)
    queue.add("a")
    ticks.now = 5
    queue.add("b", urgent=True)
    ticks.now = 12
    assert queue.depth == 2 and queue.oldest_age() == 12
    assert await take(queue, 1) == ["b"]
    assert queue.in_flight == 1 and queue.depth == 1 and queue.oldest_age() == 12
    assert await take(queue, 1) == ["a"]
    assert queue.oldest_age() == 0.0 and queue.in_flight == 2
    queue.done("a")
    queue.done("b")
    assert queue.in_flight == 0


async def test_stalled_means_keys_wait_and_nothing_finishes() -> None:
    ticks = Ticks()
    queue = WorkQueue(monotonic=ticks)
    ticks.now = 1000  # idle for a long time: not stalled
    assert not queue.stalled(300)
    queue.add("a")
    queue.add("b")
    ticks.now = 1200
    assert not queue.stalled(300), "waited 200 s only"
    ticks.now = 1301
    assert queue.stalled(300), "waited 301 s and nothing was done for as long"
    assert await take(queue, 1) == ["a"]
    queue.done("a")  # progress
    ticks.now = 1302
    assert not queue.stalled(300)
    ticks.now = 1700  # b waits on, nothing else finished
    assert queue.stalled(300)


async def test_clear_drops_waiting_and_scheduled_keys_but_not_work_in_flight() -> None:
    queue = WorkQueue()
    queue.add("a")
    queue.add("b")
    assert await take(queue, 1) == ["a"]
    queue.add("a")  # again after a
    queue.schedule("c", 5.0)
    queue.clear()
    assert queue.depth == 0 and queue.scheduled == 0 and queue.in_flight == 1
    queue.done("a")
    assert queue.depth == 0, "the re-add made while a was in flight was dropped too"
    assert queue.pop_due(100.0) is None


async def test_run_timer_releases_due_keys_as_a_wave() -> None:
    ticks = Ticks()
    queue = WorkQueue()
    waves: list[list[object]] = []
    queue.schedule("a", 1.0)
    queue.schedule("b", 1.0)
    timer = asyncio.create_task(queue.run_timer(ticks, max_sleep=0.01, on_release=waves.append))
    try:
        await asyncio.sleep(0.03)
        assert waves == []
        ticks.now = 2.0
        got = await take(queue, 2)
    finally:
        timer.cancel()
        await asyncio.gather(timer, return_exceptions=True)
    assert sorted(map(str, got)) == ["a", "b"]
    assert [sorted(map(str, w)) for w in waves] == [["a", "b"]]
