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

from support.cluster import Cluster, wait_for
from support.environment import TestEnvironment
from support.leaks import LeakRegistry

pytestmark = pytest.mark.asyncio(loop_scope="session")

API = "rotor.dev/v1alpha1"
ROOT_TOKEN = "rotor-dev-root"


# ---------------------------------------------------------------------------------------------- helpers
def _ms(name: str, store: str = "vault", kind: str = "SecretStore", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "ManagedSecret",
        "metadata": {"name": name},
        "spec": {"storeRef": {"name": store, "kind": kind}, **spec},
    }


def _item(secret_key: str, key: str, prop: str | None = "password") -> dict[str, Any]:
    ref: dict[str, Any] = {"key": key}
    if prop is not None:
        ref["property"] = prop
    return {"secretKey": secret_key, "remoteRef": ref}


def _kv2(env: TestEnvironment, path: str, data: dict[str, str]) -> None:
    env.vault_client().secrets.kv.v2.create_or_update_secret(path=path, secret=data, mount_point="secret")


def _kv2_version(env: TestEnvironment, path: str) -> tuple[dict[str, str], int]:
    resp = env.vault_client().secrets.kv.v2.read_secret_version(
        path=path, mount_point="secret", raise_on_deleted_version=True
    )
    return dict(resp["data"]["data"]), int(resp["data"]["metadata"]["version"])


def _audit(
    env: TestEnvironment, namespace: str, name: str | None = None, verb: str = "read"
) -> list[dict[str, Any]]:
    out = []
    assert env.operator is not None
    for line in env.operator.log_text().splitlines():
        if '"audit' not in line:
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        who = rec.get("managedSecret") or ""
        if rec.get("verb") == verb and (
            who == f"{namespace}/{name}" if name else who.startswith(f"{namespace}/")
        ):
            out.append(rec)
    return out


async def _refused(
    cluster: Cluster, namespace: str, name: str, reason: str, timeout: float = 30
) -> dict[str, Any]:
    cond = await cluster.wait_condition(
        "ManagedSecret", name, namespace, status="False", reason=reason, timeout=timeout
    )
    assert cond["message"]
    return cond


async def _stalled(cluster: Cluster, namespace: str, name: str) -> str | None:
    cond = await cluster.condition("ManagedSecret", name, namespace, "Stalled")
    return cond["status"] if cond else None


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
    name = f"css-{namespace}"[:63]
    await cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "css-token"},
            "data": {"token": base64.b64encode(ROOT_TOKEN.encode()).decode()},
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
                        "kv": {"mount": "secret", "version": 2},
                        "auth": {
                            "token": {
                                "secretRef": {"name": "css-token", "key": "token", "namespace": namespace}
                            }
                        },
                    }
                },
                "conditions": [{"namespaces": [namespace, neighbour]}],
                "allowedKeys": ["tenants/{namespace}/*"],
            },
        }
    )
    await cluster.wait_condition("ClusterSecretStore", name, None, status="True", reason="Valid")
    yield name
    await cluster.delete("ClusterSecretStore", name)


def _tenant_values(
    env: TestEnvironment, leaks: LeakRegistry, namespace: str, neighbour: str
) -> tuple[str, str]:
    mine, theirs = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    leaks.add(mine, theirs)
    _kv2(env, f"tenants/{namespace}/app", {"username": "a", "password": mine})
    _kv2(env, f"tenants/{neighbour}/app", {"username": "b", "password": theirs})
    return mine, theirs


# ---------------------------------------------------------------------------------------------- stores
async def test_namespaced_store_of_another_namespace_is_not_found(
    cluster: Cluster, env: TestEnvironment, namespace: str, neighbour: str, leaks: LeakRegistry
) -> None:
    theirs = secrets.token_urlsafe(18)
    leaks.add(theirs)
    _kv2(env, f"{neighbour}/app", {"password": theirs})
    for doc in env.vault_token_store(neighbour, "b-vault"):
        await cluster.apply(doc, neighbour)
    await cluster.wait_condition("SecretStore", "b-vault", neighbour, status="True", reason="Valid")
    # A names B's store: a namespaced store is looked up in A only
    await cluster.apply(_ms("steal", "b-vault", data=[_item("password", f"{neighbour}/app")]), namespace)
    cond = await _refused(cluster, namespace, "steal", "StoreNotFound")
    assert "b-vault" in cond["message"] and theirs not in cond["message"]
    assert await cluster.secret(namespace, "steal") is None
    assert _audit(env, namespace, "steal") == [], "B's store was used for A"
    # the storeRef has no field that could name another namespace
    obj = await cluster.get("ManagedSecret", "steal", namespace)
    assert obj is not None and set(obj["spec"]["storeRef"]) <= {"name", "kind"}


async def test_store_credentials_are_read_in_the_store_namespace_only(
    cluster: Cluster, env: TestEnvironment, namespace: str, neighbour: str, kubectl_run: Callable[..., Any]
) -> None:
    """A SecretStore in A cannot borrow credentials from B: a secretRef or serviceAccountRef with a
    namespace is refused by the CRD, and if sent anyway (pruned) only A is looked in."""
    await cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "b-token"},
            "data": {"token": base64.b64encode(ROOT_TOKEN.encode()).decode()},
        },
        neighbour,
    )
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
        _ms(
            "mine", cluster_store, "ClusterSecretStore", data=[_item("password", f"tenants/{namespace}/app")]
        ),
        namespace,
    )
    await cluster.ready("mine", namespace)
    assert await cluster.secret_data(namespace, "mine") == {"password": mine.encode()}
    outside = {
        "neighbour": [_item("password", f"tenants/{neighbour}/app")],
        "dotdot": [_item("password", f"tenants/{namespace}/../{neighbour}/app")],
        "slash-dotdot": [_item("password", f"/tenants/{namespace}//../{neighbour}/app")],
        "dot": [_item("password", f"tenants/{namespace}/./../{neighbour}/app")],
        "backslash": [_item("password", f"tenants/{namespace}/..\\{neighbour}\\app")],
    }
    for name, data in outside.items():
        await cluster.apply(_ms(name, cluster_store, "ClusterSecretStore", data=data), namespace)
    await cluster.apply(
        _ms(
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
        assert await _stalled(cluster, namespace, name) == "True"
        assert await cluster.secret(namespace, name) is None
        assert _audit(env, namespace, name) == [], f"{name}: a key outside allowedKeys was read"
    # an escaped traversal is a literal (missing) key, never B's
    await cluster.apply(
        _ms(
            "escaped",
            cluster_store,
            "ClusterSecretStore",
            data=[_item("password", f"tenants/{namespace}/%2e%2e/{neighbour}/app")],
        ),
        namespace,
    )
    cond = await _refused(cluster, namespace, "escaped", "KeyNotFound")
    assert await cluster.secret(namespace, "escaped") is None
    assert not [
        r for r in _audit(env, namespace) if neighbour in (r.get("remoteKey") or "").replace(namespace, "")
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
    _kv2(env, f"tenants/{neighbour}/hidden-name-{namespace[-6:]}", {"password": "x" * 12})
    await cluster.apply(
        _ms("finder", cluster_store, "ClusterSecretStore", dataFrom=[{"find": {"path": "tenants/"}}]),
        namespace,
    )
    cond = await _refused(cluster, namespace, "finder", "Forbidden")
    assert await cluster.secret(namespace, "finder") is None
    assert not _audit(env, namespace, "finder"), "values were read"
    assert neighbour not in cond["message"], f"the message names the neighbour's keys: {cond['message']}"


async def test_namespaced_store_refuses_dotdot_keys(
    cluster: Cluster, env: TestEnvironment, namespace: str, neighbour: str, leaks: LeakRegistry
) -> None:
    theirs = secrets.token_urlsafe(18)
    leaks.add(theirs)
    _kv2(env, f"{neighbour}/app", {"password": theirs})
    for doc in env.vault_token_store(namespace):
        await cluster.apply(doc, namespace)
    cases: dict[str, dict[str, Any]] = {
        "data": {"data": [_item("password", f"{namespace}/../{neighbour}/app")]},
        "extract": {"dataFrom": [{"extract": {"key": f"{namespace}/../{neighbour}/app"}}]},
        "leading": {"data": [_item("password", f"../{neighbour}/app")]},
        "find": {"dataFrom": [{"find": {"path": f"{namespace}/../{neighbour}/"}}]},
    }
    for name, spec in cases.items():
        await cluster.apply(_ms(name, **spec), namespace)
    for name in cases:
        cond = await _refused(cluster, namespace, name, "Forbidden")
        assert theirs not in cond["message"]
        assert await cluster.secret(namespace, name) is None, name
        assert _audit(env, namespace, name) == [], f"{name}: a '..' key was read"


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
    _, version_before = _kv2_version(env, f"tenants/{neighbour}/app")
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
            _ms(
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
            _ms(
                "outside",
                cluster_store,
                "ClusterSecretStore",
                data=[_item("password", f"tenants/{neighbour}/app")],
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
        data, version_after = _kv2_version(env, f"tenants/{neighbour}/app")
        assert version_after == version_before and data["password"] == theirs, (
            "the neighbour's source was written"
        )
        assert not _audit(env, namespace, "outside", verb="write-source")
        assert await cluster.secret(namespace, "outside") is None
    finally:
        await cluster.delete("ClusterRotationPolicy", policy)


# ---------------------------------------------------------------------------------------------- targets
async def test_foreign_secrets_are_never_overwritten(
    cluster: Cluster, env: TestEnvironment, namespace: str, leaks: LeakRegistry
) -> None:
    value = secrets.token_urlsafe(18)
    leaks.add(value)
    _kv2(env, f"{namespace}/app", {"password": value})
    for doc in env.vault_token_store(namespace):
        await cluster.apply(doc, namespace)
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
    await cluster.apply(_ms("first", data=[_item("password", f"{namespace}/app")]), namespace)
    await cluster.ready("first", namespace)
    first = await cluster.secret(namespace, "first")
    assert first is not None
    await cluster.apply(
        _ms("takeover", data=[_item("password", f"{namespace}/app")], target={"name": "foreign"}), namespace
    )
    await cluster.apply(
        _ms("second", data=[_item("password", f"{namespace}/app")], target={"name": "first"}), namespace
    )
    await cluster.apply(_ms("forged", data=[_item("password", f"{namespace}/app")]), namespace)
    await cluster.apply(
        _ms("credentials", data=[_item("password", f"{namespace}/app")], target={"name": "vault-token"}),
        namespace,
    )
    for name in ("takeover", "second", "forged", "credentials"):
        cond = await _refused(cluster, namespace, name, "SecretConflict")
        assert await _stalled(cluster, namespace, name) == "True", name
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
    _kv2(env, f"{namespace}/app", {"password": value})
    for doc in env.vault_token_store(namespace):
        await cluster.apply(doc, namespace)
    data = [_item("password", f"{namespace}/app")]
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
        _ms("pruned", data=data, target={"name": "escape", "namespace": neighbour}), namespace
    )
    with pytest.raises(ApiException) as refused:
        await cluster.apply(_ms("dotdot", data=data, target={"name": f"../{neighbour}/escape"}), namespace)
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
