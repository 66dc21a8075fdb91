"""Rollout of consumers: after Rotor writes a Secret, restart the workloads whose data changed.

The sync path only calls ``after_write``, which records the write and returns at once. Then:

1. **Debounce** per (namespace, Secret): the rollout runs ``--restart-debounce`` after the last
   write of a burst (never more than ``DEBOUNCE_CAP`` debounces after the first), with the data
   of the last write.
2. **Decide** per consumer (``rotor.rollout.discovery`` and ``.decisions``): restart only when the
   digest of the keys it reads differs from the one recorded on it.
3. **Limit** per namespace: at most ``--restart-limit`` restarts in progress at once. A restart
   holds its slot from the patch until the rollout has finished (``rotor.rollout.progress``) or
   ``restart_timeout`` has passed. The rest wait in order. A workload waiting for a slot is
   restarted once, for every Secret that changed under it meanwhile.
4. **Report**: ``status.rollout`` on the ManagedSecret, an Event (RolloutRestarted, or RolloutFailed)
   and ``rotor_rollout_restarts_total{kind,result}``.

Nothing here raises into the sync path: errors are logged and reported.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from rotor.api.managedsecret import ManagedSecretSpec
from rotor.api.names import API_VERSION
from rotor.clock import Clock, format_time
from rotor.kube.gateway import KubeError, KubeGateway
from rotor.observability.metrics import ROLLOUT_RESTARTS
from rotor.rollout.debounce import Pending, Write, coalesce
from rotor.rollout.decisions import decide, is_fresh, record_patch, recorded_digest, restart_patch, write_info
from rotor.rollout.discovery import Consumer, Ref, consumers, explicit, missing
from rotor.rollout.progress import finished
from rotor.services.ports import ObjectIndex
from rotor.sync.plan import Desired
from rotor.values.hashing import consumer_digest

log = logging.getLogger("rotor.rollout")

DEFAULT_RESTART_TIMEOUT = 300.0
DEBOUNCE_CAP = 10  # a burst rolls out at most this many debounces after its first write
MAX_LISTED = 100  # status.rollout.restarted stays small

Result = Literal["restarted", "failed", "skipped"]


@dataclass(frozen=True)
class Outcome:
    ref: str  # Kind/name
    result: Result
    detail: str = ""


@dataclass
class _Job:
    """One queued restart of one workload. Until it starts, later writes merge into it."""

    digests: dict[str, str]  # secret name -> digest to record
    done: asyncio.Future[Outcome]
    started: bool = False


class RolloutService:
    """Holds the gateway, the clock, the index (the Secret just written), the hash key and the
    restart settings."""

    def __init__(
        self,
        gateway: KubeGateway,
        clock: Clock,
        index: ObjectIndex,
        *,
        hash_key: bytes,
        restart_limit: int = 2,
        restart_debounce: float = 30.0,
        restart_timeout: float = DEFAULT_RESTART_TIMEOUT,
        poll_interval: float = 1.0,
        poll_max: float = 5.0,
    ) -> None:
        self.gateway = gateway
        self.clock = clock
        self.index = index
        self.hash_key = hash_key
        self.restart_limit = restart_limit
        self.restart_debounce = restart_debounce
        self.restart_timeout = restart_timeout
        self.poll_interval = poll_interval
        self.poll_max = poll_max
        self._pending: dict[tuple[str, str], Pending] = {}
        self._timers: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._jobs: dict[tuple[str, str, str], _Job] = {}
        self._limits: dict[str, asyncio.Semaphore] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ entry point (sync path)
    async def after_write(self, body: Mapping[str, Any], spec: ManagedSecretSpec, desired: Desired) -> None:
        """Schedule the rollout of a write; returns at once and never raises."""
        try:
            self._schedule(body, spec, desired)
        except Exception:
            where = f"{getattr(desired, 'namespace', '?')}/{getattr(desired, 'name', '?')}"
            log.exception("could not schedule the rollout of Secret %s", where)

    def _schedule(self, body: Mapping[str, Any], spec: ManagedSecretSpec, desired: Desired) -> None:
        rollout = spec.rollout
        if rollout is None or rollout.strategy not in ("Auto", "Explicit"):
            return
        meta = body.get("metadata") or {}
        write = Write(
            namespace=desired.namespace,
            secret=desired.name,
            strategy=rollout.strategy,
            targets=tuple((t.kind, t.name) for t in rollout.targets),
            data=dict(desired.data),
            info=write_info(self.index.secret(desired.namespace, desired.name)),
            owner={
                "apiVersion": body.get("apiVersion") or API_VERSION,
                "kind": body.get("kind") or "ManagedSecret",
                "metadata": {k: meta.get(k) for k in ("name", "namespace", "uid")},
            },
        )
        key = (write.namespace, write.secret)
        loop = asyncio.get_running_loop()
        debounce = max(0.0, float(self.restart_debounce))
        self._pending[key] = coalesce(
            self._pending.get(key),
            write,
            now=loop.time(),
            debounce=debounce,
            max_delay=debounce * DEBOUNCE_CAP,
        )
        if key not in self._timers:
            self._timers[key] = self._spawn(self._timer(key))

    # ------------------------------------------------------------------ debounce
    async def _timer(self, key: tuple[str, str]) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                pending = self._pending.get(key)
                if pending is None:
                    return
                delay = pending.due - loop.time()
                if delay <= 0:
                    break
                await asyncio.sleep(delay)
            del self._pending[key]
        finally:
            self._timers.pop(key, None)
        if pending.writes > 1:
            log.info("rolling out %d writes of Secret %s/%s as one", pending.writes, *key)
        try:
            await self._roll_out(pending.write)
        except Exception:
            log.exception("rollout of Secret %s/%s failed", *key)

    # ------------------------------------------------------------------ decide
    async def _roll_out(self, write: Write) -> None:
        namespace = write.namespace
        try:
            workloads = await self.gateway.list_workloads(namespace)
        except KubeError as err:
            log.warning("cannot list workloads in %s: %s", namespace, err)
            await self._report(write, [Outcome("workloads", "failed", f"listing workloads failed: {err}")])
            return
        if write.strategy == "Explicit":
            targets = [Ref(kind, name) for kind, name in write.targets]
            found = explicit(targets, workloads)
            lost = missing(targets, workloads)
        else:
            found, lost = consumers(workloads, write.secret), []
        by_ref = {(str(w.get("kind")), str((w.get("metadata") or {}).get("name"))): w for w in workloads}
        queued: list[asyncio.Future[Outcome]] = []
        for consumer in found:
            workload = by_ref[(consumer.kind, consumer.name)]
            digest = self._digest(write.data, consumer)
            decision = decide(
                recorded_digest(workload, write.secret), digest, fresh=is_fresh(workload, write.info)
            )
            log.debug(
                "%s in %s: %s (%s)",
                consumer.ref,
                namespace,
                decision.action,
                decision.reason,
                extra={"secret": f"{namespace}/{write.secret}", "workload": consumer.ref},
            )
            if decision.action == "record":
                await self._record(namespace, consumer, {write.secret: digest})
            elif decision.action == "restart":
                queued.append(self._enqueue(namespace, consumer, write.secret, digest))
        outcomes = list(await asyncio.gather(*queued)) if queued else []
        for ref in lost:
            ROLLOUT_RESTARTS.labels(ref.split("/", 1)[0], "error").inc()
            outcomes.append(Outcome(ref, "failed", "not found"))
        await self._report(write, outcomes)

    def _digest(self, data: Mapping[str, bytes], consumer: Consumer) -> str:
        keys: Iterable[str] = data.keys() if consumer.keys is None else consumer.keys
        return consumer_digest(data, keys, key=self.hash_key)

    async def _record(self, namespace: str, consumer: Consumer, digests: Mapping[str, str]) -> None:
        try:
            await self.gateway.patch_workload(namespace, consumer.kind, consumer.name, record_patch(digests))
        except KubeError as err:
            log.warning("cannot record what %s in %s reads: %s", consumer.ref, namespace, err)

    # ------------------------------------------------------------------ limit and restart
    def _limit(self, namespace: str) -> asyncio.Semaphore:
        sem = self._limits.get(namespace)
        if sem is None:
            sem = self._limits[namespace] = asyncio.Semaphore(max(1, int(self.restart_limit)))
        return sem

    def _enqueue(
        self, namespace: str, consumer: Consumer, secret: str, digest: str
    ) -> asyncio.Future[Outcome]:
        key = (namespace, consumer.kind, consumer.name)
        job = self._jobs.get(key)
        if job is not None and not job.started:
            job.digests[secret] = digest  # one restart for every Secret that changed meanwhile
            return job.done
        job = _Job({secret: digest}, asyncio.get_running_loop().create_future())
        self._jobs[key] = job
        self._spawn(self._run(key, job))
        return job.done

    async def _run(self, key: tuple[str, str, str], job: _Job) -> None:
        namespace, kind, name = key
        ref = f"{kind}/{name}"
        try:
            async with self._limit(namespace):
                job.started = True
                if self._jobs.get(key) is job:
                    del self._jobs[key]
                outcome = await self._restart(namespace, kind, name, job.digests)
                job.done.set_result(outcome)
                if outcome.result == "restarted":
                    await self._wait_finished(namespace, kind, name)
        except Exception:
            log.exception("restarting %s in %s failed", ref, namespace)
        finally:
            if self._jobs.get(key) is job:
                del self._jobs[key]
            if not job.done.done():
                job.done.set_result(Outcome(ref, "failed", "internal error"))

    async def _restart(self, namespace: str, kind: str, name: str, digests: Mapping[str, str]) -> Outcome:
        ref = f"{kind}/{name}"
        try:
            workload = await self.gateway.get_workload(namespace, kind, name)
        except KubeError as err:
            ROLLOUT_RESTARTS.labels(kind, "error").inc()
            return Outcome(ref, "failed", str(err))
        if workload is None:
            return Outcome(ref, "skipped", "deleted")
        todo = {s: d for s, d in digests.items() if recorded_digest(workload, s) != d}
        if not todo:
            return Outcome(ref, "skipped", "already reads the current data")
        try:
            await self.gateway.patch_workload(namespace, kind, name, restart_patch(todo, self.clock.now()))
        except KubeError as err:
            if err.status == 404:
                return Outcome(ref, "skipped", "deleted")
            ROLLOUT_RESTARTS.labels(kind, "error").inc()
            log.warning("restarting %s in %s failed: %s", ref, namespace, err)
            return Outcome(ref, "failed", str(err))
        ROLLOUT_RESTARTS.labels(kind, "success").inc()
        log.info(
            "restarted %s in %s",
            ref,
            namespace,
            extra={"workload": ref, "secrets": sorted(todo), "namespace": namespace},
        )
        return Outcome(ref, "restarted")

    async def _wait_finished(self, namespace: str, kind: str, name: str) -> None:
        """Hold the slot until the rollout has finished, or ``restart_timeout`` has passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.restart_timeout
        delay = self.poll_interval
        while (left := deadline - loop.time()) > 0:
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, self.poll_max)
            try:
                workload = await self.gateway.get_workload(namespace, kind, name)
            except Exception as err:  # the API unreachable, or the client closed at shutdown: keep the slot
                log.debug("cannot read %s/%s in %s: %s", kind, name, namespace, err)
                continue
            if workload is None or finished(workload):
                return
        log.warning(
            "the rollout of %s/%s in %s did not finish within %.0fs; starting the next one",
            kind,
            name,
            namespace,
            self.restart_timeout,
        )

    # ------------------------------------------------------------------ report
    async def _report(self, write: Write, outcomes: list[Outcome]) -> None:
        owner = write.owner
        meta = owner["metadata"]
        restarted = [o.ref for o in outcomes if o.result == "restarted"]
        failed = [o for o in outcomes if o.result == "failed"]
        try:
            if restarted:
                status = {
                    "rollout": {
                        "lastRestartTime": format_time(self.clock.now()),
                        "restarted": restarted[:MAX_LISTED],
                    }
                }
                await self.gateway.patch_status("ManagedSecret", meta["name"], meta["namespace"], status)
                await self.gateway.post_event(
                    owner,
                    type_="Normal",
                    reason="RolloutRestarted",
                    action="Rollout",
                    note=f"Restarted {', '.join(restarted)}: "
                    f"the keys they read of Secret {write.secret} changed",
                )
            if failed:
                await self.gateway.post_event(
                    owner,
                    type_="Warning",
                    reason="RolloutFailed",
                    action="Rollout",
                    note="Could not restart " + "; ".join(f"{o.ref}: {o.detail}" for o in failed),
                )
        except Exception:
            log.exception("cannot report the rollout of Secret %s/%s", write.namespace, write.secret)

    # ------------------------------------------------------------------ tasks
    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def stop(self) -> None:
        """Cancel pending rollouts (the controller may call this on shutdown)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
