"""Bad input never costs the last good Secret (DESIGN §2, §3, §4, §7): each case first makes a
ManagedSecret Ready with good data, then breaks it, and checks the documented Ready reason, a
message a person can act on, observedGeneration, and that the Secret is exactly as it was."""

from __future__ import annotations

import base64
import secrets
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from support.cluster import Cluster, wait_for
from support.objects import (
    apply_token_store,
    assert_unchanged,
    audit,
    data_item,
    metric,
    ms_manifest,
    root_cluster_store,
    stalled_status,
)
from support.rotation import kv2_write

pytestmark = pytest.mark.asyncio(loop_scope="session")
Kubectl = Callable[..., subprocess.CompletedProcess[str]]


# --------------------------------------------------------------------------- helpers


async def _good(
    cluster: Cluster, env, namespace: str, leaks, name: str = "app", **spec: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A Vault value, a token store 'vault' and a Ready ManagedSecret; returns (the Secret, its data)."""
    password = secrets.token_urlsafe(24)
    leaks.add(password)
    kv2_write(env, f"{namespace}/app", {"username": "app", "password": password})
    await apply_token_store(cluster, env, namespace)
    spec.setdefault("data", [data_item("password", f"{namespace}/app", "password")])
    await cluster.apply(ms_manifest(name, **spec), namespace)
    await cluster.ready(name, namespace)
    secret = await cluster.secret(namespace, name)
    assert secret is not None
    data = await cluster.secret_data(namespace, name)
    assert data is not None and data
    return secret, data


async def _broken(
    cluster: Cluster, namespace: str, name: str, reason: str, timeout: float = 30
) -> dict[str, Any]:
    """Wait for Ready=False with ``reason``; check the conditions carry the current generation."""
    cond = await cluster.wait_condition(
        "ManagedSecret", name, namespace, status="False", reason=reason, timeout=timeout
    )
    ms = await cluster.get("ManagedSecret", name, namespace)
    assert ms is not None
    generation = ms["metadata"]["generation"]
    assert ms["status"]["observedGeneration"] == generation
    for c in ms["status"]["conditions"]:
        if c["type"] in ("Ready", "Reconciling", "Stalled"):
            assert c["observedGeneration"] == generation, c
    assert cond["message"], cond
    return cond


async def _count(cluster: Cluster, namespace: str, name: str, reason: str) -> int:
    return (await cluster.event_reasons(namespace, name)).count(reason)


# --------------------------------------------------------------------------- the store


async def test_store_missing(cluster: Cluster, env, namespace: str, leaks) -> None:
    before, _ = await _good(cluster, env, namespace, leaks)
    await cluster.patch("ManagedSecret", "app", {"spec": {"storeRef": {"name": "no-such-store"}}}, namespace)
    cond = await _broken(cluster, namespace, "app", "StoreNotFound")
    assert "no-such-store" in cond["message"]
    await assert_unchanged(cluster, namespace, "app", before)


async def test_store_not_ready(cluster: Cluster, env, namespace: str, leaks) -> None:
    before, _ = await _good(cluster, env, namespace, leaks)
    wrong = "hvs." + secrets.token_urlsafe(24)
    leaks.add(wrong)
    await apply_token_store(cluster, env, namespace, "broken", token=wrong)
    await cluster.wait_condition("SecretStore", "broken", namespace, status="False")
    await cluster.patch("ManagedSecret", "app", {"spec": {"storeRef": {"name": "broken"}}}, namespace)
    cond = await _broken(cluster, namespace, "app", "StoreNotReady")
    assert "broken" in cond["message"]
    assert wrong not in cond["message"]
    await assert_unchanged(cluster, namespace, "app", before)


async def test_vault_unreachable_then_recovers(cluster: Cluster, env, namespace: str, leaks) -> None:
    before, _ = await _good(cluster, env, namespace, leaks)
    await cluster.patch(
        "SecretStore", "vault", {"spec": {"provider": {"vault": {"server": "http://127.0.0.1:1"}}}}, namespace
    )
    store_cond = await cluster.wait_condition(
        "SecretStore", "vault", namespace, status="False", reason="Unreachable"
    )
    assert "127.0.0.1:1" in store_cond["message"]
    await cluster.patch(
        "ManagedSecret", "app", {"metadata": {"annotations": {"rotor.dev/force-sync": "1"}}}, namespace
    )
    cond = await _broken(cluster, namespace, "app", "StoreNotReady")
    assert "vault" in cond["message"] and "Unreachable" in cond["message"]
    await assert_unchanged(cluster, namespace, "app", before)
    # meanwhile the source changes; once the store is fixed, the ManagedSecret recovers by itself
    fresh = secrets.token_urlsafe(24)
    leaks.add(fresh)
    kv2_write(env, f"{namespace}/app", {"username": "app", "password": fresh})
    await cluster.patch(
        "SecretStore", "vault", {"spec": {"provider": {"vault": {"server": env.vault_addr}}}}, namespace
    )
    await cluster.wait_condition("SecretStore", "vault", namespace, status="True", reason="Valid")
    await cluster.ready("app", namespace)

    async def fresh_data() -> bool:
        return await cluster.secret_data(namespace, "app") == {"password": fresh.encode()}

    await wait_for(fresh_data, what="the new value after recovery")


async def test_aws_unreachable(cluster: Cluster, env, namespace: str, leaks) -> None:
    value = secrets.token_urlsafe(20)
    leaks.add(value)
    key = f"{namespace}/app"
    env.boto("secretsmanager").create_secret(Name=key, SecretString=value)
    for doc in env.aws_store(namespace):
        await cluster.apply(doc, namespace)
    await cluster.apply(ms_manifest("app", "aws", data=[data_item("value", key)]), namespace)
    await cluster.ready("app", namespace)
    before = await cluster.secret(namespace, "app")
    assert before is not None
    await cluster.patch(
        "SecretStore", "aws", {"spec": {"provider": {"aws": {"endpoint": "http://127.0.0.1:1"}}}}, namespace
    )
    store_cond = await cluster.wait_condition("SecretStore", "aws", namespace, status="False", timeout=60)
    assert store_cond["reason"] == "Unreachable", store_cond
    assert "endpoint" in store_cond["message"] or "127.0.0.1:1" in store_cond["message"], store_cond
    await cluster.patch(
        "ManagedSecret", "app", {"metadata": {"annotations": {"rotor.dev/force-sync": "1"}}}, namespace
    )
    await _broken(cluster, namespace, "app", "StoreNotReady", timeout=60)
    await assert_unchanged(cluster, namespace, "app", before)


async def test_store_breaking_marks_its_managed_secrets_not_ready(
    cluster: Cluster, env, namespace: str, leaks
) -> None:
    before, _ = await _good(cluster, env, namespace, leaks)
    await cluster.patch(
        "SecretStore", "vault", {"spec": {"provider": {"vault": {"server": "http://127.0.0.1:1"}}}}, namespace
    )
    await cluster.wait_condition("SecretStore", "vault", namespace, status="False", reason="Unreachable")
    await _broken(cluster, namespace, "app", "StoreNotReady", timeout=20)
    await assert_unchanged(cluster, namespace, "app", before)


# --------------------------------------------------------------------------- the source


async def test_path_missing_and_sync_failed_event_posted_once(
    cluster: Cluster, env, namespace: str, leaks
) -> None:
    before, _ = await _good(cluster, env, namespace, leaks)
    missing = f"{namespace}/does-not-exist"
    await cluster.patch(
        "ManagedSecret", "app", {"spec": {"data": [data_item("password", missing, "password")]}}, namespace
    )
    errors0 = metric(env.operator, "rotor_sync_total", 'result="error"')
    cond = await _broken(cluster, namespace, "app", "KeyNotFound")
    assert missing in cond["message"]
    await assert_unchanged(cluster, namespace, "app", before)
    stalled = await cluster.condition("ManagedSecret", "app", namespace, "Reconciling")
    assert stalled is not None and stalled["status"] == "True", "a missing key is retried: Reconciling=True"
    assert await stalled_status(cluster, namespace, "app") == "False"

    # the operator retries (with backoff); the Event is posted on the transition only
    async def retried() -> bool:
        failed_reads = [r for r in audit(env.operator, namespace, "app") if r.get("remoteKey") == missing]
        return (
            len(failed_reads) >= 4
            and metric(env.operator, "rotor_sync_total", 'result="error"') >= errors0 + 4
        )

    await wait_for(retried, timeout=60, interval=0.5, what="three retries after the first failure")
    assert all(
        r.get("result") == "KeyNotFound"
        for r in audit(env.operator, namespace, "app")
        if r.get("remoteKey") == missing
    )
    assert await _count(cluster, namespace, "app", "SyncFailed") == 1
    await assert_unchanged(cluster, namespace, "app", before)


async def test_property_missing(cluster: Cluster, env, namespace: str, leaks) -> None:
    before, _ = await _good(cluster, env, namespace, leaks)
    await cluster.patch(
        "ManagedSecret",
        "app",
        {"spec": {"data": [data_item("password", f"{namespace}/app", "passwd")]}},
        namespace,
    )
    cond = await _broken(cluster, namespace, "app", "KeyNotFound")
    assert "passwd" in cond["message"] and f"{namespace}/app" in cond["message"]
    await assert_unchanged(cluster, namespace, "app", before)


async def test_value_failing_validation(cluster: Cluster, env, namespace: str, leaks) -> None:
    before, _ = await _good(
        cluster,
        env,
        namespace,
        leaks,
        data=[
            data_item(
                "password", f"{namespace}/app", "password", validate={"format": "min-length", "minLength": 24}
            )
        ],
    )
    short = "short-" + secrets.token_hex(4)
    leaks.add(short)
    kv2_write(env, f"{namespace}/app", {"username": "app", "password": short})
    await cluster.patch(
        "ManagedSecret", "app", {"metadata": {"annotations": {"rotor.dev/force-sync": "1"}}}, namespace
    )
    cond = await _broken(cluster, namespace, "app", "ValidationFailed")
    assert "password" in cond["message"] and "min-length" in cond["message"], cond
    assert short not in cond["message"]
    await assert_unchanged(cluster, namespace, "app", before)
    notes = await cluster.event_notes(namespace)
    assert not any(short in n for n in notes)


async def test_value_failing_certificate_rule(cluster: Cluster, env, namespace: str, leaks) -> None:
    """A value that is not a certificate, under pem-certificate: refused, named by key and rule."""
    before, _ = await _good(cluster, env, namespace, leaks)
    await cluster.patch(
        "ManagedSecret",
        "app",
        {
            "spec": {
                "data": [
                    data_item(
                        "password", f"{namespace}/app", "password", validate={"format": "pem-certificate"}
                    )
                ]
            }
        },
        namespace,
    )
    cond = await _broken(cluster, namespace, "app", "ValidationFailed")
    assert "password" in cond["message"] and "pem-certificate" in cond["message"], cond
    await assert_unchanged(cluster, namespace, "app", before)


async def test_template_error(cluster: Cluster, env, namespace: str, leaks) -> None:
    before, _ = await _good(cluster, env, namespace, leaks)
    await cluster.patch(
        "ManagedSecret",
        "app",
        {
            "spec": {
                "template": {"data": {"DATABASE_URL": "postgresql://{{ username }}:{{ password }}@db/app"}}
            }
        },
        namespace,
    )
    cond = await _broken(cluster, namespace, "app", "TemplateError")
    assert "DATABASE_URL" in cond["message"] and "username" in cond["message"], cond
    await assert_unchanged(cluster, namespace, "app", before)


async def test_secret_over_one_mib(cluster: Cluster, env, namespace: str, leaks) -> None:
    before, _ = await _good(
        cluster,
        env,
        namespace,
        leaks,
        data=[
            data_item("password", f"{namespace}/app", "password"),
            data_item("user", f"{namespace}/app", "username"),
        ],
    )
    # 1.1 MiB in all (Vault refuses a single JSON string that long, so two properties of 0.55 MiB)
    half = [secrets.token_hex(288_359) for _ in range(2)]
    leaks.add(*half)
    kv2_write(env, f"{namespace}/app", {"username": half[1], "password": half[0]})
    await cluster.patch(
        "ManagedSecret", "app", {"metadata": {"annotations": {"rotor.dev/force-sync": "big"}}}, namespace
    )
    cond = await _broken(cluster, namespace, "app", "ValidationFailed")
    assert "1 MiB" in cond["message"] and "password" in cond["message"], cond
    await assert_unchanged(cluster, namespace, "app", before)


# --------------------------------------------------------------------------- the target


async def test_target_secret_not_ours(cluster: Cluster, env, namespace: str, leaks) -> None:
    before, _ = await _good(cluster, env, namespace, leaks)
    foreign_value = secrets.token_urlsafe(16)
    leaks.add(foreign_value)
    foreign = (
        await cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "foreign", "labels": {"owner": "someone-else"}},
                "data": {"token": base64.b64encode(foreign_value.encode()).decode()},
            },
            namespace,
        )
    )[0]
    await cluster.patch("ManagedSecret", "app", {"spec": {"target": {"name": "foreign"}}}, namespace)
    cond = await _broken(cluster, namespace, "app", "SecretConflict")
    assert "foreign" in cond["message"], cond
    stalled = await cluster.condition("ManagedSecret", "app", namespace, "Stalled")
    assert stalled is not None and stalled["status"] == "True" and stalled["reason"] == "SecretConflict"
    await assert_unchanged(cluster, namespace, "foreign", foreign)
    after = await cluster.secret(namespace, "foreign")
    assert after is not None and after["metadata"].get("labels") == {"owner": "someone-else"}
    assert not after["metadata"].get("ownerReferences")
    # the previous target is left as it was
    await assert_unchanged(cluster, namespace, "app", before)


async def test_service_account_token_type_refused_at_apply(kubectl_run: Kubectl, namespace: str) -> None:
    manifest = yaml.safe_dump(
        ms_manifest(
            "sa", target={"type": "kubernetes.io/service-account-token"}, data=[data_item("token", "apps/x")]
        )
        | {"metadata": {"name": "sa", "namespace": namespace}}
    )
    result = kubectl_run("apply", "-f", "-", input_=manifest)
    assert result.returncode != 0
    assert "kubernetes.io/service-account-token is refused" in result.stderr, result.stderr


# --------------------------------------------------------------------------- tenancy


async def test_cluster_store_namespace_not_allowed(cluster: Cluster, env, namespace: str, leaks) -> None:
    value = secrets.token_urlsafe(16)
    leaks.add(value)
    kv2_write(env, f"{namespace}/app", {"password": value})
    store = await root_cluster_store(
        cluster, env, namespace, kv=False, conditions=[{"namespaces": ["some-other-namespace"]}]
    )
    try:
        await cluster.apply(
            ms_manifest(
                "app",
                store,
                "ClusterSecretStore",
                data=[data_item("password", f"{namespace}/app", "password")],
            ),
            namespace,
        )
        cond = await _broken(cluster, namespace, "app", "Forbidden")
        assert namespace in cond["message"] and store in cond["message"], cond
        assert await stalled_status(cluster, namespace, "app") == "True"
        assert await cluster.secret(namespace, "app") is None
        assert audit(env.operator, namespace, "app") == [], "a forbidden ManagedSecret read the backend"
        # once the store allows the namespace, the ManagedSecret recovers, and its read is audited
        await cluster.patch(
            "ClusterSecretStore", store, {"spec": {"conditions": [{"namespaces": [namespace]}]}}
        )
        await cluster.ready("app", namespace)
        assert await cluster.secret_data(namespace, "app") == {"password": value.encode()}
        reads = audit(env.operator, namespace, "app")
        assert reads and reads[0]["remoteKey"] == f"{namespace}/app" and reads[0]["store"], reads
    finally:
        await cluster.delete("ClusterSecretStore", store)


async def test_cluster_store_key_outside_allowed_keys(cluster: Cluster, env, namespace: str, leaks) -> None:
    mine, theirs = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    leaks.add(mine, theirs)
    kv2_write(env, f"tenants/{namespace}/app", {"password": mine})
    kv2_write(env, f"tenants/not-{namespace}/app", {"password": theirs})
    store = await root_cluster_store(
        cluster,
        env,
        namespace,
        kv=False,
        conditions=[{"namespaces": [namespace]}],
        allowedKeys=["tenants/{namespace}/*"],
    )
    try:
        await cluster.apply(
            ms_manifest(
                "app",
                store,
                "ClusterSecretStore",
                data=[data_item("password", f"tenants/{namespace}/app", "password")],
            ),
            namespace,
        )
        await cluster.ready("app", namespace)
        before = await cluster.secret(namespace, "app")
        assert before is not None
        assert [
            r
            for r in audit(env.operator, namespace, "app")
            if r.get("remoteKey") == f"tenants/{namespace}/app"
        ]
        outside = f"tenants/not-{namespace}/app"
        await cluster.patch(
            "ManagedSecret",
            "app",
            {"spec": {"data": [data_item("password", outside, "password")]}},
            namespace,
        )
        cond = await _broken(cluster, namespace, "app", "Forbidden")
        assert outside in cond["message"] and "allowedKeys" in cond["message"], cond
        assert await stalled_status(cluster, namespace, "app") == "True"
        await assert_unchanged(cluster, namespace, "app", before)
        reads = [r for r in audit(env.operator, namespace, "app") if r.get("remoteKey") == outside]
        assert reads == [], "a key outside allowedKeys was read"
        # dataFrom.find through the same store cannot reach outside either
        await cluster.apply(
            ms_manifest("finder", store, "ClusterSecretStore", dataFrom=[{"find": {"path": "tenants/"}}]),
            namespace,
        )
        await _broken(cluster, namespace, "finder", "Forbidden")
        assert await cluster.secret(namespace, "finder") is None
        assert not [r for r in audit(env.operator, namespace, "finder") if r.get("remoteKey") == outside]
    finally:
        await cluster.delete("ClusterSecretStore", store)
