"""Issue 13, items 3 and 6, against the real servers (kube-apiserver+etcd, Vault dev, the AWS
emulator) and the session operator:

- the managed Secret deleted, or re-created with another type, during the grace period comes
  back with ``<key>_previous`` = the value the rotation replaced, read back from exactly the
  source version ``status.rotation.baseVersions`` records (Vault KV v2 n-1; AWS Secrets Manager
  by VersionId, here one that is not a UUID), and nothing more is written to the source;
- two ``creationPolicy: Merge`` ManagedSecrets writing into one Secret keep each other's keys
  and stop rewriting it; a key both want is ``SecretConflict`` (Stalled) on the later one.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from typing import Any

import pytest

from support.cluster import Cluster, wait_for
from support.objects import apply_token_store, data_item, ms_manifest
from support.rotation import (
    aws_stages,
    condition,
    kv2_current,
    kv2_write,
    managed_secret,
    policy,
    request_rotation,
    vault_source,
    wait_rotated,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _secret_with(cluster: Cluster, namespace: str, name: str, want: dict[str, bytes], what: str) -> Any:
    async def probe() -> dict[str, Any] | None:
        secret = await cluster.secret(namespace, name)
        if secret is None or (secret.get("type") or "Opaque") != "Opaque":
            return None
        data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
        return secret if data == want else None

    return await wait_for(probe, timeout=45, what=what)


async def _lose(cluster: Cluster, namespace: str, name: str, how: str) -> None:
    """What someone does to the managed Secret during the grace period: delete it, or (a
    Secret's type is immutable) delete it and create one of another type, Rotor's label kept."""
    from kubernetes_asyncio.client.exceptions import ApiException

    old = await cluster.secret(namespace, name)
    assert old is not None
    retyped = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": old["metadata"].get("labels") or {}},
        "type": "kubernetes.io/basic-auth",
        "data": {"username": base64.b64encode(b"someone").decode()},
    }
    for _ in range(20):
        try:
            await cluster.core.delete_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
        if how == "deleted":
            return
        try:
            await cluster.core.create_namespaced_secret(namespace, retyped)
            return
        except ApiException as exc:
            if exc.status != 409:
                raise  # Rotor re-created it first: delete it again
    raise AssertionError("could not re-create the Secret with another type before Rotor did")


@pytest.mark.parametrize("how", ["deleted", "retyped"])
async def test_vault_previous_value_survives_the_secret_being_lost_during_grace(
    cluster: Cluster, env, namespace: str, leaks, how: str
) -> None:
    path, version, old = await vault_source(
        cluster, env, namespace, leaks, {"preset": "database-password", "gracePeriod": "1h"}
    )
    await cluster.apply(managed_secret("app", key=path), namespace)
    await cluster.ready("app", namespace, timeout=60)
    request = await request_rotation(cluster, namespace, "app")
    obj = await wait_rotated(cluster, namespace, "app", request=request)
    assert obj["status"]["rotation"]["baseVersions"][path] == str(version)
    rotated_version, values = kv2_current(env, path)
    new = values["password"]
    leaks.add(new)
    want = {"password": new.encode(), "password_previous": old.encode(), "user": b"app"}
    await _secret_with(cluster, namespace, "app", want, "the rotated Secret")

    await _lose(cluster, namespace, "app", how)
    await _secret_with(cluster, namespace, "app", want, f"the Secret {how} during grace, back with _previous")
    assert kv2_current(env, path)[0] == rotated_version == version + 1, "nothing more written to the source"
    ms = await cluster.get("ManagedSecret", "app", namespace)
    assert condition(ms, "Ready")["reason"] == "Synced"


async def test_aws_previous_value_is_read_by_a_version_id_that_is_not_a_uuid(
    cluster: Cluster, env, namespace: str, leaks
) -> None:
    """The first version was made by another tool with its own ClientRequestToken; after Rotor's
    rotation it is AWSPREVIOUS, and the Secret deleted during grace comes back with its value."""
    sm = env.boto("secretsmanager")
    old = secrets.token_urlsafe(20)
    leaks.add(old)
    key = f"{namespace}/app"
    token = f"terraform-seed-{secrets.token_hex(12)}"  # 32-64 characters, not a UUID
    sm.create_secret(
        Name=key, ClientRequestToken=token, SecretString=json.dumps({"username": "app", "password": old})
    )
    for doc in env.aws_store(namespace):
        await cluster.apply(doc, namespace)
    await cluster.apply(policy("pw", {"preset": "database-password", "gracePeriod": "1h"}), namespace)
    await cluster.apply(managed_secret("app", store="aws", key=key, policy_name="pw"), namespace)
    await cluster.ready("app", namespace, timeout=60)
    request = await request_rotation(cluster, namespace, "app")
    obj = await wait_rotated(cluster, namespace, "app", request=request)
    assert obj["status"]["rotation"]["baseVersions"][key] == token
    stages = aws_stages(env, key)
    assert "AWSPREVIOUS" in stages[token]
    current = sm.get_secret_value(SecretId=key, VersionStage="AWSCURRENT")
    new = json.loads(current["SecretString"])["password"]
    leaks.add(new)
    want = {"password": new.encode(), "password_previous": old.encode(), "username": b"app"}
    await _secret_with(cluster, namespace, "app", want, "the rotated Secret")

    await _lose(cluster, namespace, "app", "deleted")
    await _secret_with(
        cluster, namespace, "app", want, "the Secret deleted during grace, back with _previous"
    )
    assert aws_stages(env, key) == stages, "nothing more written to the source"


async def test_parameter_store_previous_value_is_version_n_minus_1(
    cluster: Cluster, env, namespace: str, leaks
) -> None:
    ssm = env.boto("ssm")
    name = f"/{namespace}/app/password"
    old = secrets.token_urlsafe(20)
    leaks.add(old)
    ssm.put_parameter(Name=name, Value=old, Type="SecureString")
    for doc in env.aws_store(namespace, name="ssm", service="ParameterStore"):
        await cluster.apply(doc, namespace)
    await cluster.apply(policy("pw", {"preset": "database-password", "gracePeriod": "1h"}), namespace)
    await cluster.apply(
        managed_secret(
            "app", store="ssm", policy_name="pw", data=[{"secretKey": "password", "remoteRef": {"key": name}}]
        ),
        namespace,
    )
    await cluster.ready("app", namespace, timeout=60)
    request = await request_rotation(cluster, namespace, "app")
    obj = await wait_rotated(cluster, namespace, "app", request=request)
    assert obj["status"]["rotation"]["baseVersions"][name] == "1"
    new = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    leaks.add(new)
    want = {"password": new.encode(), "password_previous": old.encode()}
    await _secret_with(cluster, namespace, "app", want, "the rotated Secret")

    await _lose(cluster, namespace, "app", "retyped")
    await _secret_with(
        cluster, namespace, "app", want, "the Secret re-typed during grace, back with _previous"
    )
    history = ssm.get_parameter_history(Name=name)["Parameters"]
    assert [h["Version"] for h in history] == [1, 2], "nothing more written to the source"


# --------------------------------------------------------------------------- Merge writers


def _merge_ms(name: str, secret_key: str, path: str) -> dict[str, Any]:
    return ms_manifest(
        name,
        target={"name": "shared", "creationPolicy": "Merge"},
        data=[data_item(secret_key, path, "value")],
        refresh={"policy": "Periodic", "interval": "2s"},
    )


async def test_two_merge_writers_keep_each_others_keys_and_a_shared_key_is_a_conflict(
    cluster: Cluster, env, namespace: str, leaks
) -> None:
    alpha, beta, gamma = (secrets.token_urlsafe(16) for _ in range(3))
    for value in (alpha, beta, gamma):
        leaks.add(value)
    kv2_write(env, f"{namespace}/a", {"value": alpha})
    kv2_write(env, f"{namespace}/b", {"value": beta})
    kv2_write(env, f"{namespace}/c", {"value": gamma})
    await cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "shared"},
            "data": {"config": base64.b64encode(b"debug=false").decode()},
        },
        namespace,
    )
    await apply_token_store(cluster, env, namespace)
    await cluster.apply(_merge_ms("a", "username", f"{namespace}/a"), namespace)
    await cluster.apply(_merge_ms("b", "password", f"{namespace}/b"), namespace)
    await cluster.ready("a", namespace, timeout=60)
    await cluster.ready("b", namespace, timeout=60)
    want = {"config": b"debug=false", "username": alpha.encode(), "password": beta.encode()}
    settled = await _secret_with(cluster, namespace, "shared", want, "both writers' keys in the Secret")
    annotations = settled["metadata"]["annotations"]
    assert annotations["rotor.dev/managed-keys.a"] == "username"
    assert annotations["rotor.dev/managed-keys.b"] == "password"

    # several refreshes of both (every 2 s): the Secret keeps both keys and is not rewritten
    await asyncio.sleep(8)
    later = await cluster.secret(namespace, "shared")
    assert later is not None
    assert later["metadata"]["resourceVersion"] == settled["metadata"]["resourceVersion"], "rewritten"

    # a third writer wants b's key: SecretConflict on it, naming b and the key; b keeps its value
    await cluster.apply(_merge_ms("c", "password", f"{namespace}/c"), namespace)
    ready = await cluster.wait_condition(
        "ManagedSecret", "c", namespace, status="False", reason="SecretConflict", timeout=45
    )
    assert "ManagedSecret 'b'" in ready["message"] and "key 'password'" in ready["message"], ready
    assert gamma not in ready["message"] and beta not in ready["message"]
    stalled = await cluster.condition("ManagedSecret", "c", namespace, "Stalled")
    assert stalled is not None and stalled["status"] == "True"
    await asyncio.sleep(4)
    assert await cluster.secret_data(namespace, "shared") == want
    b = await cluster.get("ManagedSecret", "b", namespace)
    assert condition(b, "Ready")["status"] == "True"
