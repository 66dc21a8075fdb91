"""CPU-bound work off the event loop: template rendering and key generation.

Both are pure Python (Jinja2) or hold the GIL for long stretches, so a thread would still starve
the loop: they run in a small pool of worker processes, with their inputs pickled. The pool is
bounded (``workers`` processes); extra jobs wait in the executor's queue, never on the loop.

Errors come back as a typed outcome (class name, message) and are raised again in the operator as
the same documented error, so a failure reads exactly as it did when rendering ran in-line. No
value, input or output, is ever logged here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import multiprocessing
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from rotor.rotation.errors import GeneratorError, RotationError
from rotor.values import errors as value_errors

log = logging.getLogger("rotor.cpu")

T = TypeVar("T")

#: (True, result) or (False, (error class name, reason, message))
Outcome = tuple[bool, Any]

_VALUE_ERRORS: dict[str, type[value_errors.ValueFailure]] = {
    cls.__name__: cls
    for cls in (
        value_errors.ValueFailure,
        value_errors.ValidationFailed,
        value_errors.TemplateError,
        value_errors.PropertyNotFound,
        value_errors.InvalidSpec,
        value_errors.TooLarge,
    )
}


def _render_job(templates: dict[str, str], values: dict[str, bytes]) -> Outcome:
    """In a worker process: render, and return the outcome as plain data."""
    from rotor.values.template import render_templates

    try:
        return True, render_templates(templates, values)
    except value_errors.ValueFailure as err:
        return False, (type(err).__name__, err.reason, err.message)


def _generate_job(kind: str, params: dict[str, Any], key: str, now: dt.datetime) -> Outcome:
    from rotor.rotation.generators import generate

    try:
        return True, dict(generate(kind, params, key=key, now=now))
    except GeneratorError as err:
        return False, ("GeneratorError", err.reason, err.message)
    except RotationError as err:
        return False, ("RotationError", err.reason, err.message)


def _raise(failure: tuple[str, str, str]) -> None:
    name, reason, message = failure
    if name in _VALUE_ERRORS:
        raise _VALUE_ERRORS[name](message)
    if name == "GeneratorError":
        raise GeneratorError(message, reason=reason)
    raise RotationError(reason, message)


class CpuPool:
    """Runs renders and key generation in worker processes (``workers=0``: in-line, for unit
    tests that need no loop responsiveness)."""

    def __init__(self, workers: int = 2) -> None:
        self.workers = workers
        self._executor: Executor | None = None

    def _pool(self) -> Executor:
        if self._executor is None:
            # spawn: the operator has threads (backend pool), and forking a threaded process is unsafe
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("spawn")
            )
        return self._executor

    async def _run(self, fn: Callable[..., Outcome], *args: Any) -> Any:
        if self.workers <= 0:
            ok, result = fn(*args)
        else:
            loop = asyncio.get_running_loop()
            try:
                ok, result = await loop.run_in_executor(self._pool(), fn, *args)
            except BrokenProcessPool:
                # a worker died (killed, out of memory): start a fresh pool and try once more
                log.warning("a CPU worker process died; starting a new pool")
                self._executor = None
                ok, result = await loop.run_in_executor(self._pool(), fn, *args)
        if not ok:
            _raise(result)
        return result

    async def render(self, templates: Mapping[str, str], values: Mapping[str, bytes]) -> dict[str, bytes]:
        rendered: dict[str, bytes] = await self._run(_render_job, dict(templates), dict(values))
        return rendered

    async def generate(
        self, kind: str, params: Mapping[str, Any] | None, *, key: str, now: dt.datetime
    ) -> dict[str, bytes]:
        generated: dict[str, bytes] = await self._run(_generate_job, kind, dict(params or {}), key, now)
        return generated

    async def aclose(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)


INLINE = CpuPool(workers=0)
