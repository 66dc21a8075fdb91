"""Tenancy (issue 8, DESIGN §7): what a ManagedSecret in one namespace can reach, and what it
cannot. Namespace A is the test's own; namespace B is a neighbour created beside it.

- a namespaced SecretStore is looked up in the ManagedSecret's namespace only (StoreNotFound);
- a ClusterSecretStore admits only its allowedKeys, for reads, finds and rotations (Forbidden,
  no backend read, the source unchanged);
- a Secret Rotor does not own is never overwritten (SecretConflict, untouched);
- no field makes Rotor write outside the ManagedSecret's namespace;
- a key with ".." segments is refused.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
import yaml
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from rotor.devenv.vault import ROOT_TOKEN
from support.cluster import Cluster, wait_for
from support.environment import TestEnvironment
from support.leaks import LeakRegistry
from support.objects import (
    API,
    apply_token_store,
    audit,
    data_item,
    ms_manifest,
    root_cluster_store,
    stalled_status,
    token_secret,
)
from support.rotation import kv2_current, kv2_write

pytestmark = pytest.mark.asyncio(loop_scope="session")


# ---------------------------------------------------------------------------------------------- helpers
async def _refused(
    cluster: Cluster, namespace: str, name: str, reason: str, timeout: float = 30
) -> dict[str, Any]:
    cond = await cluster.wait_condition(
        "ManagedSecret", name, namespace, status="False", reason=reason, timeout=timeout
    )
    assert cond["message"]
    return cond


@pytest_asyncio.fixture(loop_scope="session")
async def neighbour(cluster: Cluster, namespace: str) -> AsyncIterator[str]:
    name = f"{namespace[:55]}-b"
    await cluster.create_namespace(name)
    yield name
    await cluster.delete_namespace(name)


@pytest_asyncio.fixture(loop_scope="session")
async def cluster_store(
    cluster: Cluster, env: TestEnvironment, namespace: str, neighbour: str
) -> AsyncIterator[str]:
    """A ClusterSecretStore (root token, read-write) for both namespaces, keys limited to
    tenants/{namespace}/*."""
    name = await root_cluster_store(
        cluster,
        env,
        namespace,
        secret="css-token",
        conditions=[{"namespaces": [namespace, neighbour]}],
        allowedKeys=["tenants/{namespace}/*"],
    )
    yield name
    await cluster.delete("ClusterSecretStore", name)


def _tenant_values(
    env: TestEnvironment, leaks: LeakRegistry, namespace: str, neighbour: str
) -> tuple[str, str]:
    mine, theirs = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    leaks.add(mine, theirs)
    kv2_write(env, f"tenants/{namespace}/app", {"username": "a", "password": mine})
    kv2_write(env, f"tenants/{neighbour}/app", {"username": "b", "password": theirs})
    return mine, theirs


# ---------------------------------------------------------------------------------------------- stores
async def test_namespaced_store_of_another_namespace_is_not_found(
    cluster: Cluster, env: TestEnvironment, namespace: str, neighbour: str, leaks: LeakRegistry
) -> None:
    theirs = secrets.token_urlsafe(18)
    leaks.add(theirs)
    kv2_write(env, f"{neighbour}/app", {"password": theirs})
    await apply_token_store(cluster, env, neighbour, "b-vault")
    await cluster.wait_condition("SecretStore", "b-vault", neighbour, status="True", reason="Valid")
    # A names B's store: a namespaced store is looked up in A only
    await cluster.apply(
        ms_manifest("steal", "b-vault", data=[data_item("password", f"{neighbour}/app", "password")]),
        namespace,
    )
    cond = await _refused(cluster, namespace, "steal", "StoreNotFound")
    assert "b-vault" in cond["message"] and theirs not in cond["message"]
    assert await cluster.secret(namespace, "steal") is None
    assert audit(env.operator, namespace, "steal") == [], "B's store was used for A"
    # the storeRef has no field that could name another namespace
    obj = await cluster.get("ManagedSecret", "steal", namespace)
    assert obj is not None and set(obj["spec"]["storeRef"]) <= {"name", "kind"}


async def test_store_credentials_are_read_in_the_store_namespace_only(
    cluster: Cluster, env: TestEnvironment, namespace: str, neighbour: str, kubectl_run: Callable[..., Any]
) -> None:
    """A SecretStore in A cannot borrow credentials from B: a secretRef or serviceAccountRef with a
    namespace is refused by the CRD, and if sent anyway (pruned) only A is looked in."""
    await cluster.apply(token_secret("b-token"), neighbour)
    store = {
        "apiVersion": API,
        "kind": "SecretStore",
        "metadata": {"name": "borrow", "namespace": namespace},
        "spec": {
            "provider": {
                "vault": {
                    "server": env.vault_addr,
                    "auth": {
                        "token": {"secretRef": {"name": "b-token", "key": "token", "namespace": neighbour}}
                    },
                }
            }
        },
    }
    result = kubectl_run("apply", "-f", "-", input_=yaml.safe_dump(store))
    assert result.returncode != 0, result.stdout
    assert "namespace" in result.stderr and "unknown field" in result.stderr, result.stderr
    sa_store = {
        "apiVersion": API,
        "kind": "SecretStore",
        "metadata": {"name": "borrow-sa", "namespace": namespace},
        "spec": {
            "provider": {
                "vault": {
                    "server": env.vault_addr,
                    "auth": {
                        "kubernetes": {
                            "role": "x",
                            "serviceAccountRef": {"name": "default", "namespace": neighbour},
                        }
                    },
                }
            }
        },
    }
    result = kubectl_run("apply", "-f", "-", input_=yaml.safe_dump(sa_store))
    assert result.returncode != 0 and "unknown field" in result.stderr, result.stderr
    # through the API without strict field validation the field is pruned: A is looked in, not B
    await cluster.apply(store, namespace)
    cond = await cluster.wait_condition(
        "SecretStore", "borrow", namespace, status="False", reason="InvalidConfig"
    )
    assert f"{namespace}/b-token" in cond["message"], cond


# ---------------------------------------------------------------------------------------------- allowedKeys
async def test_cluster_store_reads_only_allowed_keys(
    cluster: Cluster,
    env: TestEnvironment,
    namespace: str,
    neighbour: str,
    cluster_store: str,
    leaks: LeakRegistry,
) -> None:
    mine, theirs = _tenant_values(env, leaks, namespace, neighbour)
    await cluster.apply(
        ms_manifest(
            "mine",
            cluster_store,
            "ClusterSecretStore",
            data=[data_item("password", f"tenants/{namespace}/app", "password")],
        ),
        namespace,
    )
    await cluster.ready("mine", namespace)
    assert await cluster.secret_data(namespace, "mine") == {"password": mine.encode()}
    outside = {
        "neighbour": [data_item("password", f"tenants/{neighbour}/app", "password")],
        "dotdot": [data_item("password", f"tenants/{namespace}/../{neighbour}/app", "password")],
        "slash-dotdot": [data_item("password", f"/tenants/{namespace}//../{neighbour}/app", "password")],
        "dot": [data_item("password", f"tenants/{namespace}/./../{neighbour}/app", "password")],
        "backslash": [data_item("password", f"tenants/{namespace}/..\\{neighbour}\\app", "password")],
    }
    for name, data in outside.items():
        await cluster.apply(ms_manifest(name, cluster_store, "ClusterSecretStore", data=data), namespace)
    await cluster.apply(
        ms_manifest(
            "extract",
            cluster_store,
            "ClusterSecretStore",
            dataFrom=[{"extract": {"key": f"tenants/{neighbour}/app"}}],
        ),
        namespace,
    )
    for name in [*outside, "extract"]:
        cond = await _refused(cluster, namespace, name, "Forbidden")
        assert "allowedKeys" in cond["message"], (name, cond)
        assert theirs not in cond["message"]
        assert await stalled_status(cluster, namespace, name) == "True"
        assert await cluster.secret(namespace, name) is None
        assert audit(env.operator, namespace, name) == [], f"{name}: a key outside allowedKeys was read"
    # spellings a backend (or a proxy before it) could decode or clean into another path are
    # refused before any read: percent-escapes and empty segments, with the reason named
    escaped = {
        "escaped": f"tenants/{namespace}/%2e%2e/{neighbour}/app",
        "escaped-slash": f"tenants/{namespace}%2F..%2F{neighbour}/app",
        "double-slash": f"tenants/{namespace}//app",
    }
    for name, key in escaped.items():
        await cluster.apply(
            ms_manifest(
                name, cluster_store, "ClusterSecretStore", data=[data_item("password", key, "password")]
            ),
            namespace,
        )
    for name in escaped:
        cond = await _refused(cluster, namespace, name, "Forbidden")
        assert "canonical form" in cond["message"], (name, cond)
        assert await cluster.secret(namespace, name) is None
        assert audit(env.operator, namespace, name) == [], f"{name}: a non-canonical key was read"
    assert not [
        r
        for r in audit(env.operator, namespace)
        if neighbour in (r.get("remoteKey") or "").replace(namespace, "")
    ]


async def test_cluster_store_find_does_not_reveal_other_tenants_keys(
    cluster: Cluster,
    env: TestEnvironment,
    namespace: str,
    neighbour: str,
    cluster_store: str,
    leaks: LeakRegistry,
) -> None:
    _tenant_values(env, leaks, namespace, neighbour)
    kv2_write(env, f"tenants/{neighbour}/hidden-name-{namespace[-6:]}", {"password": "x" * 12})
    await cluster.apply(
        ms_manifest("finder", cluster_store, "ClusterSecretStore", dataFrom=[{"find": {"path": "tenants/"}}]),
        namespace,
    )
    cond = await _refused(cluster, namespace, "finder", "Forbidden")
    assert await cluster.secret(namespace, "finder") is None
    assert not audit(env.operator, namespace, "finder"), "values were read"
    assert neighbour not in cond["message"], f"the message names the neighbour's keys: {cond['message']}"


async def test_namespaced_store_refuses_dotdot_keys(
    cluster: Cluster, env: TestEnvironment, namespace: str, neighbour: str, leaks: LeakRegistry
) -> None:
    theirs = secrets.token_urlsafe(18)
    leaks.add(theirs)
    kv2_write(env, f"{neighbour}/app", {"password": theirs})
    await apply_token_store(cluster, env, namespace)
    cases: dict[str, dict[str, Any]] = {
        "data": {"data": [data_item("password", f"{namespace}/../{neighbour}/app", "password")]},
        "extract": {"dataFrom": [{"extract": {"key": f"{namespace}/../{neighbour}/app"}}]},
        "leading": {"data": [data_item("password", f"../{neighbour}/app", "password")]},
        "find": {"dataFrom": [{"find": {"path": f"{namespace}/../{neighbour}/"}}]},
    }
    for name, spec in cases.items():
        await cluster.apply(ms_manifest(name, **spec), namespace)
    for name in cases:
        cond = await _refused(cluster, namespace, name, "Forbidden")
        assert theirs not in cond["message"]
        assert await cluster.secret(namespace, name) is None, name
        assert audit(env.operator, namespace, name) == [], f"{name}: a '..' key was read"


# ---------------------------------------------------------------------------------------------- rotation
async def test_rotation_cannot_write_outside_allowed_keys(
    cluster: Cluster,
    env: TestEnvironment,
    namespace: str,
    neighbour: str,
    cluster_store: str,
    leaks: LeakRegistry,
) -> None:
    mine, theirs = _tenant_values(env, leaks, namespace, neighbour)
    version_before, _ = kv2_current(env, f"tenants/{neighbour}/app")
    policy = f"crp-{namespace}"[:63]
    await cluster.apply(
        {
            "apiVersion": API,
            "kind": "ClusterRotationPolicy",
            "metadata": {"name": policy},
            "spec": {
                "schedule": {"every": "720h"},
                "strategy": "Generate",
                "generator": {"password": {"length": 24}},
            },
        }
    )
    try:
        # inside its keys the policy works (the control) ...
        await cluster.apply(
            ms_manifest(
                "inside",
                cluster_store,
                "ClusterSecretStore",
                dataFrom=[{"extract": {"key": f"tenants/{namespace}/app"}}],
                rotation={
                    "policyRef": {"name": policy, "kind": "ClusterRotationPolicy"},
                    "keys": ["password"],
                },
            ),
            namespace,
        )
        await cluster.ready("inside", namespace)
        # ... outside them it cannot write, neither on schedule nor on request
        await cluster.apply(
            ms_manifest(
                "outside",
                cluster_store,
                "ClusterSecretStore",
                data=[data_item("password", f"tenants/{neighbour}/app", "password")],
                rotation={
                    "policyRef": {"name": policy, "kind": "ClusterRotationPolicy"},
                    "keys": ["password"],
                },
            ),
            namespace,
        )
        await _refused(cluster, namespace, "outside", "Forbidden")
        for request in ("inside", "outside"):
            await cluster.patch(
                "ManagedSecret",
                request,
                {"metadata": {"annotations": {"rotor.dev/rotate": "now"}}},
                namespace,
            )

        async def inside_rotated() -> bool:
            obj = await cluster.get("ManagedSecret", "inside", namespace)
            rot = ((obj or {}).get("status") or {}).get("rotation") or {}
            return rot.get("lastRotateRequest") == "now" and rot.get("phase") == "Completed"

        await wait_for(inside_rotated, timeout=30, what="the control rotation")
        rotated = (await cluster.secret_data(namespace, "inside") or {}).get("password", b"")
        leaks.add(rotated)
        assert rotated and rotated != mine.encode()
        await _refused(cluster, namespace, "outside", "Forbidden")
        version_after, data = kv2_current(env, f"tenants/{neighbour}/app")
        assert version_after == version_before and data["password"] == theirs, (
            "the neighbour's source was written"
        )
        assert not audit(env.operator, namespace, "outside", verb="write-source")
        assert await cluster.secret(namespace, "outside") is None
    finally:
        await cluster.delete("ClusterRotationPolicy", policy)


# ---------------------------------------------------------------------------------------------- targets
async def test_foreign_secrets_are_never_overwritten(
    cluster: Cluster, env: TestEnvironment, namespace: str, leaks: LeakRegistry
) -> None:
    value = secrets.token_urlsafe(18)
    leaks.add(value)
    kv2_write(env, f"{namespace}/app", {"password": value})
    await apply_token_store(cluster, env, namespace)
    foreign_value = secrets.token_urlsafe(18)
    leaks.add(foreign_value)
    foreign = (
        await cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "foreign"},
                "data": {"token": base64.b64encode(foreign_value.encode()).decode()},
            },
            namespace,
        )
    )[0]
    # labelled as if Rotor managed it for "forged", but controlled by something else
    owner = await cluster.core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    forged = (
        await cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": "forged",
                    "labels": {"rotor.dev/managed-by": "forged"},
                    "ownerReferences": [
                        {
                            "apiVersion": "v1",
                            "kind": "ConfigMap",
                            "name": "owner",
                            "controller": True,
                            "uid": owner.metadata.uid,
                        }
                    ],
                },
                "data": {"token": base64.b64encode(foreign_value.encode()).decode()},
            },
            namespace,
        )
    )[0]
    await cluster.apply(
        ms_manifest("first", data=[data_item("password", f"{namespace}/app", "password")]), namespace
    )
    await cluster.ready("first", namespace)
    first = await cluster.secret(namespace, "first")
    assert first is not None
    await cluster.apply(
        ms_manifest(
            "takeover",
            data=[data_item("password", f"{namespace}/app", "password")],
            target={"name": "foreign"},
        ),
        namespace,
    )
    await cluster.apply(
        ms_manifest(
            "second", data=[data_item("password", f"{namespace}/app", "password")], target={"name": "first"}
        ),
        namespace,
    )
    await cluster.apply(
        ms_manifest("forged", data=[data_item("password", f"{namespace}/app", "password")]), namespace
    )
    await cluster.apply(
        ms_manifest(
            "credentials",
            data=[data_item("password", f"{namespace}/app", "password")],
            target={"name": "vault-token"},
        ),
        namespace,
    )
    for name in ("takeover", "second", "forged", "credentials"):
        cond = await _refused(cluster, namespace, name, "SecretConflict")
        assert await stalled_status(cluster, namespace, name) == "True", name
        assert value not in cond["message"] and foreign_value not in cond["message"]
    for name, before in (("foreign", foreign), ("forged", forged), ("first", first)):
        after = await cluster.secret(namespace, name)
        assert after is not None, f"{name} was deleted"
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"], (
            f"{name} was written"
        )
    token = await cluster.secret_data(namespace, "vault-token")
    assert token == {"token": ROOT_TOKEN.encode()}


async def test_no_field_writes_outside_the_namespace(
    cluster: Cluster,
    env: TestEnvironment,
    namespace: str,
    neighbour: str,
    leaks: LeakRegistry,
    kubectl_run: Callable[..., Any],
) -> None:
    value = secrets.token_urlsafe(18)
    leaks.add(value)
    kv2_write(env, f"{namespace}/app", {"password": value})
    await apply_token_store(cluster, env, namespace)
    data = [data_item("password", f"{namespace}/app", "password")]
    refused_by_crd: dict[str, dict[str, Any]] = {
        "target-namespace": {"target": {"name": "escape", "namespace": neighbour}},
        "target-dotdot": {"target": {"name": f"../{neighbour}/escape"}},
        "target-slash": {"target": {"name": f"{neighbour}/escape"}},
        "store-namespace": {"storeRef": {"name": "vault", "namespace": neighbour}},
        "top-namespace": {"namespace": neighbour},
    }
    for name, extra in refused_by_crd.items():
        spec: dict[str, Any] = {"storeRef": {"name": "vault"}, "data": data}
        for field, content in extra.items():
            spec[field] = {**spec.get(field, {}), **content} if isinstance(content, dict) else content
        manifest = {
            "apiVersion": API,
            "kind": "ManagedSecret",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
        result = kubectl_run("apply", "-f", "-", input_=yaml.safe_dump(manifest))
        assert result.returncode != 0, f"{name}: accepted by the API"
        assert "unknown field" in result.stderr or "should match" in result.stderr, (name, result.stderr)
    # without strict field validation (pruned) the same manifests write in A only
    await cluster.apply(
        ms_manifest("pruned", data=data, target={"name": "escape", "namespace": neighbour}), namespace
    )
    with pytest.raises(ApiException) as refused:
        await cluster.apply(
            ms_manifest("dotdot", data=data, target={"name": f"../{neighbour}/escape"}), namespace
        )
    assert refused.value.status == 422
    await cluster.ready("pruned", namespace)
    assert await cluster.secret_data(namespace, "escape") == {"password": value.encode()}
    assert await cluster.secret(neighbour, "escape") is None
    # and over the whole session so far: every Secret Rotor wrote is in its ManagedSecret's namespace
    writes = []
    assert env.operator is not None
    for line in env.operator.log_text().splitlines():
        if '"write-secret"' in line:
            rec = json.loads(line)
            writes.append((rec["managedSecret"].split("/")[0], (rec.get("target") or "").split("/")[0]))
    assert writes and all(ms_ns == target_ns for ms_ns, target_ns in writes), [
        w for w in writes if w[0] != w[1]
    ]
