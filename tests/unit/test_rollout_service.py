"""RolloutService against an in-memory gateway: debounce, the per-namespace limit, reporting."""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from rotor.api.managedsecret import ManagedSecretSpec
from rotor.clock import Clock
from rotor.kube.gateway import KubeError
from rotor.observability.metrics import ROLLOUT_NOTIFICATIONS, ROLLOUT_RESTARTS, ROLLOUT_WAITING
from rotor.rollout.decisions import RESTARTED_AT, digest_annotation
from rotor.services.rollout import RolloutService
from rotor.sync.plan import Desired
from support.memindex import MemoryIndex

pytestmark = pytest.mark.asyncio(loop_scope="function")

NS, SECRET = "team-a", "app-db"
KEY = b"operator-hash-key"


def merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict):
            merge(target.setdefault(k, {}), v)
        else:
            target[k] = v


@dataclass
class FakeGateway:
    workloads: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    patches: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    fail_patch: set[str] = field(default_factory=set)
    regarding: list[str] = field(default_factory=list)  # Kind/name of each Event's object

    def add(
        self,
        kind: str,
        name: str,
        pod: dict[str, Any],
        *,
        created: str = "2024-01-01T00:00:00Z",
        annotations: dict[str, str] | None = None,
        namespace: str = NS,
    ) -> None:
        self.workloads[(kind, name)] = {
            "kind": kind,
            "metadata": {
                "name": name,
                "namespace": namespace,
                "generation": 1,
                "creationTimestamp": created,
                "annotations": dict(annotations or {}),
            },
            "spec": {"replicas": 1, "template": {"metadata": {}, "spec": pod}},
            "status": {
                "observedGeneration": 1,
                "replicas": 1,
                "updatedReplicas": 1,
                "availableReplicas": 1,
                "readyReplicas": 1,
                "desiredNumberScheduled": 1,
                "updatedNumberScheduled": 1,
                "numberAvailable": 1,
            },
        }

    async def list_workloads(self, namespace: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(w) for w in self.workloads.values() if w["metadata"]["namespace"] == namespace]

    async def get_workload(self, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
        w = self.workloads.get((kind, name))
        return copy.deepcopy(w) if w else None

    async def patch_workload(self, namespace: str, kind: str, name: str, patch: dict[str, Any]) -> None:
        if name in self.fail_patch:
            raise KubeError(403, "Forbidden")
        w = self.workloads[(kind, name)]
        before = copy.deepcopy(w["spec"])
        merge(w, copy.deepcopy(patch))
        if w["spec"] != before:
            w["metadata"]["generation"] += 1
        self.patches.append((kind, name, patch))

    async def patch_status(self, kind: str, name: str, namespace: str | None, status: dict[str, Any]) -> None:
        self.statuses.append(status)

    async def post_event(self, regarding: Any, *, type_: str, reason: str, note: str, action: str) -> None:
        self.events.append((type_, reason, note))
        self.regarding.append(f"{regarding['kind']}/{regarding['metadata']['name']}")

    # emulating the deployment controller
    def in_progress(self) -> list[str]:
        return [
            n
            for (_, n), w in self.workloads.items()
            if w["status"]["observedGeneration"] < w["metadata"]["generation"]
        ]

    def finish(self, name: str) -> None:
        w = next(w for (_, n), w in self.workloads.items() if n == name)
        w["status"]["observedGeneration"] = w["metadata"]["generation"]

    def restarts(self, name: str) -> int:
        return sum(1 for _, n, p in self.patches if n == name and "spec" in p)


def env(key: str) -> dict[str, Any]:
    return {
        "containers": [
            {"name": "c", "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": SECRET, "key": key}}}]}
        ]
    }


ENV_FROM = {"containers": [{"name": "c", "envFrom": [{"secretRef": {"name": SECRET}}]}]}
OTHER = {"containers": [{"name": "c", "envFrom": [{"secretRef": {"name": "other"}}]}]}
BODY = {
    "apiVersion": "rotor.dev/v1alpha1",
    "kind": "ManagedSecret",
    "metadata": {"name": "db", "namespace": NS, "uid": "u1"},
}
UPDATED = {
    "metadata": {
        "creationTimestamp": "2024-01-01T00:00:00Z",
        "managedFields": [
            {"manager": "rotor", "time": "2024-01-01T00:00:00Z"},
            {"manager": "rotor", "time": "2024-02-01T00:00:00Z"},
        ],
    }
}


def spec(strategy: str = "Auto", targets: list[dict[str, str]] | None = None) -> ManagedSecretSpec:
    rollout: dict[str, Any] = {"strategy": strategy}
    if targets:
        rollout["targets"] = targets
    return ManagedSecretSpec.model_validate(
        {
            "storeRef": {"name": "aws"},
            "data": [{"secretKey": "password", "remoteRef": {"key": "x"}}],
            "rollout": rollout,
        }
    )


def desired(data: dict[str, bytes]) -> Desired:
    return Desired(
        namespace=NS,
        name=SECRET,
        type="Opaque",
        data=data,
        data_hash="h",
        labels={},
        annotations={},
        creation_policy="Owner",
        owner=None,
        managed_by="db",
    )


def service(
    gateway: FakeGateway,
    *,
    limit: int = 2,
    debounce: float = 0.0,
    limit_cluster: int = 0,
    min_interval: float = 0.0,
    clock: Clock | None = None,
) -> RolloutService:
    index = MemoryIndex()
    index.secrets[(NS, SECRET)] = UPDATED
    return RolloutService(
        gateway,  # type: ignore[arg-type]
        clock or Clock(),
        index,
        hash_key=KEY,
        restart_limit=limit,
        restart_limit_cluster=limit_cluster,
        restart_min_interval=min_interval,
        interval_recheck=0.01,
        restart_debounce=debounce,
        restart_timeout=30.0,
        poll_interval=0.01,
        poll_max=0.02,
    )


async def eventually(probe: Callable[[], Any], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def idle(svc: RolloutService) -> None:
    await eventually(lambda: not svc._tasks, "the service to be idle")


async def settle(svc: RolloutService, gateway: FakeGateway) -> None:
    """Emulate controllers finishing every rollout until the service is idle."""

    async def step() -> None:
        for name in gateway.in_progress():
            gateway.finish(name)

    deadline = time.monotonic() + 5
    while svc._tasks:
        assert time.monotonic() < deadline
        await step()
        await asyncio.sleep(0.01)


async def recorded(gateway: FakeGateway, svc: RolloutService, first: dict[str, bytes]) -> None:
    await svc.after_write(BODY, spec(), desired(first))
    await settle(svc, gateway)


async def test_strategy_none_does_nothing() -> None:
    gateway = FakeGateway()
    gateway.add("Deployment", "api", ENV_FROM)
    svc = service(gateway)
    await svc.after_write(BODY, spec("None"), desired({"password": b"p"}))
    await idle(svc)
    assert gateway.patches == [] and gateway.events == []


async def test_only_workloads_whose_keys_changed_restart() -> None:
    gateway = FakeGateway()
    gateway.add("Deployment", "pw", env("password"))
    gateway.add("Deployment", "user", env("username"))
    gateway.add("StatefulSet", "all", ENV_FROM)
    gateway.add("DaemonSet", "other", OTHER)
    svc = service(gateway)
    first = {"username": b"app", "password": b"one-password"}
    await recorded(gateway, svc, first)  # never recorded, running since before the write: restart
    assert {n for _, n, p in gateway.patches if "spec" in p} == {"pw", "user", "all"}
    gateway.patches.clear()
    gateway.events.clear()
    await svc.after_write(BODY, spec(), desired({**first, "password": b"two-password"}))
    await settle(svc, gateway)
    assert sorted(n for _, n, p in gateway.patches) == ["all", "pw"]
    assert all(
        RESTARTED_AT in p["spec"]["template"]["metadata"]["annotations"] for _, _, p in gateway.patches
    )
    assert gateway.statuses[-1]["rollout"]["restarted"] == ["Deployment/pw", "StatefulSet/all"]
    assert gateway.events == [
        (
            "Normal",
            "RolloutRestarted",
            "Restarted Deployment/pw, StatefulSet/all: the keys they read of Secret app-db changed",
        )
    ]
    assert (
        digest_annotation(SECRET) not in gateway.workloads[("DaemonSet", "other")]["metadata"]["annotations"]
    )


async def test_a_secret_just_created_is_recorded_without_restarts() -> None:
    gateway = FakeGateway()
    gateway.add("Deployment", "api", ENV_FROM)
    svc = service(gateway)
    svc.index.secrets[(NS, SECRET)] = {
        "metadata": {
            "creationTimestamp": "2024-02-01T00:00:00Z",
            "managedFields": [{"time": "2024-02-01T00:00:00Z"}],
        }
    }
    await svc.after_write(BODY, spec(), desired({"password": b"p"}))
    await idle(svc)
    assert gateway.restarts("api") == 0
    assert gateway.workloads[("Deployment", "api")]["metadata"]["annotations"][digest_annotation(SECRET)]
    assert gateway.statuses == [] and gateway.events == []


async def test_a_burst_of_writes_restarts_each_consumer_once_for_the_last_data() -> None:
    gateway = FakeGateway()
    gateway.add("Deployment", "api", ENV_FROM)
    svc = service(gateway, debounce=0.2)
    for i in range(5):
        await svc.after_write(BODY, spec(), desired({"password": f"value-{i}".encode()}))
    await settle(svc, gateway)
    assert gateway.restarts("api") == 1
    last = service(FakeGateway())._digest({"password": b"value-4"}, _all("api"))
    assert (
        gateway.workloads[("Deployment", "api")]["metadata"]["annotations"][digest_annotation(SECRET)] == last
    )


def _all(name: str) -> Any:
    from rotor.rollout.discovery import Consumer

    return Consumer("Deployment", name, None)


async def test_at_most_limit_restarts_in_progress_per_namespace() -> None:
    gateway = FakeGateway()
    for name in ("a", "b", "c"):
        gateway.add("Deployment", name, ENV_FROM)
    svc = service(gateway, limit=1)
    await svc.after_write(BODY, spec(), desired({"password": b"p"}))
    seen_max = 0
    order: list[str] = []
    deadline = time.monotonic() + 5
    while len(order) < 3:
        assert time.monotonic() < deadline, f"restarts so far: {order}"
        progress = gateway.in_progress()
        seen_max = max(seen_max, len(progress))
        if progress:
            await asyncio.sleep(0.05)  # give the service a chance to (wrongly) start another
            progress = gateway.in_progress()
            seen_max = max(seen_max, len(progress))
            order.extend(progress)
            for name in progress:
                gateway.finish(name)
        await asyncio.sleep(0.01)
    await idle(svc)
    assert seen_max == 1
    assert order == ["a", "b", "c"]


async def test_patch_errors_are_reported_and_counted() -> None:
    gateway = FakeGateway(fail_patch={"api"})
    gateway.add("Deployment", "api", ENV_FROM)
    gateway.add("Deployment", "web", ENV_FROM)
    svc = service(gateway)
    before = ROLLOUT_RESTARTS.labels("Deployment", "error")._value.get()
    await svc.after_write(BODY, spec(), desired({"password": b"p"}))
    await settle(svc, gateway)
    assert ROLLOUT_RESTARTS.labels("Deployment", "error")._value.get() == before + 1
    reasons = [(t, r) for t, r, _ in gateway.events]
    assert ("Normal", "RolloutRestarted") in reasons and ("Warning", "RolloutFailed") in reasons
    failed = next(n for _, r, n in gateway.events if r == "RolloutFailed")
    assert "Deployment/api" in failed and "403" in failed
    assert gateway.statuses[-1]["rollout"]["restarted"] == ["Deployment/web"]


async def test_explicit_restarts_the_listed_targets_and_names_missing_ones() -> None:
    gateway = FakeGateway()
    gateway.add("Deployment", "api", OTHER)  # reads the Secret in a way the template does not show
    gateway.add("Deployment", "web", ENV_FROM)
    svc = service(gateway)
    targets = [{"kind": "Deployment", "name": "api"}, {"kind": "StatefulSet", "name": "gone"}]
    await svc.after_write(BODY, spec("Explicit", targets), desired({"password": b"p"}))
    await settle(svc, gateway)
    assert gateway.restarts("api") == 1 and gateway.restarts("web") == 0
    failed = next(n for _, r, n in gateway.events if r == "RolloutFailed")
    assert "StatefulSet/gone: not found" in failed


async def test_a_queued_restart_merges_later_writes_of_other_secrets() -> None:
    gateway = FakeGateway()
    both = {
        "containers": [
            {"name": "c", "envFrom": [{"secretRef": {"name": SECRET}}, {"secretRef": {"name": "tls"}}]}
        ]
    }
    gateway.add("Deployment", "first", ENV_FROM)
    gateway.add("Deployment", "later", both)
    svc = service(gateway, limit=1)
    svc.index.secrets[(NS, "tls")] = UPDATED
    await svc.after_write(BODY, spec(), desired({"password": b"p"}))
    await eventually(lambda: gateway.in_progress() == ["first"], "first restarting")
    tls = Desired(**{**desired({"tls.crt": b"c"}).__dict__, "name": "tls"})
    await svc.after_write(BODY, spec(), tls)
    job = svc._jobs[(NS, "Deployment", "later")]  # queued behind "first"
    await eventually(lambda: set(job.digests) == {SECRET, "tls"}, "the tls write to join the queued restart")
    await settle(svc, gateway)
    assert gateway.restarts("later") == 1
    annotations = gateway.workloads[("Deployment", "later")]["metadata"]["annotations"]
    assert digest_annotation(SECRET) in annotations and digest_annotation("tls") in annotations


async def test_after_write_never_raises() -> None:
    class Broken(FakeGateway):
        async def list_workloads(self, namespace: str) -> list[dict[str, Any]]:
            raise RuntimeError("boom")

    gateway = Broken()
    svc = service(gateway)
    await svc.after_write(BODY, spec(), desired({"password": b"p"}))
    await svc.after_write({"metadata": {}}, None, None)  # type: ignore[arg-type]
    await idle(svc)


# ---------------------------------------------------------------------------------------------- budgets
class FakeClock(Clock):
    def __init__(self, now: dt.datetime) -> None:
        super().__init__()
        self.at = now

    def now(self) -> dt.datetime:
        return self.at

    def timestamp(self) -> float:
        return self.at.timestamp()


def desired_in(namespace: str, data: dict[str, bytes]) -> Desired:
    return Desired(**{**desired(data).__dict__, "namespace": namespace})


def body_in(namespace: str) -> dict[str, Any]:
    return {**BODY, "metadata": {**BODY["metadata"], "namespace": namespace}}


def waiting(reason: str) -> float:
    return float(ROLLOUT_WAITING.labels(reason)._value.get())


async def test_at_most_the_cluster_limit_in_progress_across_namespaces() -> None:
    gateway = FakeGateway()
    namespaces = [f"team-{i}" for i in range(4)]
    for ns in namespaces:
        for j in range(3):
            gateway.add("Deployment", f"{ns}-app-{j}", ENV_FROM, namespace=ns)
    svc = service(gateway, limit=2, limit_cluster=3)
    for ns in namespaces:
        svc.index.secrets[(ns, SECRET)] = UPDATED  # type: ignore[attr-defined]
        await svc.after_write(body_in(ns), spec(), desired_in(ns, {"password": b"p"}))
    seen_max, seen_namespace_max, done = 0, 0, 0
    deadline = time.monotonic() + 10
    while done < 12:
        assert time.monotonic() < deadline, f"{done} restarts finished"
        progress = gateway.in_progress()
        if progress:
            await asyncio.sleep(0.05)  # give the service a chance to (wrongly) start another
            progress = gateway.in_progress()
            per_ns = [sum(1 for n in progress if n.startswith(f"{ns}-")) for ns in namespaces]
            seen_max = max(seen_max, len(progress))
            seen_namespace_max = max(seen_namespace_max, *per_ns)
            if done + len(progress) < 12:
                assert waiting("limit") == 12 - done - len(progress)  # the rest wait for a slot
            for name in progress:
                gateway.finish(name)
            done += len(progress)
        await asyncio.sleep(0.01)
    await idle(svc)
    assert seen_max == 3 and seen_namespace_max <= 2
    assert all(gateway.restarts(n) == 1 for _, n in gateway.workloads)
    assert waiting("limit") == 0


async def test_changes_within_the_min_interval_coalesce_into_one_restart_at_its_end() -> None:
    clock = FakeClock(dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC))
    gateway = FakeGateway()
    gateway.add("Deployment", "api", ENV_FROM)
    svc = service(gateway, min_interval=30.0, clock=clock)
    await svc.after_write(BODY, spec(), desired({"password": b"v0"}))
    await settle(svc, gateway)
    assert gateway.restarts("api") == 1  # never restarted before: at once
    for i in range(1, 6):  # a write every 5 s within the interval
        clock.at += dt.timedelta(seconds=5)
        await svc.after_write(BODY, spec(), desired({"password": f"v{i}".encode()}))
        await eventually(lambda: (NS, "Deployment", "api") in svc._jobs, "the restart to wait")
    await eventually(lambda: waiting("interval") == 1, "the restart to wait for the interval")
    await asyncio.sleep(0.1)  # the service keeps re-checking its interval meanwhile
    assert gateway.restarts("api") == 1
    clock.at = dt.datetime(2024, 5, 1, 10, 0, 30, tzinfo=dt.UTC)  # the interval's end
    await settle(svc, gateway)
    assert gateway.restarts("api") == 2
    latest = svc._digest({"password": b"v5"}, _all("api"))
    api = gateway.workloads[("Deployment", "api")]
    assert api["metadata"]["annotations"][digest_annotation(SECRET)] == latest
    assert api["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT] == "2024-05-01T10:00:30.000Z"
    assert waiting("interval") == 0
    # one report per restart, not one per write that joined it
    assert [r for _, r, _ in gateway.events].count("RolloutRestarted") == 2


async def test_the_min_interval_counts_from_the_restart_recorded_on_the_workload() -> None:
    """A restarted operator knows nothing in memory: the last restart is on the workload."""
    clock = FakeClock(dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC))
    gateway = FakeGateway()
    gateway.add("Deployment", "api", ENV_FROM)
    gateway.workloads[("Deployment", "api")]["spec"]["template"]["metadata"] = {
        "annotations": {RESTARTED_AT: "2024-05-01T09:59:50.000Z"}  # by the previous process
    }
    svc = service(gateway, min_interval=600.0, clock=clock)
    await svc.after_write(BODY, spec(), desired({"password": b"new"}))
    await eventually(lambda: waiting("interval") == 1, "the restart to wait for the interval")
    clock.at += dt.timedelta(seconds=589)
    await asyncio.sleep(0.1)
    assert gateway.restarts("api") == 0
    clock.at += dt.timedelta(seconds=1)
    await settle(svc, gateway)
    assert gateway.restarts("api") == 1


async def test_data_back_to_what_the_workload_reads_cancels_the_waiting_restart() -> None:
    clock = FakeClock(dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC))
    gateway = FakeGateway()
    gateway.add("Deployment", "api", ENV_FROM)
    svc = service(gateway, min_interval=30.0, clock=clock)
    await svc.after_write(BODY, spec(), desired({"password": b"a"}))
    await settle(svc, gateway)
    clock.at += dt.timedelta(seconds=5)
    await svc.after_write(BODY, spec(), desired({"password": b"b"}))
    await eventually(lambda: waiting("interval") == 1, "the restart to wait")
    await svc.after_write(BODY, spec(), desired({"password": b"a"}))  # flapped back
    await eventually(lambda: not svc._timers, "the second rollout to be decided")
    clock.at += dt.timedelta(seconds=30)
    await settle(svc, gateway)
    assert gateway.restarts("api") == 1
    api = gateway.workloads[("Deployment", "api")]
    assert api["metadata"]["annotations"][digest_annotation(SECRET)] == svc._digest(
        {"password": b"a"}, _all("api")
    )


async def test_notify_posts_events_and_counts_without_restarting() -> None:
    gateway = FakeGateway()
    gateway.add("Deployment", "pw", env("password"))
    gateway.add("StatefulSet", "user", env("username"))
    svc = service(gateway)
    before = ROLLOUT_NOTIFICATIONS.labels("Deployment")._value.get()
    await svc.after_write(BODY, spec("Notify"), desired({"username": b"app", "password": b"one"}))
    await idle(svc)
    gateway.events.clear()
    gateway.regarding.clear()
    await svc.after_write(BODY, spec("Notify"), desired({"username": b"app", "password": b"two"}))
    await idle(svc)
    assert gateway.restarts("pw") == 0 and gateway.restarts("user") == 0
    assert gateway.regarding == ["Deployment/pw", "ManagedSecret/db"]
    reasons = [r for _, r, _ in gateway.events]
    assert reasons == ["SecretChanged", "RolloutNotified"]
    assert "two" not in " ".join(n for _, _, n in gateway.events)
    assert ROLLOUT_NOTIFICATIONS.labels("Deployment")._value.get() == before + 2
    pw = gateway.workloads[("Deployment", "pw")]
    assert pw["metadata"]["annotations"][digest_annotation(SECRET)] == svc._digest(
        {"password": b"two"}, _keys("pw", "password")
    )
    assert gateway.statuses == []  # status.rollout is about restarts


def _keys(name: str, *keys: str) -> Any:
    from rotor.rollout.discovery import Consumer

    return Consumer("Deployment", name, frozenset(keys))


async def test_a_restart_lost_with_the_operator_happens_when_the_next_one_starts() -> None:
    """A restart waiting for its interval lives in memory. The next process, on first sight of
    the ManagedSecret, rolls out the data its Secret holds (from the index, no sync needed): the
    workload still recording older data restarts (when its interval allows); those already
    reading the current data, and those Rotor never recorded, stay as they are."""
    clock = FakeClock(dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC))
    gateway = FakeGateway()
    gateway.add("Deployment", "api", ENV_FROM)
    gateway.add("Deployment", "web", ENV_FROM)
    gateway.add("Deployment", "untracked", ENV_FROM)
    old = service(gateway, min_interval=30.0, clock=clock)
    await old.after_write(BODY, spec(), desired({"password": b"a"}))
    await settle(old, gateway)
    clock.at += dt.timedelta(seconds=5)
    await old.after_write(BODY, spec(), desired({"password": b"b"}))
    await eventually(lambda: waiting("interval") == 3, "the three to wait for their interval")
    await old.stop()  # the operator stops; the Secret holds b
    assert waiting("interval") == 0
    gateway.workloads[("Deployment", "untracked")]["metadata"]["annotations"].clear()
    gateway.workloads[("Deployment", "web")]["metadata"]["annotations"][digest_annotation(SECRET)] = (
        old._digest({"password": b"b"}, _all("web"))  # web read b already (restarted by hand)
    )
    assert gateway.restarts("api") == 1

    new = service(gateway, min_interval=30.0, clock=clock)
    new.index.secrets[(NS, SECRET)] = {**UPDATED, "data": {"password": base64.b64encode(b"b").decode()}}  # type: ignore[attr-defined]
    body = {
        **BODY,
        "spec": {
            "target": {"name": SECRET},
            "storeRef": {"name": "aws"},
            "data": [{"secretKey": "password", "remoteRef": {"key": "x"}}],
            "rollout": {"strategy": "Auto"},
        },
    }
    new.resume(body)
    await eventually(lambda: waiting("interval") == 1, "api to wait for the rest of its interval")
    clock.at += dt.timedelta(seconds=25)
    await settle(new, gateway)
    assert (gateway.restarts("api"), gateway.restarts("web"), gateway.restarts("untracked")) == (2, 1, 1)
    api = gateway.workloads[("Deployment", "api")]
    assert api["metadata"]["annotations"][digest_annotation(SECRET)] == new._digest(
        {"password": b"b"}, _all("api")
    )
    # a ManagedSecret without a rollout, or whose Secret is not written yet, costs nothing
    patches = len(gateway.patches)
    new.resume({**body, "spec": {**body["spec"], "rollout": {"strategy": "None"}}})
    new.index.secrets.clear()  # type: ignore[attr-defined]
    new.resume(body)
    await idle(new)
    assert len(gateway.patches) == patches


async def test_a_change_while_a_restart_is_being_patched_waits_for_the_interval() -> None:
    """The restart has started (it no longer takes merges) and its patch has not landed yet when
    the next change comes: that one must not read the old restart time and restart at once."""
    clock = FakeClock(dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC))

    class SlowPatch(FakeGateway):
        gate: asyncio.Event | None = None

        async def patch_workload(self, namespace: str, kind: str, name: str, patch: dict[str, Any]) -> None:
            if self.gate is not None and "spec" in patch:
                await self.gate.wait()
            await super().patch_workload(namespace, kind, name, patch)

    gateway = SlowPatch()
    gateway.add("Deployment", "api", ENV_FROM)
    gateway.workloads[("Deployment", "api")]["spec"]["template"]["metadata"] = {
        "annotations": {RESTARTED_AT: "2024-05-01T09:00:00.000Z"}  # long ago
    }
    svc = service(gateway, limit=5, min_interval=30.0, clock=clock)
    gateway.gate = asyncio.Event()
    await svc.after_write(BODY, spec(), desired({"password": b"a"}))
    await eventually(lambda: svc._restarted, "the first restart to start its patch")
    await svc.after_write(BODY, spec(), desired({"password": b"b"}))
    await eventually(lambda: waiting("interval") == 1, "the second change to wait for the interval")
    gateway.gate.set()
    await eventually(lambda: gateway.restarts("api") == 1, "the first restart")
    clock.at += dt.timedelta(seconds=10)
    await asyncio.sleep(0.1)
    assert gateway.restarts("api") == 1
    clock.at += dt.timedelta(seconds=20)
    await settle(svc, gateway)
    assert gateway.restarts("api") == 2
    stamps = [
        p["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]
        for _, _, p in gateway.patches
        if "spec" in p
    ]
    assert stamps == ["2024-05-01T10:00:00.000Z", "2024-05-01T10:00:30.000Z"]
