"""How responsive the event loop stays while one hostile template burns its whole time budget:
rendered in-line, in a thread, or in Rotor's CPU process pool. Prints the largest and the median
delay of a 10 ms ticker on the loop during the render.

    PYTHONPATH=operator python bench/template_loop.py
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Awaitable, Callable

from rotor.services.cpu import CpuPool
from rotor.values.errors import TemplateError
from rotor.values.template import render_templates

#: regex work that holds the GIL, under the step budget: stops at the 5 s time limit
HOSTILE = {
    "out": "{% set s = 'ab ' * 300000 %}"
    "{% for i in range(10000) %}{% if s | wordcount > 5 %}{% endif %}{% endfor %}"
}


async def measure(name: str, render: Callable[[], Awaitable[object]]) -> None:
    lags: list[float] = []
    done = False

    async def ticker() -> None:
        while not done:
            start = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - start - 0.01)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    with contextlib.suppress(TemplateError):
        await render()
    took = time.perf_counter() - started
    done = True
    await task
    print(
        f"{name:8s} render {took:5.2f} s  loop lag max {max(lags) * 1000:7.1f} ms  "
        f"median {statistics.median(lags) * 1000:6.2f} ms  ticks {len(lags)}"
    )


async def main() -> None:
    async def inline() -> object:
        return render_templates(HOSTILE, {})

    async def thread() -> object:
        return await asyncio.to_thread(render_templates, HOSTILE, {})

    pool = CpuPool(workers=1)
    await pool.render({"warm": "x"}, {})  # start the worker process first

    async def process() -> object:
        return await pool.render(HOSTILE, {})

    await measure("inline", inline)
    await measure("thread", thread)
    await measure("process", process)
    await pool.aclose()


if __name__ == "__main__":
    asyncio.run(main())
