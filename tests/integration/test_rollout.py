"""Rollout of consumers (DESIGN §2): restart exactly the workloads whose data changed, debounced,
at most --restart-limit at once per namespace.

The control plane runs no deployment controller and no nodes: Deployments never get pods, and
nothing updates their status. Rotor's restarts show as the pod-template annotation
``rotor.dev/restarted-at``, and are counted exactly by ``rotor_rollout_restarts_total``. Where a
test needs a rollout to finish, it plays the deployment controller and patches the status.

Each test runs its own operator on its own ``iso-rollout-*`` namespace (the session operator
ignores ``iso-*``), so its flags and its metrics are its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio

from support.cluster import Cluster, wait_for
from support.environment import TestEnvironment
from support.leaks import LeakRegistry
from support.operator import OperatorProcess

pytestmark = pytest.mark.asyncio(loop_scope="session")

RESTARTED_AT = "rotor.dev/restarted-at"
SECRET = "app-db"
DIGEST = f"rotor.dev/secret-digest.{SECRET}"
CONSUMERS = [("Deployment", "env-password"), ("StatefulSet", "env-from"), ("DaemonSet", "projected")]
BYSTANDER = ("Deployment", "bystander")


# ---------------------------------------------------------------------------------------------- fixtures
@pytest_asyncio.fixture(loop_scope="session")
async def iso_namespace(cluster: Cluster) -> AsyncIterator[str]:
    name = f"iso-rollout-{secrets.token_hex(3)}"
    await cluster.create_namespace(name)
    yield name
    await cluster.delete_namespace(name)


@contextlib.asynccontextmanager
async def rollout_operator(
    env: TestEnvironment, namespace: str, *, debounce: str, limit: int
) -> AsyncIterator[OperatorProcess]:
    op = OperatorProcess(
        str(env.kubeconfig),
        env.workdir / "logs",
        name=f"rollout-{namespace}",
        namespaces=[namespace],
        # no minimum interval: these tests restart one workload twice in a row (test_rollout_budgets.py has it)
        extra_args=[
            "--restart-debounce",
            debounce,
            "--restart-limit",
            str(limit),
            "--restart-min-interval",
            "0",
        ],
        env=env.aws_env(),
    )
    await asyncio.to_thread(op.start)
    try:
        yield op
    finally:
        await asyncio.to_thread(op.stop)


# ---------------------------------------------------------------------------------------------- manifests
def _container(**extra: Any) -> dict[str, Any]:
    return {"name": "app", "image": "registry.invalid/app:1", **extra}


def _workload(kind: str, name: str, pod: dict[str, Any]) -> dict[str, Any]:
    labels = {"app": name}
    spec: dict[str, Any] = {
        "selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": labels}, "spec": pod},
    }
    if kind != "DaemonSet":
        spec["replicas"] = 1
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def four_workloads() -> list[dict[str, Any]]:
    """One reads `password` through env, one every key through envFrom, one `password` and
    `username` through a projected volume, and one reads another Secret only."""
    return [
        _workload(
            "Deployment",
            "env-password",
            {
                "containers": [
                    _container(
                        env=[
                            {
                                "name": "PASSWORD",
                                "valueFrom": {"secretKeyRef": {"name": SECRET, "key": "password"}},
                            }
                        ]
                    )
                ]
            },
        ),
        _workload(
            "StatefulSet", "env-from", {"containers": [_container(envFrom=[{"secretRef": {"name": SECRET}}])]}
        ),
        _workload(
            "DaemonSet",
            "projected",
            {
                "containers": [_container(volumeMounts=[{"name": "creds", "mountPath": "/creds"}])],
                "volumes": [
                    {
                        "name": "creds",
                        "projected": {
                            "sources": [
                                {
                                    "secret": {
                                        "name": SECRET,
                                        "items": [
                                            {"key": "password", "path": "password"},
                                            {"key": "username", "path": "username"},
                                        ],
                                    }
                                }
                            ]
                        },
                    }
                ],
            },
        ),
        _workload(
            "Deployment",
            "bystander",
            {"containers": [_container(envFrom=[{"secretRef": {"name": "other"}}])]},
        ),
    ]


def managed_secret(key: str) -> dict[str, Any]:
    return {
        "apiVersion": "rotor.dev/v1alpha1",
        "kind": "ManagedSecret",
        "metadata": {"name": SECRET},
        "spec": {
            "storeRef": {"name": "aws"},
            "dataFrom": [{"extract": {"key": key}}],
            "rollout": {"strategy": "Auto"},
        },
    }


# ---------------------------------------------------------------------------------------------- helpers
async def workload(cluster: Cluster, namespace: str, kind: str, name: str) -> dict[str, Any]:
    reader = {
        "Deployment": cluster.apps.read_namespaced_deployment,
        "StatefulSet": cluster.apps.read_namespaced_stateful_set,
        "DaemonSet": cluster.apps.read_namespaced_daemon_set,
    }[kind]
    return dict(cluster.api.sanitize_for_serialization(await reader(name, namespace)))


def restarted_at(obj: dict[str, Any]) -> str | None:
    return (obj["spec"]["template"].get("metadata") or {}).get("annotations", {}).get(RESTARTED_AT)


def digest_of(obj: dict[str, Any]) -> str | None:
    return (obj["metadata"].get("annotations") or {}).get(DIGEST)


async def snapshot(
    cluster: Cluster, namespace: str, refs: list[tuple[str, str]]
) -> dict[str, dict[str, Any]]:
    return {f"{k}/{n}": await workload(cluster, namespace, k, n) for k, n in refs}


async def set_source(
    env: TestEnvironment, cluster: Cluster, namespace: str, key: str, value: dict[str, str], nonce: str
) -> None:
    """Change the source and ask for a sync now; wait until the Secret holds the new value."""
    env.boto("secretsmanager").put_secret_value(SecretId=key, SecretString=json.dumps(value))
    await cluster.patch(
        "ManagedSecret", SECRET, {"metadata": {"annotations": {"rotor.dev/force-sync": nonce}}}, namespace
    )

    async def written() -> bool:
        data = await cluster.secret_data(namespace, SECRET) or {}
        return data == {k: v.encode() for k, v in value.items()}

    await wait_for(written, timeout=30, interval=0.1, what=f"the Secret to hold source version {nonce}")


async def setup(
    env: TestEnvironment,
    cluster: Cluster,
    namespace: str,
    leaks: LeakRegistry,
    value: dict[str, str],
    manifests: list[dict[str, Any]],
    consumers: list[tuple[str, str]],
) -> str:
    """Workloads, store and ManagedSecret; returns the source key once every consumer is recorded."""
    leaks.add(*value.values())
    key = f"{namespace}/db"
    env.boto("secretsmanager").create_secret(Name=key, SecretString=json.dumps(value))
    for doc in manifests:
        await cluster.apply(doc, namespace)
    for doc in env.aws_store(namespace):
        await cluster.apply(doc, namespace)
    await cluster.apply(managed_secret(key), namespace)
    await cluster.ready(SECRET, namespace)

    async def recorded() -> dict[str, dict[str, Any]] | None:
        objs = await snapshot(cluster, namespace, consumers)
        return objs if all(digest_of(o) for o in objs.values()) else None

    # the first write created the Secret: nothing read older data, so Rotor records and restarts nothing
    first = await wait_for(recorded, timeout=30, what="Rotor to record what each consumer reads")
    for ref, obj in first.items():
        assert restarted_at(obj) is None, ref
        assert digest_of(obj).startswith("hmac-sha256:")  # type: ignore[union-attr]
    return key


async def finish_rollout(cluster: Cluster, namespace: str, kind: str, name: str) -> None:
    """Play the deployment controller: the new pods are up."""
    obj = await workload(cluster, namespace, kind, name)
    status = {
        "observedGeneration": obj["metadata"]["generation"],
        "replicas": 1,
        "updatedReplicas": 1,
        "readyReplicas": 1,
        "availableReplicas": 1,
    }
    patcher = {
        "Deployment": cluster.apps.patch_namespaced_deployment_status,
        "StatefulSet": cluster.apps.patch_namespaced_stateful_set_status,
    }[kind]
    await patcher(name, namespace, {"status": status}, _content_type="application/merge-patch+json")


def in_progress(objs: dict[str, dict[str, Any]]) -> list[str]:
    """Restarted by Rotor, and not yet rolled out."""
    return sorted(
        ref
        for ref, o in objs.items()
        if restarted_at(o)
        and int((o.get("status") or {}).get("observedGeneration") or 0) < o["metadata"]["generation"]
    )


async def keep_looking(probe: Callable[[], Awaitable[object]], *, seconds: float) -> None:
    """Call ``probe`` repeatedly for ``seconds`` (it records what it sees): a negative check needs
    a window of time, and this is it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await probe()
        await asyncio.sleep(0.2)


def metric(text: str, kind: str, result: str) -> float:
    prefix = f'rotor_rollout_restarts_total{{kind="{kind}",result="{result}"}} '
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.removeprefix(prefix))
    return 0.0


async def rollout_status(cluster: Cluster, namespace: str) -> dict[str, Any]:
    ms = await cluster.get("ManagedSecret", SECRET, namespace) or {}
    return dict((ms.get("status") or {}).get("rollout") or {})


# ---------------------------------------------------------------------------------------------- tests
async def test_only_workloads_whose_keys_changed_restart(
    cluster: Cluster, env: TestEnvironment, iso_namespace: str, leaks: LeakRegistry
) -> None:
    ns = iso_namespace
    value = {"username": "app", "password": secrets.token_urlsafe(24), "url": "postgres://db-1:5432/app"}
    async with rollout_operator(env, ns, debounce="1s", limit=10) as op:
        key = await setup(env, cluster, ns, leaks, value, four_workloads(), CONSUMERS)

        # the password changes: every consumer reads it; the bystander does not
        value = {**value, "password": secrets.token_urlsafe(24)}
        leaks.add(value["password"])
        await set_source(env, cluster, ns, key, value, "1")

        async def all_restarted() -> dict[str, dict[str, Any]] | None:
            objs = await snapshot(cluster, ns, CONSUMERS)
            return objs if all(restarted_at(o) for o in objs.values()) else None

        first = await wait_for(all_restarted, timeout=30, what="the three consumers to restart")
        status = await wait_for(lambda: rollout_status(cluster, ns), what="status.rollout")
        assert sorted(status["restarted"]) == sorted(f"{k}/{n}" for k, n in CONSUMERS)
        assert status["lastRestartTime"]
        bystander = await workload(cluster, ns, *BYSTANDER)
        assert restarted_at(bystander) is None and digest_of(bystander) is None

        # only `url` changes: only envFrom reads it
        value = {**value, "url": "postgres://db-2:5432/app"}
        await set_source(env, cluster, ns, key, value, "2")

        async def only_env_from() -> dict[str, Any] | None:
            current = await rollout_status(cluster, ns)
            return current if current.get("restarted") == ["StatefulSet/env-from"] else None

        await wait_for(only_env_from, timeout=30, what="a rollout of StatefulSet/env-from alone")
        second = await snapshot(cluster, ns, [*CONSUMERS, BYSTANDER])
        assert restarted_at(second["StatefulSet/env-from"]) != restarted_at(first["StatefulSet/env-from"])
        for ref in ("Deployment/env-password", "DaemonSet/projected"):
            assert restarted_at(second[ref]) == restarted_at(first[ref]), ref
        assert restarted_at(second["Deployment/bystander"]) is None

        reasons = await cluster.event_reasons(ns, SECRET)
        assert reasons.count("RolloutRestarted") == 2
        assert "RolloutFailed" not in reasons
        notes = " ".join(await cluster.event_notes(ns))
        assert "Deployment/env-password" in notes and value["password"] not in notes

        text = await asyncio.to_thread(op.metrics)
        assert metric(text, "Deployment", "success") == 1
        assert metric(text, "StatefulSet", "success") == 2
        assert metric(text, "DaemonSet", "success") == 1


async def test_a_flapping_source_restarts_each_consumer_once(
    cluster: Cluster, env: TestEnvironment, iso_namespace: str, leaks: LeakRegistry
) -> None:
    ns = iso_namespace
    consumers = CONSUMERS[:2]
    value = {"username": "app", "password": secrets.token_urlsafe(24), "url": "postgres://db:5432/app"}
    async with rollout_operator(env, ns, debounce="2s", limit=10) as op:
        key = await setup(env, cluster, ns, leaks, value, four_workloads()[:2], consumers)
        for i in range(5):
            value = {**value, "password": secrets.token_urlsafe(24)}
            leaks.add(value["password"])
            await set_source(env, cluster, ns, key, value, f"flap-{i}")

        async def restarted() -> dict[str, dict[str, Any]] | None:
            objs = await snapshot(cluster, ns, consumers)
            return objs if all(restarted_at(o) for o in objs.values()) else None

        await wait_for(restarted, timeout=30, what="the consumers to restart after the burst")
        await wait_for(lambda: rollout_status(cluster, ns), what="status.rollout")
        # one rollout each, for the last value
        objs = await snapshot(cluster, ns, consumers)
        assert objs["StatefulSet/env-from"]["metadata"]["generation"] == 2  # one template change
        assert "rolling out 5 writes of Secret" in op.log_text()
        text = await asyncio.to_thread(op.metrics)
        assert metric(text, "Deployment", "success") == 1
        assert metric(text, "StatefulSet", "success") == 1
        assert (await cluster.event_reasons(ns, SECRET)).count("RolloutRestarted") == 1


async def test_at_most_restart_limit_rollouts_in_progress(
    cluster: Cluster, env: TestEnvironment, iso_namespace: str, leaks: LeakRegistry
) -> None:
    ns = iso_namespace
    names = ["api", "web", "worker"]
    refs = [("Deployment", n) for n in names]
    pod = {"containers": [_container(envFrom=[{"secretRef": {"name": SECRET}}])]}
    value = {"password": secrets.token_urlsafe(24)}
    async with rollout_operator(env, ns, debounce="1s", limit=1) as op:
        key = await setup(
            env, cluster, ns, leaks, value, [_workload("Deployment", n, pod) for n in names], refs
        )
        value = {"password": secrets.token_urlsafe(24)}
        leaks.add(value["password"])
        await set_source(env, cluster, ns, key, value, "1")

        seen: list[int] = []  # how many rollouts were in progress, at every look

        async def started() -> list[str] | None:
            now = in_progress(await snapshot(cluster, ns, refs))
            seen.append(len(now))
            return now or None

        done: list[str] = []
        while len(done) < len(names):
            now = await wait_for(started, timeout=30, what=f"a restart after {done}")
            await keep_looking(started, seconds=3)  # unfinished for a while: nothing else may start
            assert max(seen) == 1, f"more than one rollout in progress with --restart-limit 1 (after {done})"
            (ref,) = now
            await finish_rollout(cluster, ns, *ref.split("/", 1))
            done.append(ref)

        assert sorted(done) == sorted(f"Deployment/{n}" for n in names)
        objs = await snapshot(cluster, ns, refs)
        assert all(restarted_at(o) for o in objs.values())
        status = await wait_for(lambda: rollout_status(cluster, ns), what="status.rollout")
        assert sorted(status["restarted"]) == sorted(done)
        text = await asyncio.to_thread(op.metrics)
        assert metric(text, "Deployment", "success") == 3
