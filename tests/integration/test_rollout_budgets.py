"""Restart budgets (DESIGN §11): --restart-limit-cluster, --restart-min-interval, strategy Notify.

Here Deployments really roll out: a second kube-controller-manager runs the deployment and
replicaset controllers for this module (``support.workloads``), and a stand-in kubelet marks each
new pod Ready 1.5 s after it is created. What the tests assert is recorded from the apiserver by a
watch on the Deployments: every state a Deployment passed through, not samples of it.

Each test runs its own operator on its own ``iso-budget-*`` namespaces (the session operator
ignores ``iso-*``), with its own flags and metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import itertools
import json
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import pytest_asyncio
from kubernetes_asyncio import watch

from rotor.values.hashing import consumer_digest
from support.cluster import Cluster, wait_for
from support.environment import TestEnvironment
from support.leaks import LeakRegistry
from support.operator import OperatorProcess
from support.workloads import DeploymentControllers, kubelet

pytestmark = pytest.mark.asyncio(loop_scope="session")

RESTARTED_AT = "rotor.dev/restarted-at"
SECRET = "app-db"
DIGEST = f"rotor.dev/secret-digest.{SECRET}"
HASH_KEY = b"integration-test-hash-key"  # support.operator's ROTOR_HASH_KEY


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def deployment_controllers(env: TestEnvironment) -> Iterator[None]:
    if env.external:
        pytest.skip("needs the local control plane: nodes of a real cluster would run the pods themselves")
    controllers = DeploymentControllers(env.kubeconfig, env.workdir / "logs")
    controllers.start()
    try:
        yield
    finally:
        controllers.stop()


class Run:
    """A test's namespaces (``<id>-<n>``; its operator serves ``<id>-*``) and the label of its pods."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.id = f"iso-budget-{secrets.token_hex(3)}"
        self.made: list[str] = []

    async def namespace(self, n: int) -> str:
        name = f"{self.id}-{n}"
        await self.cluster.create_namespace(name)
        self.made.append(name)
        return name


@pytest_asyncio.fixture(loop_scope="session")
async def run(cluster: Cluster) -> AsyncIterator[Run]:
    r = Run(cluster)
    yield r
    for ns in r.made:
        await cluster.delete_namespace(ns)


@contextlib.asynccontextmanager
async def budget_operator(env: TestEnvironment, pattern: str, *args: str) -> AsyncIterator[OperatorProcess]:
    op = OperatorProcess(
        str(env.kubeconfig),
        env.workdir / "logs",
        name=f"rollout-budgets-{pattern.rstrip('*-')}",  # rollout-*: the leak scan reads its log
        namespaces=[pattern],
        extra_args=["--restart-debounce", "1s", *args],
        env=env.aws_env(),
    )
    await asyncio.to_thread(op.start)
    try:
        yield op
    finally:
        await asyncio.to_thread(op.stop)


# ---------------------------------------------------------------------------------------------- objects
def deployment(name: str, run: str, container: dict[str, Any]) -> dict[str, Any]:
    labels = {"app": name, "rotor-test": run}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"rotor-test": run}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [{"name": "app", "image": "registry.invalid/app:1", **container}],
                    "terminationGracePeriodSeconds": 0,
                },
            },
        },
    }


ENV_FROM = {"envFrom": [{"secretRef": {"name": SECRET}}]}
ENV_PASSWORD = {"env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": SECRET, "key": "password"}}}]}


def managed_secret(key: str, strategy: str = "Auto") -> dict[str, Any]:
    return {
        "apiVersion": "rotor.dev/v1alpha1",
        "kind": "ManagedSecret",
        "metadata": {"name": SECRET},
        "spec": {
            "storeRef": {"name": "aws"},
            "dataFrom": [{"extract": {"key": key}}],
            "rollout": {"strategy": strategy},
        },
    }


def template_annotation(obj: dict[str, Any]) -> str | None:
    return ((obj["spec"]["template"].get("metadata") or {}).get("annotations") or {}).get(RESTARTED_AT)


def digest_of(obj: dict[str, Any]) -> str | None:
    return (obj["metadata"].get("annotations") or {}).get(DIGEST)


def rolled_out(obj: dict[str, Any]) -> bool:
    """As ``kubectl rollout status`` judges a Deployment (written here, independently of Rotor)."""
    spec, status = obj["spec"], obj.get("status") or {}
    want = spec.get("replicas", 1)
    return (
        (status.get("observedGeneration") or 0) >= obj["metadata"]["generation"]
        and (status.get("updatedReplicas") or 0) == want
        and (status.get("replicas") or 0) == want
        and (status.get("availableReplicas") or 0) == want
    )


class Recorder:
    """Watches the Deployments labelled ``rotor-test=<run>`` in every namespace and keeps, for each
    event, how many restarted by Rotor had not rolled out yet, and each restart seen."""

    def __init__(self, cluster: Cluster, run: str) -> None:
        self.cluster = cluster
        self.run = run
        self.state: dict[str, dict[str, Any]] = {}
        self.max_in_progress = 0
        self.restarts: dict[str, list[str]] = {}  # ns/name -> the restarted-at values, in order
        self.events = 0

    def in_progress(self) -> list[str]:
        return [ref for ref, o in self.state.items() if template_annotation(o) and not rolled_out(o)]

    def see(self, obj: dict[str, Any]) -> None:
        ref = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
        self.state[ref] = obj
        self.events += 1
        stamp = template_annotation(obj)
        seen = self.restarts.setdefault(ref, [])
        if stamp and (not seen or seen[-1] != stamp):
            seen.append(stamp)
        self.max_in_progress = max(self.max_in_progress, len(self.in_progress()))

    async def run_forever(self) -> None:
        apps, api = self.cluster.apps, self.cluster.api
        listed = await apps.list_deployment_for_all_namespaces(label_selector=f"rotor-test={self.run}")
        for item in listed.items:
            self.see(api.sanitize_for_serialization(item))
        version = listed.metadata.resource_version
        while True:
            async with watch.Watch() as w:
                async for event in w.stream(
                    apps.list_deployment_for_all_namespaces,
                    label_selector=f"rotor-test={self.run}",
                    resource_version=version,
                    allow_watch_bookmarks=True,
                    timeout_seconds=120,
                ):
                    obj = event["object"]
                    if event["type"] == "BOOKMARK":
                        version = obj["metadata"]["resourceVersion"]
                        continue
                    body = api.sanitize_for_serialization(obj)
                    version = body["metadata"]["resourceVersion"]
                    if event["type"] == "DELETED":
                        self.state.pop(f"{body['metadata']['namespace']}/{body['metadata']['name']}", None)
                    else:
                        self.see(body)


@contextlib.asynccontextmanager
async def recording(cluster: Cluster, run: str) -> AsyncIterator[Recorder]:
    recorder = Recorder(cluster, run)
    task = asyncio.create_task(recorder.run_forever())
    try:
        yield recorder
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def set_source(env: TestEnvironment, key: str, value: dict[str, str]) -> None:
    await asyncio.to_thread(
        env.boto("secretsmanager").put_secret_value, SecretId=key, SecretString=json.dumps(value)
    )


async def force_sync(cluster: Cluster, namespace: str, nonce: str) -> None:
    await cluster.patch(
        "ManagedSecret", SECRET, {"metadata": {"annotations": {"rotor.dev/force-sync": nonce}}}, namespace
    )


async def holds(cluster: Cluster, namespace: str, value: dict[str, str]) -> bool:
    data = await cluster.secret_data(namespace, SECRET) or {}
    return data == {k: v.encode() for k, v in value.items()}


async def deployments(cluster: Cluster, run: str) -> list[dict[str, Any]]:
    listed = await cluster.apps.list_deployment_for_all_namespaces(label_selector=f"rotor-test={run}")
    return [cluster.api.sanitize_for_serialization(i) for i in listed.items]


def metric(text: str, name: str, **labels: str) -> float:
    want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def setup(
    env: TestEnvironment,
    cluster: Cluster,
    leaks: LeakRegistry,
    namespaces: list[str],
    per_namespace: list[dict[str, Any]],
    value: dict[str, str],
    run: str,
    strategy: str = "Auto",
) -> str:
    """One source, a store and a ManagedSecret in each namespace, the Deployments; returns the
    source key once every Deployment has rolled out its first pods and has its digest recorded."""
    leaks.add(*value.values())
    key = f"{run}/db"
    await asyncio.to_thread(
        env.boto("secretsmanager").create_secret, Name=key, SecretString=json.dumps(value)
    )
    for ns in namespaces:
        for doc in [*env.aws_store(ns), *per_namespace, managed_secret(key, strategy)]:
            await cluster.apply(doc, ns)
    for ns in namespaces:
        await cluster.ready(SECRET, ns, timeout=60)

    async def settled() -> bool:
        objs = await deployments(cluster, run)
        return len(objs) == len(namespaces) * len(per_namespace) and all(
            rolled_out(o) and digest_of(o) and not template_annotation(o) for o in objs
        )

    # the first write created each Secret: Rotor records what each workload reads, restarts nothing
    await wait_for(settled, timeout=120, interval=0.5, what="every Deployment up, its digest recorded")
    return key


# ---------------------------------------------------------------------------------------------- tests
async def test_at_most_restart_limit_cluster_rollouts_in_progress(
    cluster: Cluster, env: TestEnvironment, leaks: LeakRegistry, deployment_controllers: None, run: Run
) -> None:
    """50 Deployments in 10 namespaces, one change that every one of them reads: with
    --restart-limit-cluster 3, never more than 3 roll out at once (and 3 do), and all restart."""
    namespaces = [await run.namespace(i) for i in range(10)]
    value = {"password": secrets.token_urlsafe(24)}
    async with (
        kubelet(cluster, f"rotor-test={run.id}") as fake_kubelet,
        budget_operator(env, f"{run.id}-*", "--restart-limit", "5", "--restart-limit-cluster", "3") as op,
    ):
        apps = [deployment(f"app-{j}", run.id, ENV_FROM) for j in range(5)]
        key = await setup(env, cluster, leaks, namespaces, apps, value, run.id)
        async with recording(cluster, run.id) as recorder:
            value = {"password": secrets.token_urlsafe(24)}
            leaks.add(value["password"])
            await set_source(env, key, value)
            for ns in namespaces:
                await force_sync(cluster, ns, "1")

            async def all_rolled_out() -> bool:
                objs = recorder.state.values()
                return len(recorder.state) == 50 and all(
                    template_annotation(o) and rolled_out(o) for o in objs
                )

            # each rollout takes a few seconds, 3 at a time
            await wait_for(all_rolled_out, timeout=420, interval=0.5, what="all 50 restarted and rolled out")
            assert recorder.max_in_progress <= 3, f"{recorder.max_in_progress} rollouts in progress at once"
            assert recorder.max_in_progress == 3  # the limit was reached, not merely never tested
            assert all(len(stamps) == 1 for stamps in recorder.restarts.values())  # one restart each
        assert fake_kubelet.readied >= 100  # 50 first pods, 50 after the restarts: real rollouts
        text = await asyncio.to_thread(op.metrics)
        assert metric(text, "rotor_rollout_restarts_total", kind="Deployment", result="success") == 50
        assert metric(text, "rotor_rollout_restarts_waiting", reason="limit") == 0

        async def slots_freed() -> bool:  # Rotor sees the last rollouts finish at its next poll
            return metric(await asyncio.to_thread(op.metrics), "rotor_rollout_restarts_in_progress") == 0

        await wait_for(slots_freed, timeout=30, what="rotor_rollout_restarts_in_progress back to 0")


async def test_a_flapping_source_restarts_each_consumer_at_most_once_per_min_interval(
    cluster: Cluster, env: TestEnvironment, leaks: LeakRegistry, deployment_controllers: None, run: Run
) -> None:
    """The source changes every 5 s for 2 minutes, --restart-min-interval 30s: each consumer
    restarts at most once per 30 s, and once more after the last change, with the final data."""
    ns = await run.namespace(0)
    value = {"username": "app", "password": secrets.token_urlsafe(24)}
    interval = dt.timedelta(seconds=30)
    async with (
        kubelet(cluster, f"rotor-test={run.id}"),
        budget_operator(env, f"{run.id}-*", "--restart-min-interval", "30s") as op,
    ):
        apps = [deployment("env-from", run.id, ENV_FROM), deployment("env-password", run.id, ENV_PASSWORD)]
        key = await setup(env, cluster, leaks, [ns], apps, value, run.id)
        async with recording(cluster, run.id) as recorder:
            loop = asyncio.get_running_loop()
            started = loop.time()
            flaps = 0
            while loop.time() - started < 120:
                tick = loop.time()
                value = {**value, "password": secrets.token_urlsafe(24)}
                leaks.add(value["password"])
                await set_source(env, key, value)
                await force_sync(cluster, ns, f"flap-{flaps}")
                await wait_for(
                    functools.partial(holds, cluster, ns, value), timeout=30, interval=0.1, what="the write"
                )
                flaps += 1
                await asyncio.sleep(max(0.0, 5 - (loop.time() - tick)))
            final = {
                "env-from": consumer_digest({k: v.encode() for k, v in value.items()}, value, key=HASH_KEY),
                "env-password": consumer_digest(
                    {"password": value["password"].encode()}, ["password"], key=HASH_KEY
                ),
            }

            async def final_rolled_out() -> bool:
                objs = {r.split("/", 1)[1]: o for r, o in recorder.state.items()}
                return len(objs) == 2 and all(
                    digest_of(objs[n]) == d and rolled_out(objs[n]) for n, d in final.items()
                )

            # the last restart waits for the end of the interval, then rolls out
            await wait_for(
                final_rolled_out, timeout=90, interval=0.5, what="a last restart with the final data"
            )

        assert flaps >= 20
        for ref, stamps in recorder.restarts.items():
            times = [dt.datetime.fromisoformat(s.replace("Z", "+00:00")) for s in stamps]
            gaps = [b - a for a, b in itertools.pairwise(times)]
            assert all(gap >= interval for gap in gaps), f"{ref} restarted {stamps}"
            # restarted during the flapping (not starved until it ends), at most once per interval
            assert 3 <= len(stamps) <= 120 // 30 + 2, f"{ref} restarted {stamps}"
            obj = recorder.state[ref]
            # one rollout (a new ReplicaSet revision) per restart, and nothing else
            assert obj["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == str(len(stamps) + 1)
        assert "restarted less than 30s ago" in op.log_text()
        text = await asyncio.to_thread(op.metrics)
        restarts = sum(len(s) for s in recorder.restarts.values())
        assert metric(text, "rotor_rollout_restarts_total", kind="Deployment", result="success") == restarts


async def test_a_restart_waiting_for_its_interval_survives_an_operator_kill(
    cluster: Cluster, env: TestEnvironment, leaks: LeakRegistry, deployment_controllers: None, run: Run
) -> None:
    """The second change waits for the interval; the operator is killed meanwhile. The next one
    reads the last restart from the workload, waits for the rest of the interval, and restarts it
    with the data the Secret holds."""
    ns = await run.namespace(0)
    value = {"password": secrets.token_urlsafe(24)}
    async with (
        kubelet(cluster, f"rotor-test={run.id}"),
        budget_operator(env, f"{run.id}-*", "--restart-min-interval", "30s") as op,
    ):
        key = await setup(env, cluster, leaks, [ns], [deployment("api", run.id, ENV_PASSWORD)], value, run.id)
        async with recording(cluster, run.id) as recorder:
            for i in range(2):
                value = {"password": secrets.token_urlsafe(24)}
                leaks.add(value["password"])
                await set_source(env, key, value)
                await force_sync(cluster, ns, f"change-{i}")
                await wait_for(functools.partial(holds, cluster, ns, value), what=f"change {i} written")
                if i == 0:
                    await wait_for(
                        functools.partial(now, lambda: recorder.restarts.get(f"{ns}/api")), what="restart 1"
                    )
            waits = functools.partial(now, lambda: "restarted less than 30s ago" in op.log_text())
            await wait_for(waits, what="the second restart to wait for the interval")
            await asyncio.to_thread(op.kill)
            assert len(recorder.restarts[f"{ns}/api"]) == 1
            await asyncio.to_thread(op.start)
            final = consumer_digest({"password": value["password"].encode()}, ["password"], key=HASH_KEY)

            async def restarted_with_the_final_data() -> bool:
                obj = recorder.state.get(f"{ns}/api") or {}
                return bool(obj) and digest_of(obj) == final and rolled_out(obj)

            await wait_for(restarted_with_the_final_data, timeout=60, what="the restart after the kill")
        stamps = recorder.restarts[f"{ns}/api"]
        assert len(stamps) == 2, stamps
        first, second = (dt.datetime.fromisoformat(s.replace("Z", "+00:00")) for s in stamps)
        assert second - first >= dt.timedelta(seconds=30), stamps


async def test_notify_posts_an_event_on_each_consumer_and_restarts_nothing(
    cluster: Cluster, env: TestEnvironment, leaks: LeakRegistry, run: Run
) -> None:
    ns = await run.namespace(0)
    value = {"username": "app", "password": secrets.token_urlsafe(24)}
    async with budget_operator(env, f"{run.id}-*") as op:
        apps = [deployment("reads-password", run.id, ENV_PASSWORD), deployment("reads-other", run.id, {})]
        leaks.add(*value.values())
        key = f"{run.id}/db"
        await asyncio.to_thread(
            env.boto("secretsmanager").create_secret, Name=key, SecretString=json.dumps(value)
        )
        for doc in [*env.aws_store(ns), *apps, managed_secret(key, "Notify")]:
            await cluster.apply(doc, ns)
        await cluster.ready(SECRET, ns)
        value = {**value, "password": secrets.token_urlsafe(24)}
        leaks.add(value["password"])
        await set_source(env, key, value)
        await force_sync(cluster, ns, "1")

        async def notified() -> list[Any] | None:
            found = [e for e in await events(cluster, ns) if e.reason == "SecretChanged"]
            return found or None

        changed = await wait_for(notified, timeout=30, what="a SecretChanged Event")
        assert {(e.involved_object.kind, e.involved_object.name) for e in changed} == {
            ("Deployment", "reads-password")
        }
        assert value["password"] not in " ".join(e.message or "" for e in changed)
        await wait_for(lambda: _has_reason(cluster, ns, "RolloutNotified"), what="RolloutNotified")
        for obj in await deployments(cluster, run.id):
            assert template_annotation(obj) is None  # nothing restarted: one ReplicaSet revision
            assert (obj["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision") in (
                None,
                "1",
            )
        text = await asyncio.to_thread(op.metrics)
        assert metric(text, "rotor_rollout_notifications_total", kind="Deployment") == 1
        assert metric(text, "rotor_rollout_restarts_total", kind="Deployment", result="success") == 0


async def now(probe: Callable[[], Any]) -> Any:
    """``wait_for`` for a plain (not async) probe."""
    return probe()


async def events(cluster: Cluster, namespace: str) -> list[Any]:
    """Through core/v1: the events.k8s.io client model refuses the kube-controller-manager's
    Events (they have no eventTime)."""
    return list((await cluster.core.list_namespaced_event(namespace)).items)


async def _has_reason(cluster: Cluster, namespace: str, reason: str) -> bool:
    return any(
        e.reason == reason and e.involved_object.name == SECRET for e in await events(cluster, namespace)
    )
