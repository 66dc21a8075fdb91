"""Bad input never costs the last good Secret (DESIGN §2, §3, §4, §7): each case first makes a
ManagedSecret Ready with good data, then breaks it, and checks the documented Ready reason, a
message a person can act on, observedGeneration, and that the Secret is exactly as it was."""

from __future__ import annotations

import base64
import json
import re
import secrets
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from support.cluster import Cluster, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")

API = "rotor.dev/v1alpha1"
Kubectl = Callable[..., subprocess.CompletedProcess[str]]


# --------------------------------------------------------------------------- helpers


def _ms(name: str, store: str = "vault", kind: str = "SecretStore", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "ManagedSecret",
        "metadata": {"name": name},
        "spec": {"storeRef": {"name": store, "kind": kind}, **spec},
    }


def _item(secret_key: str, key: str, prop: str | None = None, **extra: Any) -> dict[str, Any]:
    ref: dict[str, Any] = {"key": key}
    if prop is not None:
        ref["property"] = prop
    return {"secretKey": secret_key, "remoteRef": ref, **extra}


def _kv2(env, path: str, data: dict[str, str]) -> None:
    env.vault_client().secrets.kv.v2.create_or_update_secret(path=path, secret=data, mount_point="secret")


async def _good(
    cluster: Cluster, env, namespace: str, leaks, name: str = "app", **spec: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A Vault value, a token store 'vault' and a Ready ManagedSecret; returns (the Secret, its data)."""
    password = secrets.token_urlsafe(24)
    leaks.add(password)
    _kv2(env, f"{namespace}/app", {"username": "app", "password": password})
    for doc in env.vault_token_store(namespace):
        await cluster.apply(doc, namespace)
    spec.setdefault("data", [_item("password", f"{namespace}/app", "password")])
    await cluster.apply(_ms(name, **spec), namespace)
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


async def _unchanged(cluster: Cluster, namespace: str, name: str, before: dict[str, Any]) -> None:
    after = await cluster.secret(namespace, name)
    assert after is not None, "the last good Secret was deleted"
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"], (
        "the Secret was written"
    )
    assert after.get("data") == before.get("data")


async def _stalled(cluster: Cluster, namespace: str, name: str) -> str | None:
    cond = await cluster.condition("ManagedSecret", name, namespace, "Stalled")
    return cond["status"] if cond else None


def _audit(env, namespace: str, name: str, *, verb: str = "read") -> list[dict[str, Any]]:
    out = []
    for line in env.operator.log_text().splitlines():
        if '"audit' not in line:
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("verb") == verb and rec.get("managedSecret") == f"{namespace}/{name}":
            out.append(rec)
    return out


def _metric(env, name: str, labels: str) -> float:
    pattern = re.compile(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} ([0-9.e+-]+)$", re.M)
    match = pattern.search(env.operator.metrics())
    return float(match.group(1)) if match else 0.0


async def _count(cluster: Cluster, namespace: str, name: str, reason: str) -> int:
    return (await cluster.event_reasons(namespace, name)).count(reason)


# --------------------------------------------------------------------------- the store


async def test_store_missing(cluster: Cluster, env, namespace: str, leaks) -> None:
    before, _ = await _good(cluster, env, namespace, leaks)
    await cluster.patch("ManagedSecret", "app", {"spec": {"storeRef": {"name": "no-such-store"}}}, namespace)
    cond = await _broken(cluster, namespace, "app", "StoreNotFound")
    assert "no-such-store" in cond["message"]
    await _unchanged(cluster, namespace, "app", before)


async def test_store_not_ready(cluster: Cluster, env, namespace: str, leaks) -> None:
    before, _ = await _good(cluster, env, namespace, leaks)
    wrong = "hvs." + secrets.token_urlsafe(24)
    leaks.add(wrong)
    for doc in env.vault_token_store(namespace, "broken", token=wrong):
        await cluster.apply(doc, namespace)
    await cluster.wait_condition("SecretStore", "broken", namespace, status="False")
    await cluster.patch("ManagedSecret", "app", {"spec": {"storeRef": {"name": "broken"}}}, namespace)
    cond = await _broken(cluster, namespace, "app", "StoreNotReady")
    assert "broken" in cond["message"]
    assert wrong not in cond["message"]
    await _unchanged(cluster, namespace, "app", before)


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
    await _unchanged(cluster, namespace, "app", before)
    # meanwhile the source changes; once the store is fixed, the ManagedSecret recovers by itself
    fresh = secrets.token_urlsafe(24)
    leaks.add(fresh)
    _kv2(env, f"{namespace}/app", {"username": "app", "password": fresh})
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
    await cluster.apply(_ms("app", "aws", data=[_item("value", key)]), namespace)
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
    await _unchanged(cluster, namespace, "app", before)


async def test_store_breaking_marks_its_managed_secrets_not_ready(
    cluster: Cluster, env, namespace: str, leaks
) -> None:
    before, _ = await _good(cluster, env, namespace, leaks)
    await cluster.patch(
        "SecretStore", "vault", {"spec": {"provider": {"vault": {"server": "http://127.0.0.1:1"}}}}, namespace
    )
    await cluster.wait_condition("SecretStore", "vault", namespace, status="False", reason="Unreachable")
    await _broken(cluster, namespace, "app", "StoreNotReady", timeout=20)
    await _unchanged(cluster, namespace, "app", before)


# --------------------------------------------------------------------------- the source


async def test_path_missing_and_sync_failed_event_posted_once(
    cluster: Cluster, env, namespace: str, leaks
) -> None:
    before, _ = await _good(cluster, env, namespace, leaks)
    missing = f"{namespace}/does-not-exist"
    await cluster.patch(
        "ManagedSecret", "app", {"spec": {"data": [_item("password", missing, "password")]}}, namespace
    )
    errors0 = _metric(env, "rotor_sync_total", 'result="error"')
    cond = await _broken(cluster, namespace, "app", "KeyNotFound")
    assert missing in cond["message"]
    await _unchanged(cluster, namespace, "app", before)
    stalled = await cluster.condition("ManagedSecret", "app", namespace, "Reconciling")
    assert stalled is not None and stalled["status"] == "True", "a missing key is retried: Reconciling=True"
    assert await _stalled(cluster, namespace, "app") == "False"

    # the operator retries (with backoff); the Event is posted on the transition only
    async def retried() -> bool:
        failed_reads = [r for r in _audit(env, namespace, "app") if r.get("remoteKey") == missing]
        return len(failed_reads) >= 4 and _metric(env, "rotor_sync_total", 'result="error"') >= errors0 + 4

    await wait_for(retried, timeout=60, interval=0.5, what="three retries after the first failure")
    assert all(
        r.get("result") == "KeyNotFound"
        for r in _audit(env, namespace, "app")
        if r.get("remoteKey") == missing
    )
    assert await _count(cluster, namespace, "app", "SyncFailed") == 1
    await _unchanged(cluster, namespace, "app", before)


async def test_property_missing(cluster: Cluster, env, namespace: str, leaks) -> None:
    before, _ = await _good(cluster, env, namespace, leaks)
    await cluster.patch(
        "ManagedSecret",
        "app",
        {"spec": {"data": [_item("password", f"{namespace}/app", "passwd")]}},
        namespace,
    )
    cond = await _broken(cluster, namespace, "app", "KeyNotFound")
    assert "passwd" in cond["message"] and f"{namespace}/app" in cond["message"]
    await _unchanged(cluster, namespace, "app", before)


async def test_value_failing_validation(cluster: Cluster, env, namespace: str, leaks) -> None:
    before, _ = await _good(
        cluster,
        env,
        namespace,
        leaks,
        data=[
            _item(
                "password", f"{namespace}/app", "password", validate={"format": "min-length", "minLength": 24}
            )
        ],
    )
    short = "short-" + secrets.token_hex(4)
    leaks.add(short)
    _kv2(env, f"{namespace}/app", {"username": "app", "password": short})
    await cluster.patch(
        "ManagedSecret", "app", {"metadata": {"annotations": {"rotor.dev/force-sync": "1"}}}, namespace
    )
    cond = await _broken(cluster, namespace, "app", "ValidationFailed")
    assert "password" in cond["message"] and "min-length" in cond["message"], cond
    assert short not in cond["message"]
    await _unchanged(cluster, namespace, "app", before)
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
                    _item("password", f"{namespace}/app", "password", validate={"format": "pem-certificate"})
                ]
            }
        },
        namespace,
    )
    cond = await _broken(cluster, namespace, "app", "ValidationFailed")
    assert "password" in cond["message"] and "pem-certificate" in cond["message"], cond
    await _unchanged(cluster, namespace, "app", before)


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
    await _unchanged(cluster, namespace, "app", before)


async def test_secret_over_one_mib(cluster: Cluster, env, namespace: str, leaks) -> None:
    before, _ = await _good(
        cluster,
        env,
        namespace,
        leaks,
        data=[
            _item("password", f"{namespace}/app", "password"),
            _item("user", f"{namespace}/app", "username"),
        ],
    )
    # 1.1 MiB in all (Vault refuses a single JSON string that long, so two properties of 0.55 MiB)
    half = [secrets.token_hex(288_359) for _ in range(2)]
    leaks.add(*half)
    _kv2(env, f"{namespace}/app", {"username": half[1], "password": half[0]})
    await cluster.patch(
        "ManagedSecret", "app", {"metadata": {"annotations": {"rotor.dev/force-sync": "big"}}}, namespace
    )
    cond = await _broken(cluster, namespace, "app", "ValidationFailed")
    assert "1 MiB" in cond["message"] and "password" in cond["message"], cond
    await _unchanged(cluster, namespace, "app", before)


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
    await _unchanged(cluster, namespace, "foreign", foreign)
    after = await cluster.secret(namespace, "foreign")
    assert after is not None and after["metadata"].get("labels") == {"owner": "someone-else"}
    assert not after["metadata"].get("ownerReferences")
    # the previous target is left as it was
    await _unchanged(cluster, namespace, "app", before)


async def test_service_account_token_type_refused_at_apply(kubectl_run: Kubectl, namespace: str) -> None:
    manifest = yaml.safe_dump(
        _ms("sa", target={"type": "kubernetes.io/service-account-token"}, data=[_item("token", "apps/x")])
        | {"metadata": {"name": "sa", "namespace": namespace}}
    )
    result = kubectl_run("apply", "-f", "-", input_=manifest)
    assert result.returncode != 0
    assert "kubernetes.io/service-account-token is refused" in result.stderr, result.stderr


# --------------------------------------------------------------------------- tenancy


async def _cluster_store(cluster: Cluster, env, namespace: str, **spec: Any) -> str:
    name = f"css-{namespace}"[:63]
    await cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "root-token"},
            "data": {"token": base64.b64encode(b"rotor-dev-root").decode()},
        },
        namespace,
    )
    await cluster.apply(
        {
            "apiVersion": API,
            "kind": "ClusterSecretStore",
            "metadata": {"name": name},
            "spec": {
                "provider": {
                    "vault": {
                        "server": env.vault_addr,
                        "auth": {
                            "token": {
                                "secretRef": {"name": "root-token", "key": "token", "namespace": namespace}
                            }
                        },
                    }
                },
                **spec,
            },
        }
    )
    await cluster.wait_condition("ClusterSecretStore", name, None, status="True", reason="Valid")
    return name


async def test_cluster_store_namespace_not_allowed(cluster: Cluster, env, namespace: str, leaks) -> None:
    value = secrets.token_urlsafe(16)
    leaks.add(value)
    _kv2(env, f"{namespace}/app", {"password": value})
    store = await _cluster_store(
        cluster, env, namespace, conditions=[{"namespaces": ["some-other-namespace"]}]
    )
    try:
        await cluster.apply(
            _ms("app", store, "ClusterSecretStore", data=[_item("password", f"{namespace}/app", "password")]),
            namespace,
        )
        cond = await _broken(cluster, namespace, "app", "Forbidden")
        assert namespace in cond["message"] and store in cond["message"], cond
        assert await _stalled(cluster, namespace, "app") == "True"
        assert await cluster.secret(namespace, "app") is None
        assert _audit(env, namespace, "app") == [], "a forbidden ManagedSecret read the backend"
        # once the store allows the namespace, the ManagedSecret recovers, and its read is audited
        await cluster.patch(
            "ClusterSecretStore", store, {"spec": {"conditions": [{"namespaces": [namespace]}]}}
        )
        await cluster.ready("app", namespace)
        assert await cluster.secret_data(namespace, "app") == {"password": value.encode()}
        reads = _audit(env, namespace, "app")
        assert reads and reads[0]["remoteKey"] == f"{namespace}/app" and reads[0]["store"], reads
    finally:
        await cluster.delete("ClusterSecretStore", store)


async def test_cluster_store_key_outside_allowed_keys(cluster: Cluster, env, namespace: str, leaks) -> None:
    mine, theirs = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    leaks.add(mine, theirs)
    _kv2(env, f"tenants/{namespace}/app", {"password": mine})
    _kv2(env, f"tenants/not-{namespace}/app", {"password": theirs})
    store = await _cluster_store(
        cluster,
        env,
        namespace,
        conditions=[{"namespaces": [namespace]}],
        allowedKeys=["tenants/{namespace}/*"],
    )
    try:
        await cluster.apply(
            _ms(
                "app",
                store,
                "ClusterSecretStore",
                data=[_item("password", f"tenants/{namespace}/app", "password")],
            ),
            namespace,
        )
        await cluster.ready("app", namespace)
        before = await cluster.secret(namespace, "app")
        assert before is not None
        assert [r for r in _audit(env, namespace, "app") if r.get("remoteKey") == f"tenants/{namespace}/app"]
        outside = f"tenants/not-{namespace}/app"
        await cluster.patch(
            "ManagedSecret", "app", {"spec": {"data": [_item("password", outside, "password")]}}, namespace
        )
        cond = await _broken(cluster, namespace, "app", "Forbidden")
        assert outside in cond["message"] and "allowedKeys" in cond["message"], cond
        assert await _stalled(cluster, namespace, "app") == "True"
        await _unchanged(cluster, namespace, "app", before)
        reads = [r for r in _audit(env, namespace, "app") if r.get("remoteKey") == outside]
        assert reads == [], "a key outside allowedKeys was read"
        # dataFrom.find through the same store cannot reach outside either
        await cluster.apply(
            _ms("finder", store, "ClusterSecretStore", dataFrom=[{"find": {"path": "tenants/"}}]), namespace
        )
        await _broken(cluster, namespace, "finder", "Forbidden")
        assert await cluster.secret(namespace, "finder") is None
        assert not [r for r in _audit(env, namespace, "finder") if r.get("remoteKey") == outside]
    finally:
        await cluster.delete("ClusterSecretStore", store)
