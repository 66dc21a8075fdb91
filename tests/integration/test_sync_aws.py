"""ManagedSecrets over AWS Secrets Manager and Parameter Store, against the emulator over HTTP."""

from __future__ import annotations

import json
import secrets

import pytest

from support.cluster import Cluster, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _ms(name: str, store: str, **spec: object) -> dict:
    return {
        "apiVersion": "rotor.dev/v1alpha1",
        "kind": "ManagedSecret",
        "metadata": {"name": name},
        "spec": {"storeRef": {"name": store}, **spec},
    }


async def test_json_secret_extract_and_property(cluster: Cluster, env, namespace: str, leaks) -> None:
    sm = env.boto("secretsmanager")
    password = secrets.token_urlsafe(24)
    leaks.add(password)
    key = f"{namespace}/db"
    sm.create_secret(Name=key, SecretString=json.dumps({"username": "app", "password": password}))
    for doc in env.aws_store(namespace):
        await cluster.apply(doc, namespace)
    await cluster.apply(
        _ms(
            "db",
            "aws",
            dataFrom=[{"extract": {"key": key}}],
            data=[{"secretKey": "pw", "remoteRef": {"key": key, "property": "password"}}],
        ),
        namespace,
    )
    ms = await cluster.ready("db", namespace)
    data = await cluster.secret_data(namespace, "db")
    assert data == {"username": b"app", "password": password.encode(), "pw": password.encode()}
    assert ms["status"]["observedGeneration"] == ms["metadata"]["generation"]
    assert ms["status"]["dataHash"].startswith("hmac-sha256:")
    assert password not in json.dumps(ms["status"])


async def test_parameter_store_by_path(cluster: Cluster, env, namespace: str, leaks) -> None:
    ssm = env.boto("ssm")
    token = secrets.token_hex(16)
    leaks.add(token)
    ssm.put_parameter(Name=f"/{namespace}/api/token", Value=token, Type="SecureString")
    ssm.put_parameter(Name=f"/{namespace}/api/url", Value="https://api.example", Type="String")
    for doc in env.aws_store(namespace, "ssm", service="ParameterStore"):
        await cluster.apply(doc, namespace)
    await cluster.apply(_ms("api", "ssm", dataFrom=[{"find": {"path": f"/{namespace}/api/"}}]), namespace)
    await cluster.ready("api", namespace)
    data = await cluster.secret_data(namespace, "api")
    assert data == {"token": token.encode(), "url": b"https://api.example"}


async def test_missing_key_keeps_last_good_secret(cluster: Cluster, env, namespace: str) -> None:
    sm = env.boto("secretsmanager")
    key = f"{namespace}/gone"
    sm.create_secret(Name=key, SecretString="first-value-1234")
    for doc in env.aws_store(namespace):
        await cluster.apply(doc, namespace)
    await cluster.apply(_ms("gone", "aws", data=[{"secretKey": "v", "remoteRef": {"key": key}}]), namespace)
    await cluster.ready("gone", namespace)
    # point it at a key that does not exist: Ready=False KeyNotFound, the Secret is untouched
    await cluster.patch(
        "ManagedSecret",
        "gone",
        {"spec": {"data": [{"secretKey": "v", "remoteRef": {"key": f"{namespace}/does-not-exist"}}]}},
        namespace,
    )
    cond = await cluster.wait_condition(
        "ManagedSecret", "gone", namespace, status="False", reason="KeyNotFound"
    )
    assert "does-not-exist" in cond["message"]
    assert await cluster.secret_data(namespace, "gone") == {"v": b"first-value-1234"}
    reasons = await wait_for(
        lambda: _reasons(cluster, namespace, "gone", "SyncFailed"), what="SyncFailed event"
    )
    assert "SyncFailed" in reasons


async def _reasons(cluster: Cluster, namespace: str, name: str, want: str) -> list[str] | None:
    reasons = await cluster.event_reasons(namespace, name)
    return reasons if want in reasons else None
