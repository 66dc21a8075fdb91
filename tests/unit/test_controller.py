"""The controller's index and worker loop, over a stand-in sync (no servers)."""

from __future__ import annotations

import asyncio
import datetime as dt
from types import SimpleNamespace
from typing import Any

from rotor.clock import Clock
from rotor.controller.core import Controller, Settings


def body(rv: int, phase: str) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ns", "name": "a", "resourceVersion": str(rv), "generation": 1},
        "spec": {"storeRef": {"name": "s"}},
        "status": {"observedGeneration": 1, "rotation": {"phase": phase}},
    }


async def test_an_echo_arriving_during_a_sync_does_not_hide_what_the_sync_recorded() -> None:
    controller = Controller(SimpleNamespace(), Clock(), Settings())  # type: ignore[arg-type]
    seen: list[str] = []

    async def sync(current: dict[str, Any]) -> Any:
        seen.append(current["status"]["rotation"]["phase"])
        # a write made during the sync echoes back (rv 5) before the sync records its outcome (rv 6)
        controller.observe(body(5, "Pending"), "MODIFIED")
        current["metadata"]["resourceVersion"] = "6"
        current["status"] = {"observedGeneration": 1, "rotation": {"phase": "Completed"}}
        return SimpleNamespace(next_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))

    controller.sync.sync = sync  # type: ignore[method-assign]
    first = body(4, "Pending")
    first["status"]["observedGeneration"] = 0  # not handled yet: urgent
    controller.observe(first, None)
    worker = asyncio.create_task(controller._worker(0))
    for _ in range(100):
        if seen:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)
    assert seen == ["Pending"]
    # the index keeps the newest state (rv 6, Completed), not the older echo (rv 5, Pending)
    assert controller.index[("ns", "a")]["metadata"]["resourceVersion"] == "6"
    assert controller.index[("ns", "a")]["status"]["rotation"]["phase"] == "Completed"
