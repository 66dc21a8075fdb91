"""ManagedSecrets over Google Secret Manager, through Rotor's real sync and rotation paths: the
session's operator, the kube-apiserver, and the Secret Manager test server driven by the official
SDK over gRPC with TLS (a service account key, or workload identity federation with a
ServiceAccount token exchanged at the Security Token Service)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
from typing import Any

import pytest

from support.clouds import gcp_store
from support.cluster import Cluster
from support.gcp_secretmanager import ACCESSOR, VERSION_MANAGER, VIEWER
from support.objects import apply_token_store
from support.rotation import managed_secret, policy, request_rotation, run_rotor, wait_rotated

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _ms(name: str, store: str, **spec: object) -> dict[str, Any]:
    return {
        "apiVersion": "rotor.dev/v1alpha1",
        "kind": "ManagedSecret",
        "metadata": {"name": name},
        "spec": {"storeRef": {"name": store}, **spec},
    }


async def _apply(cluster: Cluster, docs: list[dict[str, Any]], namespace: str, leaks: Any) -> None:
    for doc in docs:
        if doc["kind"] == "Secret":  # the store's credentials join the leak scan too
            leaks.add(*doc["stringData"].values())
        await cluster.apply(doc, namespace)


async def test_sync_extract_property_versions_alias_and_find(
    cluster: Cluster, env: Any, clouds: Any, namespace: str, leaks: Any
) -> None:
    sm = clouds.secretmanager
    password = secrets.token_urlsafe(24)
    leaks.add(password)
    db = f"{namespace}-db"
    sm.put(db, json.dumps({"username": "app", "password": "old-password-0001"}))
    sm.put(db, json.dumps({"username": "app", "password": password}))
    sm.record(db).aliases["first"] = 1
    token = secrets.token_hex(16)
    leaks.add(token)
    sm.put(f"{namespace}-api-token", token)
    sm.put(f"{namespace}-api-url", "https://api.example")
    await _apply(cluster, gcp_store(clouds, namespace, "gcp", ACCESSOR, VIEWER), namespace, leaks)
    await cluster.wait_condition("SecretStore", "gcp", namespace, timeout=60)
    await cluster.apply(
        _ms(
            "db",
            "gcp",
            dataFrom=[{"extract": {"key": db}}, {"find": {"path": f"{namespace}-api-"}}],
            data=[
                {"secretKey": "pw", "remoteRef": {"key": db, "property": "password", "version": "latest"}},
                {"secretKey": "v1", "remoteRef": {"key": db, "property": "password", "version": "1"}},
                {"secretKey": "alias", "remoteRef": {"key": db, "property": "password", "version": "first"}},
            ],
        ),
        namespace,
    )
    ms = await cluster.ready("db", namespace, timeout=60)
    assert await cluster.secret_data(namespace, "db") == {
        "username": b"app",
        "password": password.encode(),
        "pw": password.encode(),
        "v1": b"old-password-0001",
        "alias": b"old-password-0001",
        "token": token.encode(),
        "url": b"https://api.example",
    }
    assert password not in json.dumps(ms["status"])
    # every SDK call is counted once, by the provider itself, with its API operation name
    metrics = await asyncio.to_thread(env.operator.metrics)
    labels = [
        f'store="SecretStore/{namespace}/gcp"',
        'provider="gcp-secretmanager"',
        'operation="AccessSecretVersion"',
        'result="success"',
    ]
    counted = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("rotor_provider_requests_total{") and all(label in line for label in labels)
    ]
    assert counted and counted[0] >= 1, "no counted AccessSecretVersion calls"


async def test_workload_identity_federation_store(
    cluster: Cluster, clouds: Any, namespace: str, leaks: Any
) -> None:
    sm = clouds.secretmanager
    key = f"{namespace}-wif"
    sm.put(key, "federated-read-0001")
    await _apply(
        cluster,
        gcp_store(clouds, namespace, "wif", ACCESSOR, VIEWER, workload_identity=True),
        namespace,
        leaks,
    )
    await cluster.wait_condition("SecretStore", "wif", namespace, timeout=60)
    await cluster.apply(_ms("wif", "wif", data=[{"secretKey": "v", "remoteRef": {"key": key}}]), namespace)
    await cluster.ready("wif", namespace, timeout=60)
    assert await cluster.secret_data(namespace, "wif") == {"v": b"federated-read-0001"}


async def test_disabled_version_and_a_principal_without_access(
    cluster: Cluster, clouds: Any, namespace: str, leaks: Any
) -> None:
    sm = clouds.secretmanager
    key = f"{namespace}-state"
    sm.put(key, "first-value-1234")
    await _apply(cluster, gcp_store(clouds, namespace, "gcp", ACCESSOR, VIEWER), namespace, leaks)
    await cluster.apply(_ms("state", "gcp", data=[{"secretKey": "v", "remoteRef": {"key": key}}]), namespace)
    await cluster.ready("state", namespace, timeout=60)
    sm.put(key, "second-value-5678")
    sm.record(key).versions[-1].state = 2  # DISABLED: latest cannot be read
    await cluster.patch(
        "ManagedSecret", "state", {"metadata": {"annotations": {"rotor.dev/force-sync": "1"}}}, namespace
    )
    cond = await cluster.wait_condition(
        "ManagedSecret", "state", namespace, status="False", reason="KeyNotFound"
    )
    assert "DISABLED" in cond["message"]
    assert await cluster.secret_data(namespace, "state") == {"v": b"first-value-1234"}
    # a principal with no role: the store authenticates (PerPath) and each read says what to grant
    await _apply(cluster, gcp_store(clouds, namespace, "none"), namespace, leaks)
    await cluster.wait_condition("SecretStore", "none", namespace, timeout=60)
    await cluster.apply(
        _ms("none", "none", data=[{"secretKey": "v", "remoteRef": {"key": key, "version": "1"}}]), namespace
    )
    cond = await cluster.wait_condition(
        "ManagedSecret", "none", namespace, status="False", reason="Forbidden"
    )
    assert "secretAccessor" in cond["message"]


async def test_rotation_adds_a_version_and_rollback_restores_it(
    cluster: Cluster, env: Any, clouds: Any, namespace: str, leaks: Any
) -> None:
    sm = clouds.secretmanager
    key = f"{namespace}-app"
    old = secrets.token_urlsafe(18)
    leaks.add(old)
    sm.put(key, json.dumps({"password": old, "user": "app"}))
    await _apply(
        cluster, gcp_store(clouds, namespace, "gcp", ACCESSOR, VIEWER, VERSION_MANAGER), namespace, leaks
    )
    await cluster.apply(policy("policy", {"preset": "database-password", "gracePeriod": "0"}), namespace)
    await cluster.apply(managed_secret("app", store="gcp", key=key), namespace)
    await cluster.ready("app", namespace, timeout=60)
    request = await request_rotation(cluster, namespace, "app")
    await wait_rotated(cluster, namespace, "app", request=request, timeout=90)
    versions = sm.record(key).versions
    assert len(versions) == 2  # exactly one new version
    value = json.loads(versions[-1].data)
    leaks.add(value["password"])
    assert value["user"] == "app" and value["password"] != old
    data = await cluster.secret_data(namespace, "app") or {}
    assert data["password"] == value["password"].encode()

    done = await run_rotor(env, leaks, "rollback", "app", "-n", namespace, "--timeout", "60s")
    assert done.code == 0, done.lines
    assert "version 3 now holds the value of version 1" in done.lines[-1], done.lines
    assert json.loads(sm.record(key).versions[-1].data) == {"password": old, "user": "app"}
    data = await cluster.secret_data(namespace, "app") or {}
    assert data["password"] == old.encode()


async def test_find_by_labels_and_refused_on_a_store_without_them(
    cluster: Cluster, env: Any, clouds: Any, namespace: str, leaks: Any
) -> None:
    sm = clouds.secretmanager
    leaks.add("labelled-value-a", "labelled-value-b", "other-value-c01")
    sm.put(f"{namespace}-svc-a", "labelled-value-a", team="payments", env="prod")
    sm.put(f"{namespace}-svc-b", "labelled-value-b", team="payments")
    sm.put(f"{namespace}-svc-c", "other-value-c01", team="search")
    await _apply(cluster, gcp_store(clouds, namespace, "gcp", ACCESSOR, VIEWER), namespace, leaks)
    await cluster.wait_condition("SecretStore", "gcp", namespace, timeout=60)
    find = {"path": f"{namespace}-svc-", "tags": {"team": "payments"}}
    await cluster.apply(_ms("labelled", "gcp", dataFrom=[{"find": find}]), namespace)
    await cluster.ready("labelled", namespace, timeout=60)
    assert await cluster.secret_data(namespace, "labelled") == {
        "a": b"labelled-value-a",
        "b": b"labelled-value-b",
    }

    # a Vault store has no tags: the same find is refused, saying what to change
    await apply_token_store(cluster, env, namespace)
    await cluster.apply(
        _ms("vault-tags", "vault", dataFrom=[{"find": {"path": "apps/", "tags": {"team": "a"}}}]), namespace
    )
    cond = await cluster.wait_condition(
        "ManagedSecret", "vault-tags", namespace, status="False", reason="InvalidSpec"
    )
    assert "has no tags or labels to match; remove find.tags" in cond["message"]


async def test_expire_time_feeds_status_expiry(
    cluster: Cluster, clouds: Any, namespace: str, leaks: Any
) -> None:
    """A secret's ``expireTime`` (when Secret Manager deletes it) is the value's expiry:
    status.expiry with source Provider, and Expiring=True Expired once it has passed."""
    sm = clouds.secretmanager
    soon = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(hours=48)
    sm.put(f"{namespace}-later", "expires-later-0001")
    sm.record(f"{namespace}-later").expire_time = soon
    sm.put(f"{namespace}-past", "expired-value-0001")
    sm.record(f"{namespace}-past").expire_time = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    await _apply(cluster, gcp_store(clouds, namespace, "gcp", ACCESSOR, VIEWER), namespace, leaks)
    for name in ("later", "past"):
        ref = {"key": f"{namespace}-{name}"}
        await cluster.apply(_ms(name, "gcp", data=[{"secretKey": "v", "remoteRef": ref}]), namespace)
    ms = await cluster.ready("later", namespace, timeout=60)
    expiry = ms["status"]["expiry"]
    assert expiry["source"] == "Provider"
    assert dt.datetime.fromisoformat(expiry["notAfter"].replace("Z", "+00:00")) == soon
    assert await cluster.wait_condition("ManagedSecret", "later", namespace, "Expiring", status="False")
    cond = await cluster.wait_condition(
        "ManagedSecret", "past", namespace, "Expiring", status="True", reason="Expired", timeout=60
    )
    assert "source: Provider" in cond["message"]
    assert await cluster.secret_data(namespace, "past") == {"v": b"expired-value-0001"}
