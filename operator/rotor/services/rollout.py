"""Rollout of consumers: after Rotor writes a Secret, restart the workloads whose data changed.

The sync path only calls ``after_write``, which records the write and returns at once. Then:

1. **Debounce** per (namespace, Secret): the rollout runs ``--restart-debounce`` after the last
   write of a burst (never more than ``DEBOUNCE_CAP`` debounces after the first), with the data
   of the last write.
2. **Decide** per consumer (``rotor.rollout.discovery`` and ``.decisions``): restart only when the
   digest of the keys it reads differs from the one recorded on it. Under ``strategy: Notify`` the
   consumers whose keys changed get an Event instead, and nothing restarts.
3. **Wait for the minimum interval** (``rotor.rollout.budget``): a workload restarted less than
   ``--restart-min-interval`` ago waits for the interval's end. Until its restart starts, every
   later change (of this Secret or another it reads) merges into it, with the latest digests.
4. **Limit**: at most ``--restart-limit`` restarts in progress at once per namespace and
   ``--restart-limit-cluster`` in all. A restart holds its slot from the patch until the rollout
   has finished (``rotor.rollout.progress``) or ``restart_timeout`` has passed. The rest wait in
   order (``rotor.rollout.budget.next_to_start``).
5. **Report**: ``status.rollout`` on the ManagedSecret, an Event (RolloutRestarted, or RolloutFailed)
   and ``rotor_rollout_restarts_total{kind,result}``; ``rotor_rollout_restarts_waiting{reason}``
   counts the restarts decided and not started.

Nothing here raises into the sync path: errors are logged and reported.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from rotor.api.managedsecret import ManagedSecretSpec
from rotor.api.names import API_VERSION
from rotor.clock import Clock, format_time
from rotor.kube.gateway import KubeError, KubeGateway
from rotor.observability.metrics import (
    ROLLOUT_IN_PROGRESS,
    ROLLOUT_NOTIFICATIONS,
    ROLLOUT_RESTARTS,
    ROLLOUT_WAITING,
)
from rotor.rollout.budget import Budget, last_restart, next_to_start, restart_wait
from rotor.rollout.debounce import Pending, Write, coalesce
from rotor.rollout.decisions import decide, is_fresh, record_patch, recorded_digest, restart_patch, write_info
from rotor.rollout.discovery import Consumer, Ref, consumers, explicit, missing
from rotor.rollout.progress import finished
from rotor.services.ports import ObjectIndex
from rotor.sync.plan import Desired
from rotor.values.hashing import consumer_digest

log = logging.getLogger("rotor.rollout")

DEFAULT_RESTART_TIMEOUT = 300.0
DEFAULT_MIN_INTERVAL = 600.0
INTERVAL_RECHECK = 30.0  # a workload waiting for its interval re-reads its last restart this often
DEBOUNCE_CAP = 10  # a burst rolls out at most this many debounces after its first write
MAX_LISTED = 100  # status.rollout.restarted stays small

Result = Literal["restarted", "notified", "failed", "skipped"]


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
    waiting: Literal["interval", "limit", ""] = ""


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
        restart_limit_cluster: int = 0,
        restart_min_interval: float = DEFAULT_MIN_INTERVAL,
        restart_debounce: float = 30.0,
        restart_timeout: float = DEFAULT_RESTART_TIMEOUT,
        poll_interval: float = 1.0,
        poll_max: float = 5.0,
        interval_recheck: float = INTERVAL_RECHECK,
    ) -> None:
        self.gateway = gateway
        self.clock = clock
        self.index = index
        self.hash_key = hash_key
        self.budget = Budget(
            namespace_limit=max(1, int(restart_limit)),
            cluster_limit=max(0, int(restart_limit_cluster)),
            min_interval=max(0.0, float(restart_min_interval)),
        )
        self.restart_debounce = restart_debounce
        self.restart_timeout = restart_timeout
        self.poll_interval = poll_interval
        self.poll_max = poll_max
        self.interval_recheck = interval_recheck
        self._pending: dict[tuple[str, str], Pending] = {}
        self._timers: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._jobs: dict[tuple[str, str, str], _Job] = {}
        self._slot_queue: list[tuple[str, asyncio.Future[None]]] = []  # (namespace, granted)
        self._running: dict[str, int] = {}  # slots held per namespace
        self._restarted: dict[
            tuple[str, str, str], dt.datetime
        ] = {}  # restarts started, within their interval
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ entry point (sync path)
    async def after_write(self, body: Mapping[str, Any], spec: ManagedSecretSpec, desired: Desired) -> None:
        """Schedule the rollout of a write; returns at once and never raises."""
        try:
            self._schedule(body, spec, desired.namespace, desired.name, desired.data, resume=False)
        except Exception:
            where = f"{getattr(desired, 'namespace', '?')}/{getattr(desired, 'name', '?')}"
            log.exception("could not schedule the rollout of Secret %s", where)

    def resume(self, body: Mapping[str, Any]) -> None:
        """This process (or this leader) sees the ManagedSecret for the first time: finish what an
        earlier one may have left undone. Its Secret's data (from the index; nothing is read from
        the store) is rolled out with ``resume``: only the consumers Rotor recorded with older data
        restart (a restart decided, then lost in a debounce or an interval wait when the operator
        stopped), within their interval. Never raises."""
        meta = body.get("metadata") or {}
        raw = (body.get("spec") or {}).get("rollout") or {}
        if raw.get("strategy") not in ("Auto", "Explicit", "Notify"):
            return  # cheap test first: most ManagedSecrets roll nothing out
        try:
            spec = ManagedSecretSpec.model_validate(body.get("spec") or {})
            namespace, name = str(meta["namespace"]), spec.target.name or str(meta["name"])
            secret = self.index.secret(namespace, name)
            if secret is None or not secret.get("data"):
                return  # not written yet: its first write decides
            data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
            self._schedule(body, spec, namespace, name, data, resume=True)
        except Exception:
            log.exception("could not resume the rollout of %s/%s", meta.get("namespace"), meta.get("name"))

    def _schedule(
        self,
        body: Mapping[str, Any],
        spec: ManagedSecretSpec,
        namespace: str,
        secret: str,
        data: Mapping[str, bytes],
        *,
        resume: bool,
    ) -> None:
        rollout = spec.rollout
        if rollout is None or rollout.strategy not in ("Auto", "Explicit", "Notify"):
            return
        meta = body.get("metadata") or {}
        write = Write(
            namespace=namespace,
            secret=secret,
            strategy=rollout.strategy,
            targets=tuple((t.kind, t.name) for t in rollout.targets),
            data=dict(data),
            info=write_info(self.index.secret(namespace, secret)),
            resume=resume,
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
        notified: list[Outcome] = []
        for consumer in found:
            workload = by_ref[(consumer.kind, consumer.name)]
            digest = self._digest(write.data, consumer)
            decision = decide(
                recorded_digest(workload, write.secret),
                digest,
                fresh=is_fresh(workload, write.info),
                resume=write.resume,
            )
            log.debug(
                "%s in %s: %s (%s)",
                consumer.ref,
                namespace,
                decision.action,
                decision.reason,
                extra={"secret": f"{namespace}/{write.secret}", "workload": consumer.ref},
            )
            if decision.action == "restart" and write.strategy == "Notify":
                notified.append(await self._notify(write, workload, consumer, digest))
            elif decision.action == "restart":
                future = self._enqueue(namespace, consumer, write.secret, digest)
                if future is not None:
                    queued.append(future)
            else:
                # the data is back to what the workload reads: a restart still waiting drops this Secret
                self._merge_waiting(namespace, consumer, write.secret, digest)
                if decision.action == "record":
                    await self._record(namespace, consumer, {write.secret: digest})
        outcomes = list(await asyncio.gather(*queued)) if queued else []
        for ref in lost:
            ROLLOUT_RESTARTS.labels(ref.split("/", 1)[0], "error").inc()
            outcomes.append(Outcome(ref, "failed", "not found"))
        await self._report(write, [*outcomes, *notified])

    def _digest(self, data: Mapping[str, bytes], consumer: Consumer) -> str:
        keys: Iterable[str] = data.keys() if consumer.keys is None else consumer.keys
        return consumer_digest(data, keys, key=self.hash_key)

    async def _record(self, namespace: str, consumer: Consumer, digests: Mapping[str, str]) -> None:
        try:
            await self.gateway.patch_workload(namespace, consumer.kind, consumer.name, record_patch(digests))
        except KubeError as err:
            log.warning("cannot record what %s in %s reads: %s", consumer.ref, namespace, err)

    async def _notify(
        self, write: Write, workload: Mapping[str, Any], consumer: Consumer, digest: str
    ) -> Outcome:
        """``strategy: Notify``: an Event on the workload, the digest recorded, no restart."""
        meta = workload.get("metadata") or {}
        regarding = {"apiVersion": "apps/v1", "kind": consumer.kind, "metadata": meta}
        try:
            await self.gateway.post_event(
                regarding,
                type_="Normal",
                reason="SecretChanged",
                action="Notify",
                note=f"The keys it reads of Secret {write.secret} changed (rollout strategy Notify: "
                "Rotor does not restart it)",
            )
        except Exception as err:  # events are best effort
            log.debug("cannot post an Event on %s in %s: %s", consumer.ref, write.namespace, err)
        await self._record(write.namespace, consumer, {write.secret: digest})
        ROLLOUT_NOTIFICATIONS.labels(consumer.kind).inc()
        log.info(
            "notified %s in %s",
            consumer.ref,
            write.namespace,
            extra={"workload": consumer.ref, "secret": write.secret, "namespace": write.namespace},
        )
        return Outcome(consumer.ref, "notified")

    # ------------------------------------------------------------------ budget and restart
    def _enqueue(
        self, namespace: str, consumer: Consumer, secret: str, digest: str
    ) -> asyncio.Future[Outcome] | None:
        """Queue a restart, or merge into the one still waiting. Returns the future to await for its
        outcome, or None when an earlier rollout of this Secret awaits (and reports) it already."""
        key = (namespace, consumer.kind, consumer.name)
        job = self._jobs.get(key)
        if job is not None and not job.started:
            known = secret in job.digests
            job.digests[secret] = digest  # one restart, with the latest data of every Secret it reads
            return None if known else job.done
        job = _Job({secret: digest}, asyncio.get_running_loop().create_future())
        self._jobs[key] = job
        self._spawn(self._run(key, job))
        return job.done

    def _merge_waiting(self, namespace: str, consumer: Consumer, secret: str, digest: str) -> None:
        job = self._jobs.get((namespace, consumer.kind, consumer.name))
        if job is not None and not job.started and secret in job.digests:
            job.digests[secret] = digest  # _restart skips a Secret whose digest the workload has

    async def _run(self, key: tuple[str, str, str], job: _Job) -> None:
        namespace, kind, name = key
        ref = f"{kind}/{name}"
        slot = False
        try:
            while True:
                await self._wait_interval(namespace, kind, name, job)
                self._set_waiting(job, "limit")
                await self._acquire(namespace)
                slot = True
                if self._interval_left(key, None) <= 0:
                    break
                # restarted by an earlier job meanwhile (its patch was in flight): wait again
                self._release(namespace)
                slot = False
            self._set_waiting(job, "")
            job.started = True
            if self._jobs.get(key) is job:
                del self._jobs[key]
            # before the first await: a later job for this workload sees it at once
            before = self._restarted.get(key)
            self._restarted[key] = self.clock.now()
            outcome = await self._restart(namespace, kind, name, job.digests)
            if outcome.result != "restarted":
                self._restarted.pop(key, None)
                if before is not None:
                    self._restarted[key] = before
            job.done.set_result(outcome)
            if outcome.result == "restarted":
                ROLLOUT_IN_PROGRESS.inc()
                try:
                    await self._wait_finished(namespace, kind, name)
                finally:
                    ROLLOUT_IN_PROGRESS.dec()
        except Exception:
            log.exception("restarting %s in %s failed", ref, namespace)
        finally:
            self._set_waiting(job, "")
            if slot:
                self._release(namespace)
            if self._jobs.get(key) is job:
                del self._jobs[key]
            if not job.done.done():
                job.done.set_result(Outcome(ref, "failed", "internal error"))

    async def _wait_interval(self, namespace: str, kind: str, name: str, job: _Job) -> None:
        """Wait until ``--restart-min-interval`` has passed since the workload's last restart (read
        from the workload, so it holds across operator restarts)."""
        if self.budget.min_interval <= 0:
            return
        logged = False
        while True:
            try:
                workload = await self.gateway.get_workload(namespace, kind, name)
            except KubeError as err:
                log.debug("cannot read %s/%s in %s: %s", kind, name, namespace, err)
                return  # _restart reads it again and reports the error
            if workload is None:
                return
            wait = self._interval_left((namespace, kind, name), last_restart(workload))
            if wait <= 0:
                return
            if not logged:
                logged = True
                log.info(
                    "%s/%s in %s restarted less than %.0fs ago: restarting it in %.0fs, with the data "
                    "of then",
                    kind,
                    name,
                    namespace,
                    self.budget.min_interval,
                    wait,
                    extra={"workload": f"{kind}/{name}", "namespace": namespace},
                )
            self._set_waiting(job, "interval")
            await asyncio.sleep(min(wait, self.interval_recheck))

    def _interval_left(self, key: tuple[str, str, str], recorded: dt.datetime | None) -> float:
        """Seconds until the workload may restart: from the restart recorded on it, or the one this
        process started last (its patch may not have landed yet), whichever is later."""
        now = self.clock.now()
        mine = self._restarted.get(key)
        if mine is not None and restart_wait(mine, now, self.budget) <= 0:
            del self._restarted[key]  # past its interval: the workload's annotation suffices
            mine = None
        last = max((t for t in (recorded, mine) if t is not None), default=None)
        return restart_wait(last, now, self.budget)

    def _set_waiting(self, job: _Job, reason: Literal["interval", "limit", ""]) -> None:
        if job.waiting == reason:
            return
        if job.waiting:
            ROLLOUT_WAITING.labels(job.waiting).dec()
        if reason:
            ROLLOUT_WAITING.labels(reason).inc()
        job.waiting = reason

    async def _acquire(self, namespace: str) -> None:
        """Wait for a slot of the namespace's and the cluster's budget (in order)."""
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (namespace, granted)
        self._slot_queue.append(entry)
        self._dispatch()
        try:
            await granted
        except asyncio.CancelledError:
            if entry in self._slot_queue:
                self._slot_queue.remove(entry)
            elif granted.done() and not granted.cancelled():
                self._release(namespace)
            raise

    def _release(self, namespace: str) -> None:
        held = self._running.get(namespace, 0) - 1
        if held > 0:
            self._running[namespace] = held
        else:
            self._running.pop(namespace, None)
        self._dispatch()

    def _dispatch(self) -> None:
        while True:
            i = next_to_start([ns for ns, _ in self._slot_queue], self._running, self.budget)
            if i is None:
                return
            namespace, granted = self._slot_queue.pop(i)
            self._running[namespace] = self._running.get(namespace, 0) + 1
            granted.set_result(None)

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
        notified = [o.ref for o in outcomes if o.result == "notified"]
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
            if notified:
                await self.gateway.post_event(
                    owner,
                    type_="Normal",
                    reason="RolloutNotified",
                    action="Rollout",
                    note=f"Told {', '.join(notified[:MAX_LISTED])} that the keys they read of Secret "
                    f"{write.secret} changed (strategy Notify: nothing restarted)",
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
