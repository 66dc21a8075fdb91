"""The controller's index, leadership and worker loop, over a stand-in sync (no servers)."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest

from rotor.clock import Clock
from rotor.controller.core import Controller, Settings, apiserver_trouble
from rotor.controller.index import Index


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


# ---------------------------------------------------------------------------------------------- the index
def ms(name: str, *, store: str = "vault", policy: str | None = None, ns: str = "ns", **status: Any) -> dict:
    spec: dict[str, Any] = {"storeRef": {"name": store}}
    if policy:
        spec["rotation"] = {"policyRef": {"name": policy}}
    return {
        "metadata": {"namespace": ns, "name": name, "resourceVersion": "1", "generation": 1},
        "spec": spec,
        "status": {"observedGeneration": 1, **status},
    }


def store_body(name: str, *, ns: str | None = "ns", generation: int = 1, rv: int = 1) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "generation": generation, "resourceVersion": str(rv)}
    if ns:
        meta["namespace"] = ns
    return {"metadata": meta, "spec": {}}


class Elector:
    """What the controller needs of a LeaderElector."""

    def __init__(self) -> None:
        self.on_change: list[Any] = []

    def may_write(self) -> bool:
        return True


def make(*, elector: Elector | None = None) -> Controller:
    return Controller(SimpleNamespace(), Clock(), Settings(), elector=elector)  # type: ignore[arg-type]


def test_reverse_maps_follow_each_event_without_scanning() -> None:
    index = Index()
    index.put_managed(("ns", "a"), ms("a", policy="weekly"))
    index.put_managed(("ns", "b"), ms("b", policy="weekly"))
    index.put_managed(("other", "c"), ms("c", ns="other", policy="weekly"))
    assert index.store_users(("SecretStore", "ns", "vault")) == {("ns", "a"), ("ns", "b")}
    assert index.policy_users(("RotationPolicy", "ns", "weekly")) == {("ns", "a"), ("ns", "b")}
    assert index.policy_users(("RotationPolicy", "other", "weekly")) == {("other", "c")}
    # a moves to another store and drops its policy; b is deleted
    moved = ms("a", store="aws")
    moved["spec"]["storeRef"]["kind"] = "ClusterSecretStore"
    index.put_managed(("ns", "a"), moved)
    index.drop_managed(("ns", "b"))
    assert index.store_users(("SecretStore", "ns", "vault")) == set()
    assert index.store_users(("ClusterSecretStore", "", "aws")) == {("ns", "a")}
    assert index.policy_users(("RotationPolicy", "ns", "weekly")) == set()
    assert dict(index.items()) == {("ns", "a"): moved, ("other", "c"): index[("other", "c")]}
    assert index.managed_secret(("ns", "b")) is None


async def test_a_policy_change_requeues_its_users_only() -> None:
    controller = make()
    controller.observe(ms("a", policy="weekly", phase="Completed"), None)
    controller.observe(ms("b", policy="daily"), None)
    controller.queue.clear()
    policy = store_body("weekly")
    controller.observe_policy("RotationPolicy", policy, None)
    assert controller.index.policy(("RotationPolicy", "ns", "weekly")) is policy
    assert await asyncio.wait_for(controller.queue.get(), timeout=1) == ("ns", "a")
    assert controller.queue.depth == 0
    # its status changing (same generation) is no reason to re-evaluate
    controller.queue.done(("ns", "a"))
    controller.observe_policy("RotationPolicy", store_body("weekly", rv=2), "MODIFIED")
    assert controller.queue.depth == 0
    controller.observe_policy("RotationPolicy", store_body("weekly", rv=3, generation=2), "MODIFIED")
    assert controller.queue.depth == 1
    controller.observe_policy("RotationPolicy", store_body("weekly", rv=4), "DELETED")
    assert controller.index.policy(("RotationPolicy", "ns", "weekly")) is None


async def test_store_events_go_to_the_store_service_and_wake_users_when_it_goes() -> None:
    controller = make()
    ensured: list[Any] = []
    forgotten: list[Any] = []

    async def ensure(key: Any, **_: Any) -> None:
        ensured.append(key)

    async def forget(key: Any) -> None:
        forgotten.append(key)

    controller.stores.ensure = ensure  # type: ignore[method-assign]
    controller.stores.forget = forget  # type: ignore[method-assign]
    controller.observe(ms("a", store="shared"), None)
    controller.queue.clear()
    body = store_body("shared", ns=None)
    controller.observe_store("ClusterSecretStore", body, None)
    await asyncio.sleep(0.01)
    key = ("ClusterSecretStore", "", "shared")
    assert ensured == [key] and controller.stores.bodies[key] is body
    controller.observe_store("ClusterSecretStore", store_body("shared", ns=None, rv=2), "DELETED")
    await asyncio.sleep(0.01)
    assert forgotten == [key] and controller.index.store(key) is None
    controller.index.put_managed(("ns", "a"), ms("a", store="shared"))  # still names it
    assert controller.queue.depth == 0 or await controller.queue.get() == ("ns", "a")


async def test_a_standby_keeps_its_index_warm_but_queues_and_validates_nothing() -> None:
    elector = Elector()
    controller = make(elector=elector)  # type: ignore[arg-type]
    assert not controller.leading
    ensured: list[Any] = []

    async def ensure(key: Any, **_: Any) -> None:
        ensured.append(key)

    controller.stores.ensure = ensure  # type: ignore[method-assign]
    fresh = ms("new")
    fresh["status"]["observedGeneration"] = 0  # never handled: urgent for a leader
    controller.observe(fresh, None)
    controller.observe(ms("ready", conditions=[{"type": "Ready", "status": "True"}]), None)
    controller.observe_store("SecretStore", store_body("vault"), None)
    controller.requeue(("ns", "new"), urgent=True)
    await asyncio.sleep(0.01)
    assert set(controller.index) == {("ns", "new"), ("ns", "ready")}
    assert controller.queue.depth == 0 and controller.queue.scheduled == 0 and ensured == []

    # gaining the Lease: everything is triaged as on a restart, stores are validated
    for callback in elector.on_change:
        callback(True)
    await asyncio.sleep(0.01)
    assert controller.leading and ensured == [("SecretStore", "ns", "vault")]
    assert await asyncio.wait_for(controller.queue.get(), timeout=1) == ("ns", "new")
    assert controller.queue.depth == 0

    # losing it: the queue is dropped at once
    controller.queue.add(("ns", "ready"))
    for callback in elector.on_change:
        callback(False)
    assert not controller.leading and controller.queue.depth == 0


async def test_a_worker_on_a_replica_that_lost_the_lease_does_not_sync() -> None:
    elector = Elector()
    controller = make(elector=elector)  # type: ignore[arg-type]
    synced: list[Any] = []

    async def sync(current: dict[str, Any]) -> Any:
        synced.append(current["metadata"]["name"])
        return SimpleNamespace(next_at=None)

    controller.sync.sync = sync  # type: ignore[method-assign]
    fresh = ms("a")
    fresh["status"]["observedGeneration"] = 0
    controller.observe(fresh, None)
    worker = asyncio.create_task(controller._worker(0))
    await asyncio.sleep(0.02)
    assert synced == [], "a standby's worker waits"
    controller.set_leading(True)
    for _ in range(100):
        if synced:
            break
        await asyncio.sleep(0.01)
    assert synced == ["a"]
    controller.set_leading(False)
    controller.leading = False
    controller.queue.add(("ns", "a"), urgent=True)  # e.g. added just before the loss
    controller._lead.set()  # a worker already past the wait
    await asyncio.sleep(0.02)
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)
    assert synced == ["a"]


# ---------------------------------------------------------------------------------------------- failures
def test_apiserver_outages_are_told_apart_from_bugs() -> None:
    import aiohttp

    from rotor.kube.gateway import KubeError, NotLeader

    assert apiserver_trouble(KubeError(503, "unavailable")) == "server"
    assert apiserver_trouble(KubeError(500, "etcd")) == "server"
    assert apiserver_trouble(KubeError(429, "slow down")) == "throttled"
    assert apiserver_trouble(KubeError(0, "no response")) == "connection"
    assert apiserver_trouble(TimeoutError()) == "timeout"
    assert apiserver_trouble(aiohttp.ServerDisconnectedError()) == "connection"
    assert apiserver_trouble(ConnectionRefusedError()) == "connection"
    assert apiserver_trouble(KubeError(422, "invalid")) is None
    assert apiserver_trouble(KubeError(403, "forbidden")) is None
    assert apiserver_trouble(NotLeader()) is None
    assert apiserver_trouble(KeyError("bug")) is None


async def test_an_outage_is_logged_once_counted_and_retried_with_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from rotor.kube.gateway import KubeError
    from rotor.observability.metrics import REGISTRY

    controller = make()
    calls = {"n": 0}

    async def sync(current: dict[str, Any]) -> Any:
        calls["n"] += 1
        raise KubeError(503, "the server is currently unable to handle the request")

    controller.sync.sync = sync  # type: ignore[method-assign]

    def errors() -> float:
        return REGISTRY.get_sample_value("rotor_apiserver_errors_total", {"kind": "server"}) or 0.0

    before = errors()
    delays = []
    for name in ("a", "b", "c"):
        fresh = ms(name)
        fresh["status"]["observedGeneration"] = 0
        controller.observe(fresh, None)
    worker = asyncio.create_task(controller._worker(0))
    with caplog.at_level("DEBUG", logger="rotor.controller"):
        for _ in range(100):
            if calls["n"] >= 3:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.01)
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)
    assert calls["n"] == 3
    assert errors() - before == 3
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "unavailable" in warnings[0].getMessage()
    assert not [r for r in caplog.records if r.exc_info], "an outage is no traceback"
    now = controller.clock.timestamp()
    for name in ("a", "b", "c"):
        due = controller.queue.due_at(("ns", name))
        assert due is not None
        delays.append(due - now)
    assert all(0.9 <= d <= 2.1 for d in delays), delays  # first failure: 1-2 s (base 2 s)
    assert len(set(delays)) == 3, "jittered per object"
    # the same key failing again waits longer
    assert controller._after_failure(("ns", "a"), KubeError(503, "x")) - now > 1.9  # type: ignore[operator]


async def test_an_unexpected_error_keeps_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    controller = make()

    async def sync(current: dict[str, Any]) -> Any:
        raise KeyError("a bug")

    controller.sync.sync = sync  # type: ignore[method-assign]
    fresh = ms("a")
    fresh["status"]["observedGeneration"] = 0
    controller.observe(fresh, None)
    worker = asyncio.create_task(controller._worker(0))
    with caplog.at_level("ERROR", logger="rotor.controller"):
        for _ in range(100):
            if caplog.records:
                break
            await asyncio.sleep(0.01)
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)
    assert caplog.records and caplog.records[0].exc_info


def test_the_retry_spread_of_failing_objects_is_the_same_in_every_process() -> None:
    import os
    import subprocess
    import sys

    code = (
        "from rotor.controller.core import stable_fraction;"
        "print([round(stable_fraction(f'ns/o{i}'), 9) for i in range(5)])"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(runs) == 1


def test_namespaced_kinds_follow_the_patterns_and_cluster_kinds_are_watched_cluster_wide() -> None:
    controller = Controller(
        SimpleNamespace(),  # type: ignore[arg-type]
        Clock(),
        Settings(namespaces=["team-*,!team-legacy"]),
    )
    by_kind = {i.kind: i for i in controller.informers}
    assert set(by_kind) == {
        "Secret",
        "ManagedSecret",
        "SecretStore",
        "ClusterSecretStore",
        "RotationPolicy",
        "ClusterRotationPolicy",
        "ConfigMap",
        "PushSecret",
        "ClusterManagedSecret",
        "Namespace",  # what ClusterManagedSecrets select (filtered by the patterns in the fan-out)
    }
    for kind in ("Secret", "ManagedSecret", "SecretStore", "RotationPolicy", "ConfigMap", "PushSecret"):
        informer = by_kind[kind]
        assert informer.accepts("team-a") and not informer.accepts("team-legacy"), kind
        assert not informer.accepts("other"), kind
    for kind in ("ClusterSecretStore", "ClusterRotationPolicy"):
        assert by_kind[kind].patterns == [] and by_kind[kind].accepts(""), kind


def test_a_standby_reports_no_per_object_series() -> None:
    elector = Elector()
    controller = make(elector=elector)  # type: ignore[arg-type]
    controller.observe(ms("a"), None)
    assert list(controller.samples()) == []
    controller.set_leading(True)
    assert [(s.namespace, s.name) for s in controller.samples()] == [("ns", "a")]


def test_the_secrets_the_services_write_are_recognised_when_they_echo() -> None:
    controller = make()
    controller.observe(ms("a"), None)
    controller.queue.clear()
    secret = {"metadata": {"namespace": "ns", "name": "a", "resourceVersion": "7", "labels": {}}}
    secret["metadata"]["labels"]["rotor.dev/managed-by"] = "a"
    controller.index.wrote_secret(secret)
    controller.observe_secret(copy.deepcopy(secret), "MODIFIED")  # our own write echoing back
    assert controller.queue.depth == 0
    changed = copy.deepcopy(secret)
    changed["metadata"]["resourceVersion"] = "8"  # someone else changed it
    controller.observe_secret(changed, "MODIFIED")
    assert controller.queue.depth == 1
    controller.index.released_secret("ns", "a")
    assert controller.index.secret("ns", "a") is None


def test_a_restart_keeps_a_missed_refresh_on_its_own_slot() -> None:
    """After a restart, an object whose recorded nextRefreshTime has passed (unchanged refreshes
    do not rewrite it) refreshes on that slot's phase, one or more intervals on: once per
    interval, as the sync itself schedules it, not on a second slot of another seed first."""
    now = 1_000_000.0
    controller = Controller(
        SimpleNamespace(),
        SimpleNamespace(timestamp=lambda: now, now=lambda: dt.datetime.fromtimestamp(now, dt.UTC)),
        Settings(),
    )  # type: ignore[arg-type]
    recorded = now - 250  # 2 intervals and 10 s ago, at a 120 s interval
    stale = {
        "metadata": {"namespace": "ns", "name": "a", "resourceVersion": "3", "generation": 1},
        "spec": {"storeRef": {"name": "s"}, "refresh": {"interval": "120s"}},
        "status": {
            "observedGeneration": 1,
            "nextRefreshTime": dt.datetime.fromtimestamp(recorded, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "conditions": [{"type": "Ready", "status": "True", "reason": "Synced"}],
        },
    }
    urgent, when = controller._triage(stale, None)
    # 110 s from now, on the same phase, plus the second the status rounds the slot down by
    assert not urgent and when == recorded + 3 * 120 + 1
    # a slot still ahead is kept as recorded (and its second)
    stale["status"]["nextRefreshTime"] = dt.datetime.fromtimestamp(now + 30, dt.UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    assert controller._triage(stale, None) == (False, now + 30 + 1)
