"""Deleting a ManagedSecret (DESIGN §2 Deletion): Retain leaves the Secret without Rotor's
ownerReference and label, Delete removes it, Merge touches only Rotor's keys, and an owned
Secret is garbage-collected by kube-controller-manager."""

from __future__ import annotations

import asyncio
import base64
import secrets
from typing import Any

import pytest
from kubernetes_asyncio import watch

from support.cluster import GROUP, VERSION, Cluster, wait_for
from support.objects import apply_token_store, data_item, ms_manifest
from support.rotation import kv2_write

pytestmark = pytest.mark.asyncio(loop_scope="session")

MANAGED_BY = "rotor.dev/managed-by"


async def _setup(cluster: Cluster, env, namespace: str, leaks, **target: Any) -> tuple[str, dict[str, Any]]:
    """A Vault value, a token store and a ManagedSecret 'app' writing it; returns (value, Ready object)."""
    value = secrets.token_urlsafe(20)
    leaks.add(value)
    kv2_write(env, f"{namespace}/app", {"password": value})
    await apply_token_store(cluster, env, namespace)
    spec: dict[str, Any] = {"data": [data_item("password", f"{namespace}/app", "password")]}
    if target:
        spec["target"] = target
    await cluster.apply(ms_manifest("app", **spec), namespace)
    return value, await cluster.ready("app", namespace)


async def _delete_and_wait_gone(cluster: Cluster, namespace: str, name: str = "app") -> None:
    await cluster.delete("ManagedSecret", name, namespace)

    async def gone() -> bool:
        return await cluster.get("ManagedSecret", name, namespace) is None

    await wait_for(gone, what=f"ManagedSecret {namespace}/{name} deleted (finalizer handled)")


async def _writes_until_ready(cluster: Cluster, namespace: str, manifest: dict[str, Any]) -> int:
    """Create ``manifest`` and count the writes made to it until it is Ready: every MODIFIED
    event a watch (started before the create) sees, up to the first with Ready=True."""
    listed = await cluster.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "managedsecrets")
    stream = watch.Watch().stream(
        cluster.custom.list_namespaced_custom_object,
        GROUP,
        VERSION,
        namespace,
        "managedsecrets",
        resource_version=listed["metadata"]["resourceVersion"],
        timeout_seconds=60,
    )

    async def count() -> int:
        writes = 0
        async for event in stream:
            if event["type"] == "MODIFIED":
                writes += 1
            conditions = (event["object"].get("status") or {}).get("conditions") or []
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                return writes
        raise AssertionError(f"ManagedSecret {namespace}/{manifest['metadata']['name']} never Ready")

    counting = asyncio.create_task(count())
    await cluster.apply(manifest, namespace)
    try:
        return await asyncio.wait_for(counting, timeout=60)
    finally:
        await stream.close()


@pytest.mark.parametrize(
    ("creation", "deletion", "writes"),
    [("Owner", "Delete", 1), ("Orphan", "Retain", 2), ("Owner", "Retain", 2)],
)
async def test_writes_per_new_object(
    cluster: Cluster, env, namespace: str, leaks, creation: str, deletion: str, writes: int
) -> None:
    """A new ManagedSecret gets one write (its status) where deleting it needs nothing from Rotor,
    and two (the finalizer first) where it does; deletion then still does what the policy says."""
    value = secrets.token_urlsafe(20)
    leaks.add(value)
    kv2_write(env, f"{namespace}/app", {"password": value})
    await apply_token_store(cluster, env, namespace)
    await cluster.wait_condition("SecretStore", "vault", namespace, status="True")
    manifest = ms_manifest(
        "app",
        data=[data_item("password", f"{namespace}/app", "password")],
        target={"creationPolicy": creation, "deletionPolicy": deletion},
    )
    assert await _writes_until_ready(cluster, namespace, manifest) == writes
    ms = await cluster.get("ManagedSecret", "app", namespace)
    assert ms is not None
    held = "rotor.dev/finalizer" in (ms["metadata"].get("finalizers") or [])
    assert held is (writes == 2)
    assert await cluster.secret_data(namespace, "app") == {"password": value.encode()}

    await _delete_and_wait_gone(cluster, namespace)
    if deletion == "Delete":

        async def collected() -> bool:
            return await cluster.secret(namespace, "app") is None

        await wait_for(collected, timeout=60, what="garbage collection of the owned Secret")
    else:
        secret = await cluster.secret(namespace, "app")
        assert secret is not None, "Retain keeps the Secret"
        assert ms["metadata"]["uid"] not in _owner_uids(secret)
        assert "rotor.dev/managed-by" not in (secret["metadata"].get("labels") or {}), (
            "Retain removes the label"
        )
        assert await cluster.secret_data(namespace, "app") == {"password": value.encode()}


async def test_a_finalizer_no_longer_needed_is_removed(cluster: Cluster, env, namespace: str, leaks) -> None:
    """Owner + Retain holds the finalizer; switching to Delete removes it (the garbage collector
    deletes the Secret), and back to Retain adds it again."""
    await _setup(cluster, env, namespace, leaks)

    async def finalizers(expected: bool) -> bool:
        ms = await cluster.get("ManagedSecret", "app", namespace) or {}
        return ("rotor.dev/finalizer" in (ms.get("metadata", {}).get("finalizers") or [])) is expected

    await wait_for(lambda: finalizers(True), what="Rotor's finalizer under Owner + Retain")
    await cluster.patch("ManagedSecret", "app", {"spec": {"target": {"deletionPolicy": "Delete"}}}, namespace)
    await wait_for(lambda: finalizers(False), what="the finalizer removed under Owner + Delete")
    await cluster.patch("ManagedSecret", "app", {"spec": {"target": {"deletionPolicy": "Retain"}}}, namespace)
    await wait_for(lambda: finalizers(True), what="the finalizer back under Owner + Retain")


def _owner_uids(secret: dict[str, Any]) -> list[str]:
    return [r["uid"] for r in secret["metadata"].get("ownerReferences") or []]


async def test_owner_retain_keeps_secret_without_our_marks(
    cluster: Cluster, env, namespace: str, leaks
) -> None:
    value, ms = await _setup(cluster, env, namespace, leaks)
    secret = await cluster.secret(namespace, "app")
    assert secret is not None
    assert ms["metadata"]["uid"] in _owner_uids(secret)
    assert secret["metadata"]["labels"][MANAGED_BY] == "app"
    assert "rotor.dev/finalizer" in (ms["metadata"].get("finalizers") or [])

    await _delete_and_wait_gone(cluster, namespace)
    secret = await cluster.secret(namespace, "app")
    assert secret is not None, "Retain (the default) must keep the Secret"
    assert ms["metadata"]["uid"] not in _owner_uids(secret)
    assert MANAGED_BY not in (secret["metadata"].get("labels") or {})
    assert await cluster.secret_data(namespace, "app") == {"password": value.encode()}


async def test_owner_delete_removes_secret(cluster: Cluster, env, namespace: str, leaks) -> None:
    await _setup(cluster, env, namespace, leaks, deletionPolicy="Delete")
    assert await cluster.secret(namespace, "app") is not None
    await _delete_and_wait_gone(cluster, namespace)

    async def secret_gone() -> bool:
        return await cluster.secret(namespace, "app") is None

    await wait_for(secret_gone, what="Secret deleted under deletionPolicy Delete")


async def test_orphan_retain_never_has_owner_reference(cluster: Cluster, env, namespace: str, leaks) -> None:
    value, _ = await _setup(cluster, env, namespace, leaks, creationPolicy="Orphan")
    secret = await cluster.secret(namespace, "app")
    assert secret is not None
    assert not secret["metadata"].get("ownerReferences")
    assert secret["metadata"]["labels"][MANAGED_BY] == "app"
    # a refresh (spec change) does not add one either
    await cluster.patch("ManagedSecret", "app", {"spec": {"target": {"labels": {"team": "a"}}}}, namespace)

    async def labelled() -> dict[str, Any] | None:
        s = await cluster.secret(namespace, "app")
        return s if s and (s["metadata"].get("labels") or {}).get("team") == "a" else None

    secret = await wait_for(labelled, what="label team=a on the Secret")
    assert not secret["metadata"].get("ownerReferences")

    await _delete_and_wait_gone(cluster, namespace)
    secret = await cluster.secret(namespace, "app")
    assert secret is not None
    assert not secret["metadata"].get("ownerReferences")
    assert await cluster.secret_data(namespace, "app") == {"password": value.encode()}


async def test_merge_writes_only_its_keys_and_delete_removes_only_them(
    cluster: Cluster, env, namespace: str, leaks
) -> None:
    keep = secrets.token_urlsafe(16)
    leaks.add(keep)
    await cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "shared", "labels": {"owner": "someone-else"}},
            "data": {
                "other": base64.b64encode(keep.encode()).decode(),
                "config": base64.b64encode(b"debug=false").decode(),
            },
        },
        namespace,
    )
    value, ms = await _setup(
        cluster, env, namespace, leaks, name="shared", creationPolicy="Merge", deletionPolicy="Delete"
    )
    data = await cluster.secret_data(namespace, "shared")
    assert data == {"other": keep.encode(), "config": b"debug=false", "password": value.encode()}
    secret = await cluster.secret(namespace, "shared")
    assert secret is not None
    assert ms["metadata"]["uid"] not in _owner_uids(secret), "Merge must not take ownership"
    assert secret["metadata"]["labels"]["owner"] == "someone-else"

    await _delete_and_wait_gone(cluster, namespace)
    secret = await cluster.secret(namespace, "shared")
    assert secret is not None, "Merge + Delete removes Rotor's keys, never the Secret"
    assert await cluster.secret_data(namespace, "shared") == {
        "other": keep.encode(),
        "config": b"debug=false",
    }
    annotations = secret["metadata"].get("annotations") or {}
    assert not any(k.startswith("rotor.dev/") for k in annotations), annotations


async def test_owned_child_is_garbage_collected(cluster: Cluster, env, namespace: str) -> None:
    """An object owned by a ManagedSecret is collected by kube-controller-manager once the
    ManagedSecret is gone: the ownerReferences Rotor writes are real ones."""
    ms = (
        await cluster.apply(
            {
                "apiVersion": "rotor.dev/v1alpha1",
                "kind": "ManagedSecret",
                "metadata": {"name": "parent"},
                "spec": {
                    "storeRef": {"name": "absent"},
                    "data": [{"secretKey": "k", "remoteRef": {"key": "nowhere"}}],
                },
            },
            namespace,
        )
    )[0]
    await cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "child",
                "ownerReferences": [
                    {
                        "apiVersion": "rotor.dev/v1alpha1",
                        "kind": "ManagedSecret",
                        "name": "parent",
                        "uid": ms["metadata"]["uid"],
                        "blockOwnerDeletion": False,
                    }
                ],
            },
            "data": {"k": base64.b64encode(b"not-a-secret").decode()},
        },
        namespace,
    )
    await cluster.wait_condition("ManagedSecret", "parent", namespace, status="False", reason="StoreNotFound")
    await _delete_and_wait_gone(cluster, namespace, "parent")

    async def collected() -> bool:
        return await cluster.secret(namespace, "child") is None

    await wait_for(collected, timeout=60, what="garbage collection of the owned Secret")
