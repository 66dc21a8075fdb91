"""SecretStore and ClusterSecretStore status: a store is judged by really authenticating to its
backend (DESIGN §1), and a ClusterSecretStore admits only the namespaces its conditions allow."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from rotor.api.names import REVALIDATE_ANNOTATION
from rotor.providers.base import WriteDenied
from rotor.providers.vault import VaultConfig, VaultProvider
from rotor.providers.vault.auth_token import TokenAuth
from rotor.services.backend import Backend
from support.cluster import Cluster
from support.objects import (
    apply_all,
    apply_token_store,
    data_item,
    ms_manifest,
    root_cluster_store,
    token_secret,
    vault_store,
)
from support.rotation import kv2_write

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _ms(name: str, store: str, key: str, *, kind: str = "SecretStore", prop: str = "value") -> dict[str, Any]:
    return ms_manifest(name, store, kind, data=[data_item(prop, key, prop)])


def _kstatus(obj: dict[str, Any] | None) -> dict[str, str]:
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return {c["type"]: c["status"] for c in conditions if c["type"] in ("Ready", "Reconciling", "Stalled")}


def _vault_backend(env: Any, token: str) -> Backend:
    """The provider and backend the operator builds for a token store, for the write check the
    rotation service runs before it writes."""
    config = VaultConfig(server=env.vault_addr, store_id="SecretStore/test/vault", auth=TokenAuth(token))
    return Backend(VaultProvider(config), store="SecretStore/test/vault")


def _token(env: Any, leaks: Any, name: str, policy: str) -> str:
    vault = env.vault_client()
    vault.sys.create_or_update_policy(name, policy)
    token = vault.auth.token.create(policies=[name], ttl="1h")["auth"]["client_token"]
    leaks.add(token)
    return str(token)


def _assert_observed(obj: dict[str, Any]) -> None:
    generation = obj["metadata"]["generation"]
    assert obj["status"]["observedGeneration"] == generation
    for cond in obj["status"]["conditions"]:
        assert cond["observedGeneration"] == generation, cond
        assert cond["lastTransitionTime"], cond


async def test_token_store_valid_and_read_write(cluster: Cluster, env, namespace: str) -> None:
    await apply_token_store(cluster, env, namespace)
    cond = await cluster.wait_condition("SecretStore", "vault", namespace, status="True", reason="Valid")
    assert cond["message"]
    store = await cluster.get("SecretStore", "vault", namespace)
    assert store is not None
    assert store["status"]["capabilities"] == "ReadWrite"
    _assert_observed(store)


async def test_token_store_read_only_policy(cluster: Cluster, env, namespace: str, leaks) -> None:
    vault = env.vault_client()
    policy = f"ro-{namespace}"
    vault.sys.create_or_update_policy(
        policy,
        'path "secret/data/*" { capabilities = ["read"] }\n'
        'path "secret/metadata/*" { capabilities = ["read", "list"] }\n',
    )
    token = vault.auth.token.create(policies=[policy], ttl="1h", no_default_policy=False)["auth"][
        "client_token"
    ]
    leaks.add(token)
    await apply_token_store(cluster, env, namespace, "ro", token=token)
    await cluster.wait_condition("SecretStore", "ro", namespace, status="True", reason="Valid")
    store = await cluster.get("SecretStore", "ro", namespace)
    assert store is not None
    # Vault grants writes path by path: the store is not judged by a probe path, and the paths a
    # rotation writes are checked when it writes them (below, as the rotation service asks)
    assert store["status"]["capabilities"] == "PerPath"
    missing = await _vault_backend(env, token).missing_write([f"{namespace}/ro"])
    assert missing == {f"secret/data/{namespace}/ro": ["update"]}
    # and it is usable for reading
    value = secrets.token_urlsafe(18)
    leaks.add(value)
    kv2_write(env, f"{namespace}/ro", {"value": value})
    await cluster.apply(_ms("ro", "ro", f"{namespace}/ro"), namespace)
    await cluster.ready("ro", namespace)
    assert await cluster.secret_data(namespace, "ro") == {"value": value.encode()}


async def test_wrong_token_is_auth_failed(cluster: Cluster, env, namespace: str, leaks) -> None:
    wrong = "hvs." + secrets.token_urlsafe(24)
    leaks.add(wrong)
    await apply_token_store(cluster, env, namespace, token=wrong)
    cond = await cluster.wait_condition("SecretStore", "vault", namespace, status="False", timeout=30)
    assert cond["reason"] == "AuthFailed", cond
    assert "auth" in cond["message"].lower() or "denied" in cond["message"].lower(), cond
    assert wrong not in cond["message"]
    store = await cluster.get("SecretStore", "vault", namespace)
    assert store is not None
    _assert_observed(store)
    # bad credentials need a person: kstatus reads Stalled=True (Failed), not InProgress
    assert _kstatus(store) == {"Ready": "False", "Stalled": "True", "Reconciling": "False"}


async def test_unreachable_server(cluster: Cluster, env, namespace: str) -> None:
    docs = env.vault_token_store(namespace)
    docs[1]["spec"]["provider"]["vault"]["server"] = "http://127.0.0.1:1"
    await apply_all(cluster, docs, namespace)
    cond = await cluster.wait_condition(
        "SecretStore", "vault", namespace, status="False", reason="Unreachable"
    )
    assert "127.0.0.1:1" in cond["message"], cond
    store = await cluster.get("SecretStore", "vault", namespace)
    # transient: retried, so Reconciling=True and not Stalled
    assert _kstatus(store) == {"Ready": "False", "Stalled": "False", "Reconciling": "True"}


async def test_missing_credentials_secret_is_invalid_config(cluster: Cluster, env, namespace: str) -> None:
    store = vault_store(
        "vault", env.vault_addr, {"token": {"secretRef": {"name": "no-such-secret", "key": "token"}}}
    )
    await cluster.apply(store, namespace)
    cond = await cluster.wait_condition(
        "SecretStore", "vault", namespace, status="False", reason="InvalidConfig"
    )
    assert "no-such-secret" in cond["message"], cond
    assert _kstatus(await cluster.get("SecretStore", "vault", namespace))["Stalled"] == "True"
    # once the Secret appears and the store is edited, it becomes Valid
    await cluster.apply(token_secret("no-such-secret"), namespace)
    await cluster.patch("SecretStore", "vault", {"spec": {"rateLimit": {"qps": 10}}}, namespace)
    await cluster.wait_condition("SecretStore", "vault", namespace, status="True", reason="Valid")
    assert _kstatus(await cluster.get("SecretStore", "vault", namespace)) == {
        "Ready": "True",
        "Stalled": "False",
        "Reconciling": "False",
    }


async def test_aws_store_valid(cluster: Cluster, env, namespace: str) -> None:
    await apply_all(cluster, env.aws_store(namespace), namespace)
    await cluster.wait_condition("SecretStore", "aws", namespace, status="True", reason="Valid")
    store = await cluster.get("SecretStore", "aws", namespace)
    assert store is not None and store["status"].get("capabilities") in ("ReadOnly", "ReadWrite")
    _assert_observed(store)


async def test_cluster_store_namespace_selector(cluster: Cluster, env, namespace: str, leaks) -> None:
    """Only namespaces carrying the label may use the ClusterSecretStore; labelling one later admits it."""
    label = f"tenant-{secrets.token_hex(3)}"
    value = secrets.token_urlsafe(18)
    leaks.add(value)
    kv2_write(env, f"{namespace}/shared", {"value": value})
    allowed_ns = f"{namespace[:50]}-ok"
    store_name = f"css-{namespace}"[:63]
    await cluster.create_namespace(allowed_ns, labels={label: "true"})
    try:
        await root_cluster_store(
            cluster,
            env,
            namespace,
            store_name,
            conditions=[{"namespaceSelector": {"matchLabels": {label: "true"}}}],
        )

        await cluster.apply(
            _ms("shared", store_name, f"{namespace}/shared", kind="ClusterSecretStore"), allowed_ns
        )
        await cluster.ready("shared", allowed_ns)
        assert await cluster.secret_data(allowed_ns, "shared") == {"value": value.encode()}

        await cluster.apply(
            _ms("shared", store_name, f"{namespace}/shared", kind="ClusterSecretStore"), namespace
        )
        cond = await cluster.wait_condition(
            "ManagedSecret", "shared", namespace, status="False", reason="Forbidden"
        )
        assert namespace in cond["message"] and store_name in cond["message"], cond
        assert await cluster.secret(namespace, "shared") is None
        stalled = await cluster.condition("ManagedSecret", "shared", namespace, "Stalled")
        assert stalled is not None and stalled["status"] == "True"
    finally:
        await cluster.delete("ClusterSecretStore", store_name)
        await cluster.delete_namespace(allowed_ns)


async def test_cluster_store_admits_namespace_labelled_later(
    cluster: Cluster, env, namespace: str, leaks
) -> None:
    """A person fixes a Forbidden ManagedSecret by labelling its namespace: it then becomes Ready
    without being edited."""
    label = f"tenant-{secrets.token_hex(3)}"
    value = secrets.token_urlsafe(18)
    leaks.add(value)
    kv2_write(env, f"{namespace}/later", {"value": value})
    store_name = f"css-{namespace}"[:63]
    try:
        await root_cluster_store(
            cluster,
            env,
            namespace,
            store_name,
            wait=False,
            conditions=[{"namespaceSelector": {"matchLabels": {label: "true"}}}],
        )
        await cluster.apply(
            _ms("later", store_name, f"{namespace}/later", kind="ClusterSecretStore"), namespace
        )
        await cluster.wait_condition("ManagedSecret", "later", namespace, status="False", reason="Forbidden")
        await cluster.core.patch_namespace(namespace, {"metadata": {"labels": {label: "true"}}})
        await cluster.ready("later", namespace, timeout=60)
        assert await cluster.secret_data(namespace, "later") == {"value": value.encode()}
    finally:
        await cluster.delete("ClusterSecretStore", store_name)


async def test_cluster_store_without_conditions_admits_nobody(
    cluster: Cluster, env, namespace: str, leaks
) -> None:
    store_name = f"css-{namespace}"[:63]
    try:
        await root_cluster_store(cluster, env, namespace, store_name)
        await cluster.apply(_ms("nobody", store_name, f"{namespace}/x", kind="ClusterSecretStore"), namespace)
        cond = await cluster.wait_condition(
            "ManagedSecret", "nobody", namespace, status="False", reason="Forbidden"
        )
        assert "conditions" in cond["message"], cond
        # a person allows the namespace in the store: the ManagedSecret recovers without being edited
        value = secrets.token_urlsafe(18)
        leaks.add(value)
        kv2_write(env, f"{namespace}/x", {"value": value})
        await cluster.patch(
            "ClusterSecretStore", store_name, {"spec": {"conditions": [{"namespaces": [namespace]}]}}
        )
        await cluster.ready("nobody", namespace)
        assert await cluster.secret_data(namespace, "nobody") == {"value": value.encode()}
    finally:
        await cluster.delete("ClusterSecretStore", store_name)


# --------------------------------------------------------------------------- least privilege


async def test_least_privilege_vault_policy_is_writable_where_it_grants(
    cluster: Cluster, env, namespace: str, leaks
) -> None:
    """A policy granting create/update on exactly the rotated paths (and read elsewhere) is not
    called read-only; a path lacking update is named with the capability it lacks."""
    token = _token(
        env,
        leaks,
        f"lp-{namespace}",
        f'path "secret/data/{namespace}/*" {{ capabilities = ["read"] }}\n'
        f'path "secret/data/{namespace}/app/db" {{ capabilities = ["create", "update", "read"] }}\n'
        f'path "secret/data/{namespace}/app/api" {{ capabilities = ["create", "read"] }}\n',
    )
    await apply_token_store(cluster, env, namespace, "lp", token=token)
    await cluster.wait_condition("SecretStore", "lp", namespace, status="True", reason="Valid")
    store = await cluster.get("SecretStore", "lp", namespace)
    assert store is not None and store["status"]["capabilities"] == "PerPath"

    backend = _vault_backend(env, token)
    try:
        assert await backend.missing_write([f"{namespace}/app/db"]) == {}
        await backend.check_write([f"{namespace}/app/db"])  # writable: no error
        with pytest.raises(WriteDenied) as info:
            await backend.check_write([f"{namespace}/app/db", f"{namespace}/app/api"])
        assert info.value.reason == "Forbidden"
        assert info.value.missing == {f"secret/data/{namespace}/app/api": ["update"]}
        message = info.value.message
        assert f"Vault token lacks 'update' on secret/data/{namespace}/app/api" in message, message
        assert "grant it in the store's Vault policy" in message, message
        assert f"{namespace}/app/db" not in message
        assert token not in message
        # and the granted path really is writable
        kv2_write(env, f"{namespace}/app/db", {"password": "old"})
        result = await backend.call(
            "write",
            backend.provider.write,
            f"{namespace}/app/db",
            {"password": secrets.token_urlsafe(12)},
            "1",
        )
        assert result.version == "2"
    finally:
        await backend.close()


async def test_revalidate_annotation_validates_now(cluster: Cluster, env, namespace: str, leaks) -> None:
    """A store stays as validated until its next periodic re-validation (minutes) unless a person
    asks: a new rotor.dev/revalidate value validates it at once."""
    token = _token(env, leaks, f"rv-{namespace}", 'path "secret/data/*" { capabilities = ["read"] }\n')
    await apply_token_store(cluster, env, namespace, "rv", token=token)
    await cluster.wait_condition("SecretStore", "rv", namespace, status="True", reason="Valid")
    env.vault_client().auth.token.revoke(token)
    await cluster.patch(
        "SecretStore", "rv", {"metadata": {"annotations": {REVALIDATE_ANNOTATION: "1"}}}, namespace
    )
    cond = await cluster.wait_condition("SecretStore", "rv", namespace, status="False", timeout=30)
    assert cond["reason"] == "AuthFailed", cond
