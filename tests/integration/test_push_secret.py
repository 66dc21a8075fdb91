"""PushSecret (DESIGN §11, docs/push.md) against the real apiserver, Vault and the AWS emulator:

- a push per backend (Vault KV v2 property, Secrets Manager whole value, SSM parameter);
- no second write while the Secret's data is unchanged (remote versions counted), a change is a
  new version, found through the Secret watch;
- IfNotExists never overwrites (RemoteConflict, remote unchanged); a Vault value someone else
  wrote since the last push is RemoteConflict under IfNotExists and put back under Replace;
- a remote key outside a ClusterSecretStore's allowedKeys is Forbidden with nothing written;
- a missing Secret or key is SecretMissing / KeyMissing, and the last good status is kept;
- deletionPolicy Delete removes what was pushed (only the pushed property where others remain).
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

import hvac.exceptions
import pytest

from support.cluster import Cluster, wait_for
from support.environment import TestEnvironment
from support.leaks import LeakRegistry
from support.objects import API, audit, root_cluster_store
from support.rotation import aws_current, kv2_current, kv2_write

pytestmark = pytest.mark.asyncio(loop_scope="session")


# ---------------------------------------------------------------------------------------------- helpers
def _value(leaks: LeakRegistry) -> str:
    value = secrets.token_urlsafe(18)
    leaks.add(value)
    return value


def _secret(name: str, data: dict[str, str], labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": labels or {}},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def _push(
    name: str, store: str, data: list[dict[str, Any]], *, kind: str | None = None, **spec: Any
) -> dict[str, Any]:
    ref = {"name": store} if kind is None else {"name": store, "kind": kind}
    return {
        "apiVersion": API,
        "kind": "PushSecret",
        "metadata": {"name": name},
        "spec": {"storeRef": ref, "selector": {"secret": {"name": "source"}}, "data": data, **spec},
    }


def _item(secret_key: str, key: str, prop: str | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"key": key}
    if prop is not None:
        ref["property"] = prop
    return {"secretKey": secret_key, "remoteRef": ref}


async def _status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    obj = await cluster.get("PushSecret", name, namespace)
    assert obj is not None
    return dict(obj.get("status") or {})


def _reads(env: TestEnvironment, namespace: str, name: str) -> int:
    return len(audit(env.operator, namespace, name, verb="push-read"))


async def _touch_and_wait_for_reconcile(
    cluster: Cluster, env: TestEnvironment, namespace: str, name: str, data: dict[str, str]
) -> None:
    """Change the Secret's labels only (same data) and wait until the PushSecret looked again,
    twice: one PushSecret is reconciled by one worker at a time, so the second look starts only
    after the first (and any write it made) has finished."""
    for _ in range(2):
        before = _reads(env, namespace, name)
        await cluster.apply(_secret("source", data, {"touched": secrets.token_hex(4)}), namespace)

        async def looked(before: int = before) -> bool:
            return _reads(env, namespace, name) > before

        await wait_for(looked, timeout=30, what="the PushSecret to reconcile after the Secret changed")


def _kv_versions(env: TestEnvironment, path: str) -> int:
    meta = env.vault_client().secrets.kv.v2.read_secret_metadata(path=path, mount_point="secret")
    return len(meta["data"]["versions"])


def _kv_gone(env: TestEnvironment, path: str) -> bool:
    try:
        env.vault_client().secrets.kv.v2.read_secret_metadata(path=path, mount_point="secret")
    except hvac.exceptions.InvalidPath:
        return True
    return False


async def _vault_store(cluster: Cluster, env: TestEnvironment, namespace: str) -> None:
    for doc in env.vault_token_store(namespace):
        await cluster.apply(doc, namespace)
    await cluster.wait_condition("SecretStore", "vault", namespace, reason="Valid")


# ---------------------------------------------------------------------------------------------- Vault
async def test_vault_push_writes_once_and_a_change_is_a_new_version(
    cluster: Cluster, env: TestEnvironment, namespace: str, leaks: LeakRegistry
) -> None:
    await _vault_store(cluster, env, namespace)
    first = _value(leaks)
    path = f"{namespace}/partner"
    await cluster.apply(_secret("source", {"api-key": first}), namespace)
    await cluster.apply(_push("partner", "vault", [_item("api-key", path, "api-key")]), namespace)
    await cluster.wait_condition("PushSecret", "partner", namespace, reason="Pushed")
    assert kv2_current(env, path) == (1, {"api-key": first})
    status = await _status(cluster, namespace, "partner")
    assert [(p["remoteKey"], p["version"]) for p in status["pushed"]] == [(path, "1")]
    assert status["dataHash"].startswith("hmac-sha256:") and status["lastPushTime"]
    assert status["observedGeneration"] == 1
    assert "Pushed" in await cluster.event_reasons(namespace, "partner")

    # unchanged data: looked at again, nothing written
    await _touch_and_wait_for_reconcile(cluster, env, namespace, "partner", {"api-key": first})
    assert _kv_versions(env, path) == 1
    assert (await _status(cluster, namespace, "partner"))["dataHash"] == status["dataHash"]

    # a change of the Secret is pushed (through the watch) as a new version
    second = _value(leaks)
    await cluster.apply(_secret("source", {"api-key": second}), namespace)

    async def pushed() -> bool:
        return kv2_current(env, path) == (2, {"api-key": second})

    await wait_for(pushed, timeout=30, what="the changed value pushed as version 2")

    async def recorded() -> bool:
        s = await _status(cluster, namespace, "partner")
        return [p["version"] for p in s.get("pushed") or []] == ["2"] and s["dataHash"] != status["dataHash"]

    await wait_for(recorded, timeout=30, what="status.pushed at version 2")


async def test_if_not_exists_never_overwrites_an_existing_remote(
    cluster: Cluster, env: TestEnvironment, namespace: str, leaks: LeakRegistry
) -> None:
    await _vault_store(cluster, env, namespace)
    theirs, mine = _value(leaks), _value(leaks)
    path = f"{namespace}/existing"
    kv2_write(env, path, {"api-key": theirs})
    await cluster.apply(_secret("source", {"api-key": mine}), namespace)
    await cluster.apply(
        _push("keep", "vault", [_item("api-key", path, "api-key")], updatePolicy="IfNotExists"), namespace
    )
    cond = await cluster.wait_condition(
        "PushSecret", "keep", namespace, status="False", reason="RemoteConflict"
    )
    assert path in cond["message"] and "IfNotExists" in cond["message"]
    assert mine not in cond["message"] and theirs not in cond["message"]
    assert kv2_current(env, path) == (1, {"api-key": theirs})
    assert audit(env.operator, namespace, "keep", verb="push") == []


async def test_vault_value_written_by_someone_else(
    cluster: Cluster, env: TestEnvironment, namespace: str, leaks: LeakRegistry
) -> None:
    """Since the last push someone else wrote the remote: IfNotExists reports RemoteConflict and
    leaves it; Replace writes the Secret's value again (check-and-set on the version it read) and
    says so in a RemoteOverwritten Event."""
    await _vault_store(cluster, env, namespace)
    mine, theirs = _value(leaks), _value(leaks)
    cautious, replacing = f"{namespace}/cautious", f"{namespace}/replacing"
    await cluster.apply(_secret("source", {"api-key": mine}), namespace)
    await cluster.apply(
        _push("cautious", "vault", [_item("api-key", cautious, "api-key")], updatePolicy="IfNotExists"),
        namespace,
    )
    await cluster.apply(_push("replacing", "vault", [_item("api-key", replacing, "api-key")]), namespace)
    for name in ("cautious", "replacing"):
        await cluster.wait_condition("PushSecret", name, namespace, reason="Pushed")
    assert kv2_current(env, cautious) == (1, {"api-key": mine})
    kv2_write(env, cautious, {"api-key": theirs})
    kv2_write(env, replacing, {"api-key": theirs})
    # the next look (a Secret change: a new key that is not pushed) sees version 2
    await cluster.apply(_secret("source", {"api-key": mine, "other": "x"}), namespace)
    await cluster.wait_condition("PushSecret", "cautious", namespace, status="False", reason="RemoteConflict")
    assert kv2_current(env, cautious) == (2, {"api-key": theirs}), "IfNotExists overwrote"

    async def restored() -> bool:
        return kv2_current(env, replacing) == (3, {"api-key": mine})

    await wait_for(restored, timeout=30, what="Replace to write the Secret's value as version 3")
    await cluster.wait_condition("PushSecret", "replacing", namespace, reason="Pushed")
    assert "RemoteOverwritten" in await cluster.event_reasons(namespace, "replacing")


# ---------------------------------------------------------------------------------------------- AWS
async def test_secrets_manager_push_whole_value(
    cluster: Cluster, env: TestEnvironment, namespace: str, leaks: LeakRegistry
) -> None:
    for doc in env.aws_store(namespace):
        await cluster.apply(doc, namespace)
    await cluster.wait_condition("SecretStore", "aws", namespace, reason="Valid")
    sm = env.boto("secretsmanager")
    key = f"{namespace}/partner"
    first = _value(leaks)
    await cluster.apply(_secret("source", {"token": first}), namespace)
    await cluster.apply(_push("sm", "aws", [_item("token", key)]), namespace)
    await cluster.wait_condition("PushSecret", "sm", namespace, reason="Pushed")
    assert aws_current(env, key)[1] == first

    def versions() -> int:
        return len(sm.list_secret_version_ids(SecretId=key)["Versions"])

    assert versions() == 1
    await _touch_and_wait_for_reconcile(cluster, env, namespace, "sm", {"token": first})
    assert versions() == 1, "an unchanged Secret was pushed again"
    second = _value(leaks)
    await cluster.apply(_secret("source", {"token": second}), namespace)

    async def pushed() -> bool:
        return aws_current(env, key)[1] == second

    await wait_for(pushed, timeout=30, what="the changed value in Secrets Manager")
    current = aws_current(env, key)[0]

    async def recorded() -> bool:
        s = await _status(cluster, namespace, "sm")
        return [p["version"] for p in s.get("pushed") or []] == [current]

    await wait_for(recorded, timeout=30, what="status.pushed naming the new VersionId")


async def test_parameter_store_push_and_delete(
    cluster: Cluster, env: TestEnvironment, namespace: str, leaks: LeakRegistry
) -> None:
    for doc in env.aws_store(namespace, "ssm", service="ParameterStore"):
        await cluster.apply(doc, namespace)
    await cluster.wait_condition("SecretStore", "ssm", namespace, reason="Valid")
    ssm = env.boto("ssm")
    name = f"/{namespace}/partner/token"
    first = _value(leaks)
    await cluster.apply(_secret("source", {"token": first}), namespace)
    await cluster.apply(_push("ssm", "ssm", [_item("token", name)], deletionPolicy="Delete"), namespace)
    await cluster.wait_condition("PushSecret", "ssm", namespace, reason="Pushed")
    param = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
    assert param["Value"] == first and param["Version"] == 1
    await _touch_and_wait_for_reconcile(cluster, env, namespace, "ssm", {"token": first})
    assert ssm.get_parameter(Name=name)["Parameter"]["Version"] == 1
    second = _value(leaks)
    await cluster.apply(_secret("source", {"token": second}), namespace)

    async def pushed() -> bool:
        p = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
        return p["Value"] == second and p["Version"] == 2

    await wait_for(pushed, timeout=30, what="the changed value as parameter version 2")
    await cluster.wait_condition("PushSecret", "ssm", namespace, reason="Pushed")

    async def recorded() -> bool:
        s = await _status(cluster, namespace, "ssm")
        return [p["version"] for p in s.get("pushed") or []] == ["2"]

    await wait_for(recorded, timeout=30, what="status.pushed at version 2")
    await cluster.delete("PushSecret", "ssm", namespace)

    async def gone() -> bool:
        if await cluster.get("PushSecret", "ssm", namespace) is not None:
            return False
        return not ssm.get_parameters(Names=[name])["Parameters"]

    await wait_for(gone, timeout=30, what="the parameter deleted with the PushSecret")


# ---------------------------------------------------------------------------------------------- tenancy
async def test_push_outside_allowed_keys_is_forbidden_with_no_write(
    cluster: Cluster, env: TestEnvironment, namespace: str, leaks: LeakRegistry
) -> None:
    store = await root_cluster_store(
        cluster,
        env,
        namespace,
        secret="css-token",
        conditions=[{"namespaces": [namespace]}],
        allowedKeys=["tenants/{namespace}/*"],
    )
    try:
        value = _value(leaks)
        await cluster.apply(_secret("source", {"api-key": value}), namespace)
        outside = f"elsewhere/{namespace}/stolen"
        await cluster.apply(
            _push("escape", store, [_item("api-key", outside, "api-key")], kind="ClusterSecretStore"),
            namespace,
        )
        cond = await cluster.wait_condition(
            "PushSecret", "escape", namespace, status="False", reason="Forbidden"
        )
        assert "allowedKeys" in cond["message"] and value not in cond["message"]
        dotted = f"tenants/{namespace}/../x"
        await cluster.apply(
            _push("dots", store, [_item("api-key", dotted, "api-key")], kind="ClusterSecretStore"), namespace
        )
        await cluster.wait_condition("PushSecret", "dots", namespace, status="False", reason="Forbidden")
        assert _kv_gone(env, outside), "a push outside allowedKeys reached Vault"
        assert _kv_gone(env, f"tenants/{namespace}/x") and _kv_gone(env, "tenants/x")
        for name in ("escape", "dots"):
            assert audit(env.operator, namespace, name, verb="push") == []
            assert audit(env.operator, namespace, name, verb="push-read") == []
        # inside allowedKeys the same store pushes
        inside = f"tenants/{namespace}/partner"
        await cluster.apply(
            _push("inside", store, [_item("api-key", inside, "api-key")], kind="ClusterSecretStore"),
            namespace,
        )
        await cluster.wait_condition("PushSecret", "inside", namespace, reason="Pushed")
        assert kv2_current(env, inside) == (1, {"api-key": value})
    finally:
        await cluster.delete("ClusterSecretStore", store)


# ---------------------------------------------------------------------------------------------- bad input
async def test_missing_secret_and_key_keep_the_last_good_status(
    cluster: Cluster, env: TestEnvironment, namespace: str, leaks: LeakRegistry
) -> None:
    await _vault_store(cluster, env, namespace)
    path = f"{namespace}/later"
    await cluster.apply(_push("later", "vault", [_item("api-key", path, "api-key")]), namespace)
    cond = await cluster.wait_condition(
        "PushSecret", "later", namespace, status="False", reason="SecretMissing"
    )
    assert "source" in cond["message"]
    assert _kv_gone(env, path)
    # the Secret appears: the watch pushes it
    value = _value(leaks)
    await cluster.apply(_secret("source", {"api-key": value}), namespace)
    await cluster.wait_condition("PushSecret", "later", namespace, reason="Pushed")
    good = await _status(cluster, namespace, "later")
    # the key goes away: KeyMissing, nothing pushed, pushed/dataHash kept
    await cluster.apply(_secret("source", {"renamed": value}), namespace)
    cond = await cluster.wait_condition("PushSecret", "later", namespace, status="False", reason="KeyMissing")
    assert "api-key" in cond["message"] and value not in cond["message"]
    now = await _status(cluster, namespace, "later")
    assert now["pushed"] == good["pushed"] and now["dataHash"] == good["dataHash"]
    assert kv2_current(env, path) == (1, {"api-key": value})


# ---------------------------------------------------------------------------------------------- deletion
async def test_deletion_policy_delete_removes_what_was_pushed(
    cluster: Cluster, env: TestEnvironment, namespace: str, leaks: LeakRegistry
) -> None:
    await _vault_store(cluster, env, namespace)
    whole, shared = f"{namespace}/own", f"{namespace}/shared"
    kept = _value(leaks)
    kv2_write(env, shared, {"owner": kept})
    value = _value(leaks)
    await cluster.apply(_secret("source", {"api-key": value, "token": value + "t"}), namespace)
    leaks.add(value + "t")
    await cluster.apply(
        _push(
            "cleanup",
            "vault",
            [_item("api-key", whole, "api-key"), _item("token", shared, "token")],
            deletionPolicy="Delete",
        ),
        namespace,
    )
    await cluster.wait_condition("PushSecret", "cleanup", namespace, reason="Pushed")
    obj = await cluster.get("PushSecret", "cleanup", namespace)
    assert obj is not None and "rotor.dev/finalizer" in obj["metadata"]["finalizers"]
    assert kv2_current(env, shared) == (2, {"owner": kept, "token": value + "t"})
    await cluster.delete("PushSecret", "cleanup", namespace)

    async def gone() -> bool:
        return await cluster.get("PushSecret", "cleanup", namespace) is None

    await wait_for(gone, timeout=30, what="the PushSecret to be deleted")
    assert _kv_gone(env, whole), "the key Rotor pushed whole is still there"
    assert kv2_current(env, shared) == (3, {"owner": kept}), "only the pushed property goes"
