"""Rotation given bad input: each case gets a clear reason and message, a rotation requested by
annotation is answered as Failed, the Secret keeps its value, and nothing is written to the source."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from support.cluster import Cluster, wait_for
from support.rotation import (
    condition,
    kv2_current,
    kv2_write,
    managed_secret,
    policy,
    request_rotation,
    vault_source,
    wait_answered,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _setup(
    cluster: Cluster, env: Any, ns: str, leaks: Any, policy_spec: dict[str, Any] | None, **store: Any
) -> tuple[str, int, str]:
    """``vault_source`` and a ManagedSecret "app" rotated under the policy."""
    path, version, old = await vault_source(cluster, env, ns, leaks, policy_spec, **store)
    await cluster.apply(managed_secret("app", key=path), ns)
    return path, version, old


async def _refused(
    cluster: Cluster, env: Any, ns: str, path: str, version: int, old: str, *needles: str
) -> dict:
    """The Secret is synced, Rotating=False Failed says why, a manual request is answered as
    Failed, and the source is untouched."""
    obj = await cluster.ready("app", ns, timeout=60)
    await cluster.wait_condition("ManagedSecret", "app", ns, "Rotating", status="False", reason="Failed")
    request = await request_rotation(cluster, ns, "app")
    obj = await wait_answered(cluster, ns, "app", request)
    assert obj["status"]["rotation"]["phase"] == "Failed"
    cond = condition(obj, "Rotating")
    assert cond["status"] == "False" and cond["reason"] == "Failed"
    for needle in needles:
        assert needle in cond["message"], cond["message"]
    assert condition(obj, "Ready")["status"] == "True", "the sync itself is fine"
    assert kv2_current(env, path) == (version, {"password": old, "user": "app"}), (
        "nothing written at the source"
    )
    data = await cluster.secret_data(ns, "app") or {}
    assert data["password"] == old.encode()
    assert "RotationFailed" in await cluster.event_reasons(ns, "app")
    return obj


async def _policy_not_ready(cluster: Cluster, ns: str, needle: str) -> None:
    async def probe() -> dict[str, Any] | None:
        cond = await cluster.condition("RotationPolicy", "policy", ns, "Ready")
        return cond if cond and cond.get("status") == "False" else None

    cond = await wait_for(probe, timeout=30, what="the policy to report Ready=False")
    assert cond["reason"] == "InvalidSpec" and needle in cond["message"], cond


async def test_invalid_cron(cluster: Cluster, env: Any, namespace: str, leaks: Any) -> None:
    path, version, old = await _setup(
        cluster, env, namespace, leaks, {"schedule": {"cron": "61 25 * * *"}, "generator": {"fernetKey": {}}}
    )
    await _refused(cluster, env, namespace, path, version, old, "61 25 * * *", "cron")
    await _policy_not_ready(cluster, namespace, "cron")


async def test_window_that_never_opens(cluster: Cluster, env: Any, namespace: str, leaks: Any) -> None:
    path, version, old = await _setup(
        cluster,
        env,
        namespace,
        leaks,
        {
            "schedule": {"every": "24h"},
            "window": {"cron": "0 0 30 2 *", "duration": "1h"},
            "generator": {"fernetKey": {}},
        },
    )
    await _refused(cluster, env, namespace, path, version, old, "window never opens", "0 0 30 2 *")
    await _policy_not_ready(cluster, namespace, "window never opens")


async def test_generator_that_cannot_satisfy_itself(
    cluster: Cluster, env: Any, namespace: str, leaks: Any
) -> None:
    # refused by the API server itself: too short for the minimums it asks for
    impossible = policy(
        "impossible",
        {
            "schedule": {"every": "24h"},
            "generator": {"password": {"length": 3, "lower": 1, "upper": 1, "digits": 1, "symbols": 1}},
        },
    )
    with pytest.raises(ApiException) as refused:
        await cluster.apply(impossible, namespace)
    assert refused.value.status == 422
    assert "length" in refused.value.body
    # what the schema cannot see: the exclusions leave no digit for "digits: 2"
    path, version, old = await _setup(
        cluster,
        env,
        namespace,
        leaks,
        {
            "schedule": {"every": "24h"},
            "generator": {"password": {"length": 16, "digits": 2, "exclude": "0123456789"}},
        },
    )
    await _refused(cluster, env, namespace, path, version, old, "exclude removes every digits character")
    await _policy_not_ready(cluster, namespace, "digits")


async def test_policy_that_does_not_exist(cluster: Cluster, env: Any, namespace: str, leaks: Any) -> None:
    path, version, old = await _setup(cluster, env, namespace, leaks, None)
    await _refused(cluster, env, namespace, path, version, old, "RotationPolicy 'policy' does not exist")
    # creating it later is enough: no restart, no edit of the ManagedSecret
    await cluster.apply(policy("policy", {"preset": "database-password"}), namespace)

    async def recovered() -> dict[str, Any] | None:
        obj = await cluster.get("ManagedSecret", "app", namespace)
        cond = condition(obj, "Rotating")
        rot = ((obj or {}).get("status") or {}).get("rotation") or {}
        return obj if cond.get("reason") != "Failed" and rot.get("nextRotationTime") else None

    await wait_for(recovered, timeout=30, what="the rotation status to recover")


async def test_rotation_on_a_read_only_store(cluster: Cluster, env: Any, namespace: str, leaks: Any) -> None:
    client = env.vault_client()
    client.sys.create_or_update_policy(
        name=f"ro-{namespace}",
        policy=f'path "secret/data/{namespace}/*" {{ capabilities = ["read"] }}\n'
        f'path "secret/metadata/{namespace}/*" {{ capabilities = ["read", "list"] }}\n',
    )
    token = client.auth.token.create(policies=[f"ro-{namespace}"], ttl="2h")["auth"]["client_token"]
    leaks.add(token)
    path, version, old = await _setup(
        cluster, env, namespace, leaks, {"preset": "database-password"}, token=token
    )

    async def validated() -> bool:
        store = await cluster.get("SecretStore", "vault", namespace)
        # Vault write access is judged per path, when the rotation is about to write
        return ((store or {}).get("status") or {}).get("capabilities") == "PerPath"

    await wait_for(validated, timeout=30, what="the store to be validated (PerPath)")
    await cluster.ready("app", namespace, timeout=60)
    request = await request_rotation(cluster, namespace, "app")
    obj = await wait_answered(cluster, namespace, "app", request)
    cond = condition(obj, "Rotating")
    assert obj["status"]["rotation"]["phase"] == "Failed"
    assert cond["status"] == "False" and cond["reason"] == "Failed"
    assert "write access" in cond["message"] and "read-only" in cond["message"], cond["message"]
    assert kv2_current(env, path) == (version, {"password": old, "user": "app"}), (
        "nothing written at the source"
    )
    data = await cluster.secret_data(namespace, "app") or {}
    assert data["password"] == old.encode()


async def test_a_request_that_cannot_proceed_is_told_at_once_and_waits(
    cluster: Cluster, env: Any, namespace: str, leaks: Any
) -> None:
    """A rotate request (kubectl annotate: fire and forget) on a ManagedSecret whose store is
    missing is told at once: Rotating=False with the sync's reason, an Event, nothing written.
    It stays pending (`rotor rotate` withdraws its own when it stops waiting), and rotates exactly
    once when the store appears."""
    old = secrets.token_urlsafe(20)
    leaks.add(old)
    path = f"{namespace}/app"
    version = kv2_write(env, path, {"password": old, "user": "app"})
    await cluster.apply(policy("policy", {"preset": "database-password"}), namespace)
    await cluster.apply(managed_secret("app", key=path, store="later"), namespace)
    await cluster.wait_condition(
        "ManagedSecret", "app", namespace, "Ready", status="False", reason="StoreNotFound"
    )
    request = await request_rotation(cluster, namespace, "app")
    cond = await cluster.wait_condition(
        "ManagedSecret", "app", namespace, "Rotating", status="False", reason="StoreNotFound"
    )
    assert "the rotate request waits" in cond["message"] and "StoreNotFound" in cond["message"], cond
    assert "RotationWaiting" in await cluster.event_reasons(namespace, "app")
    assert kv2_current(env, path)[0] == version, "nothing written while the store is missing"
    # the store appears: the request is served, once
    for doc in env.vault_token_store(namespace, "later"):
        await cluster.apply(doc, namespace)
    await wait_answered(cluster, namespace, "app", request, timeout=90)

    async def completed() -> dict[str, Any] | None:
        got = await cluster.get("ManagedSecret", "app", namespace)
        rot = ((got or {}).get("status") or {}).get("rotation") or {}
        return got if rot.get("phase") == "Completed" else None

    await wait_for(completed, timeout=90, what="the waiting rotation to complete")
    current, data = kv2_current(env, path)
    assert current == version + 1, "exactly one new version for the one request"
    secret = await cluster.secret_data(namespace, "app") or {}
    assert secret["password"] == data["password"].encode() != old.encode()
    leaks.add(data["password"])
