"""ManagedSecrets over Azure Key Vault, through Rotor's real sync and rotation paths: the session's
operator, the kube-apiserver, and the Key Vault test server driven by the official SDKs over
HTTPS (bearer challenge, Microsoft Entra tokens by client secret or by federated ServiceAccount
token)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
import time
from typing import Any

import pytest

from support.azure_keyvault import OFFICER, READER
from support.clouds import azure_store
from support.cluster import Cluster
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


async def test_sync_extract_property_pinned_version_and_find(
    cluster: Cluster, env: Any, clouds: Any, namespace: str, leaks: Any
) -> None:
    kv = clouds.keyvault
    password = secrets.token_urlsafe(24)
    leaks.add(password)
    db = f"{namespace}-db"
    old = kv.put(db, json.dumps({"username": "app", "password": "old-password-0001"}))
    kv.put(db, json.dumps({"username": "app", "password": password}), contentType="application/json")
    token = secrets.token_hex(16)
    leaks.add(token)
    kv.put(f"{namespace}-api-token", token)
    kv.put(f"{namespace}-api-url", "https://api.example")
    await _apply(cluster, azure_store(clouds, namespace, role=READER), namespace, leaks)
    await cluster.wait_condition("SecretStore", "azure", namespace, timeout=60)
    await cluster.apply(
        _ms(
            "db",
            "azure",
            dataFrom=[{"extract": {"key": db}}, {"find": {"path": f"{namespace}-api-"}}],
            data=[
                {"secretKey": "pw", "remoteRef": {"key": db, "property": "password"}},
                {"secretKey": "old", "remoteRef": {"key": db, "property": "password", "version": old.id}},
            ],
        ),
        namespace,
    )
    ms = await cluster.ready("db", namespace, timeout=60)
    data = await cluster.secret_data(namespace, "db")
    assert data == {
        "username": b"app",
        "password": password.encode(),
        "pw": password.encode(),
        "old": b"old-password-0001",
        "token": token.encode(),  # find: the name after the path
        "url": b"https://api.example",
    }
    assert password not in json.dumps(ms["status"])
    # every SDK call is counted once, by the provider itself, with its API operation name
    metrics = await asyncio.to_thread(env.operator.metrics)
    labels = [
        f'store="SecretStore/{namespace}/azure"',
        'provider="azure-keyvault"',
        'operation="GetSecret"',
        'result="success"',
    ]
    counted = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("rotor_provider_requests_total{") and all(label in line for label in labels)
    ]
    assert counted and counted[0] >= 1, "no counted GetSecret calls"


async def test_workload_identity_store_reads_with_a_federated_token(
    cluster: Cluster, clouds: Any, namespace: str, leaks: Any
) -> None:
    kv = clouds.keyvault
    key = f"{namespace}-wi"
    kv.put(key, "federated-read-0001")
    await _apply(
        cluster, azure_store(clouds, namespace, "wi", role=READER, workload_identity=True), namespace, leaks
    )
    await cluster.wait_condition("SecretStore", "wi", namespace, timeout=60)
    await cluster.apply(_ms("wi", "wi", data=[{"secretKey": "v", "remoteRef": {"key": key}}]), namespace)
    await cluster.ready("wi", namespace, timeout=60)
    assert await cluster.secret_data(namespace, "wi") == {"v": b"federated-read-0001"}


async def test_key_vault_expiry_feeds_status_expiry(
    cluster: Cluster, clouds: Any, namespace: str, leaks: Any
) -> None:
    """A version's ``exp`` attribute is the value's expiry: status.expiry (source Provider), and
    Expiring=True Expired once it has passed (Key Vault still serves the value)."""
    kv = clouds.keyvault
    soon = int(time.time()) + 48 * 3600
    kv.put(f"{namespace}-later", "expires-later-0001", attributes={"exp": soon})
    kv.put(f"{namespace}-past", "expired-value-0001", attributes={"exp": int(time.time()) - 60})
    await _apply(cluster, azure_store(clouds, namespace, role=READER), namespace, leaks)
    for name in ("later", "past"):
        ref = {"key": f"{namespace}-{name}"}
        await cluster.apply(_ms(name, "azure", data=[{"secretKey": "v", "remoteRef": ref}]), namespace)
    ms = await cluster.ready("later", namespace, timeout=60)
    expiry = ms["status"]["expiry"]
    assert expiry["source"] == "Provider"
    assert dt.datetime.fromisoformat(expiry["notAfter"].replace("Z", "+00:00")) == dt.datetime.fromtimestamp(
        soon, dt.UTC
    )
    assert await cluster.wait_condition("ManagedSecret", "later", namespace, "Expiring", status="False")
    cond = await cluster.wait_condition(
        "ManagedSecret", "past", namespace, "Expiring", status="True", reason="Expired", timeout=60
    )
    assert "source: Provider" in cond["message"]
    assert await cluster.secret_data(namespace, "past") == {"v": b"expired-value-0001"}


async def test_denied_store_and_missing_key(
    cluster: Cluster, clouds: Any, namespace: str, leaks: Any
) -> None:
    kv = clouds.keyvault
    await _apply(cluster, azure_store(clouds, namespace, "none", role=None), namespace, leaks)
    cond = await cluster.wait_condition(
        "SecretStore", "none", namespace, status="False", reason="Forbidden", timeout=60
    )
    assert "Key Vault Secrets User" in cond["message"]
    key = f"{namespace}-gone"
    kv.put(key, "first-value-1234")
    await _apply(cluster, azure_store(clouds, namespace, role=READER), namespace, leaks)
    await cluster.apply(_ms("gone", "azure", data=[{"secretKey": "v", "remoteRef": {"key": key}}]), namespace)
    await cluster.ready("gone", namespace, timeout=60)
    await cluster.patch(
        "ManagedSecret",
        "gone",
        {"spec": {"data": [{"secretKey": "v", "remoteRef": {"key": f"{namespace}-does-not-exist"}}]}},
        namespace,
    )
    cond = await cluster.wait_condition(
        "ManagedSecret", "gone", namespace, status="False", reason="KeyNotFound"
    )
    assert "does-not-exist" in cond["message"]
    assert await cluster.secret_data(namespace, "gone") == {"v": b"first-value-1234"}


async def test_rotation_writes_a_new_version_and_rollback_restores_it(
    cluster: Cluster, env: Any, clouds: Any, namespace: str, leaks: Any
) -> None:
    kv = clouds.keyvault
    key = f"{namespace}-app"
    old = secrets.token_urlsafe(18)
    leaks.add(old)
    kv.put(key, json.dumps({"password": old, "user": "app"}))
    before = kv.version(key).id
    await _apply(cluster, azure_store(clouds, namespace, role=OFFICER), namespace, leaks)
    await cluster.apply(policy("policy", {"preset": "database-password", "gracePeriod": "0"}), namespace)
    await cluster.apply(managed_secret("app", store="azure", key=key), namespace)
    await cluster.ready("app", namespace, timeout=60)
    request = await request_rotation(cluster, namespace, "app")
    await wait_rotated(cluster, namespace, "app", request=request, timeout=90)
    rotated = kv.version(key)
    value = json.loads(rotated.value)
    leaks.add(value["password"])
    assert rotated.id != before and value["user"] == "app" and value["password"] != old
    assert len(kv.secrets[key.lower()].versions) == 2  # exactly one new version
    assert rotated.tags.get("rotor-previous-version") == before
    data = await cluster.secret_data(namespace, "app") or {}
    assert data["password"] == value["password"].encode()

    done = await run_rotor(env, leaks, "rollback", "app", "-n", namespace, "--timeout", "60s")
    assert done.code == 0, done.lines
    assert done.lines[-1].startswith("✔ rolled back "), done.lines
    assert json.loads(kv.version(key).value) == {"password": old, "user": "app"}
    data = await cluster.secret_data(namespace, "app") or {}
    assert data["password"] == old.encode()


async def test_after_the_grace_period_the_replaced_version_is_disabled_and_rollback_enables_it(
    cluster: Cluster, env: Any, clouds: Any, namespace: str, leaks: Any
) -> None:
    kv = clouds.keyvault
    key = f"{namespace}-grace"
    old = secrets.token_urlsafe(18)
    leaks.add(old)
    kv.put(key, json.dumps({"password": old, "user": "app"}))
    before = kv.version(key).id
    await _apply(cluster, azure_store(clouds, namespace, role=OFFICER), namespace, leaks)
    await cluster.apply(policy("policy", {"preset": "database-password", "gracePeriod": "20s"}), namespace)
    await cluster.apply(managed_secret("app", store="azure", key=key), namespace)
    await cluster.ready("app", namespace, timeout=60)
    request = await request_rotation(cluster, namespace, "app")
    await wait_rotated(cluster, namespace, "app", request=request, timeout=90)
    rotated = kv.version(key)
    leaks.add(json.loads(rotated.value)["password"])
    # during the grace period the replaced version stays enabled (the Secret's previous key reads it)
    assert kv.version(key, before).enabled is True
    data = await cluster.secret_data(namespace, "app") or {}
    assert data.get("password_previous") == old.encode()

    deadline = time.monotonic() + 60
    while kv.version(key, before).enabled and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    assert kv.version(key, before).enabled is False, "the replaced version is disabled after the grace period"
    assert kv.version(key).id == rotated.id and kv.version(key).enabled is True
    assert len(kv.secrets[key.lower()].versions) == 2
    body = await cluster.get("ManagedSecret", "app", namespace) or {}
    assert "baseVersions" not in (body.get("status", {}).get("rotation") or {})
    data = await cluster.secret_data(namespace, "app") or {}
    assert "password_previous" not in data

    done = await run_rotor(env, leaks, "rollback", "app", "-n", namespace, "--timeout", "60s")
    assert done.code == 0, done.lines
    assert kv.version(key, before).enabled is True, "rollback enables the retired version again"
    assert json.loads(kv.version(key).value) == {"password": old, "user": "app"}
    data = await cluster.secret_data(namespace, "app") or {}
    assert data["password"] == old.encode()


async def test_find_by_tags(cluster: Cluster, clouds: Any, namespace: str, leaks: Any) -> None:
    kv = clouds.keyvault
    leaks.add("tagged-value-a01", "tagged-value-b01", "untagged-value-c", "untagged-value-d")
    kv.put(f"{namespace}-svc-a", "tagged-value-a01", tags={"team": "payments", "env": "prod"})
    kv.put(f"{namespace}-svc-b", "tagged-value-b01", tags={"team": "payments", "env": "dev"})
    kv.put(f"{namespace}-svc-c", "untagged-value-c", tags={"team": "search"})
    kv.put(f"{namespace}-svc-d", "untagged-value-d")
    await _apply(cluster, azure_store(clouds, namespace, role=READER), namespace, leaks)
    await cluster.wait_condition("SecretStore", "azure", namespace, timeout=60)
    find = {"path": f"{namespace}-svc-", "tags": {"team": "payments"}}
    await cluster.apply(_ms("tagged", "azure", dataFrom=[{"find": find}]), namespace)
    await cluster.ready("tagged", namespace, timeout=60)
    assert await cluster.secret_data(namespace, "tagged") == {
        "a": b"tagged-value-a01",
        "b": b"tagged-value-b01",
    }
    # every tag must match, and the name filter still applies
    find = {
        "path": f"{namespace}-svc-",
        "name": {"regexp": "-[ab]$"},
        "tags": {"team": "payments", "env": "prod"},
    }
    await cluster.patch("ManagedSecret", "tagged", {"spec": {"dataFrom": [{"find": find}]}}, namespace)
    deadline = time.monotonic() + 60
    while await cluster.secret_data(namespace, "tagged") != {"a": b"tagged-value-a01"}:
        assert time.monotonic() < deadline, await cluster.secret_data(namespace, "tagged")
        await asyncio.sleep(0.5)
