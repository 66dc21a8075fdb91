"""What the sync, fault, hostile-input and tenancy tests share: manifests of Rotor's objects and of
the stores they name, the Vault set-ups they need, and readers of what the operator did (audit
lines, metrics, conditions, the Secret as it was)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from rotor.devenv.vault import ROOT_TOKEN
from support.cluster import Cluster
from support.environment import TestEnvironment
from support.leaks import LeakRegistry
from support.operator import OperatorProcess

API = "rotor.dev/v1alpha1"


# ---------------------------------------------------------------------------------------------- manifests
def ms_manifest(name: str, store: str = "vault", kind: str | None = None, **spec: Any) -> dict[str, Any]:
    """A ManagedSecret reading from ``store`` (``kind`` left out: the CRD's default, SecretStore)."""
    ref = {"name": store} if kind is None else {"name": store, "kind": kind}
    return {
        "apiVersion": API,
        "kind": "ManagedSecret",
        "metadata": {"name": name},
        "spec": {"storeRef": ref, **spec},
    }


def data_item(secret_key: str, key: str, prop: str | None = None, **extra: Any) -> dict[str, Any]:
    """One ``data`` entry: ``key`` (its ``prop``, its ``version=`` if given) into ``secret_key``."""
    ref: dict[str, Any] = {"key": key}
    if prop is not None:
        ref["property"] = prop
    if "version" in extra:
        ref["version"] = extra.pop("version")
    return {"secretKey": secret_key, "remoteRef": ref, **extra}


def token_secret(name: str, token: str = ROOT_TOKEN) -> dict[str, Any]:
    """A Secret holding a Vault token under ``token`` (by default the dev server's root token)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "data": {"token": base64.b64encode(token.encode()).decode()},
    }


def vault_store(
    name: str,
    server: str,
    auth: dict[str, Any],
    *,
    cluster_scoped: bool = False,
    kv: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """A (Cluster)SecretStore on Vault at ``server``; with ``kv``, naming KV v2 at ``secret``."""
    vault: dict[str, Any] = {"server": server}
    if kv:
        vault["kv"] = {"mount": "secret", "version": 2}
    vault["auth"] = auth
    return {
        "apiVersion": API,
        "kind": "ClusterSecretStore" if cluster_scoped else "SecretStore",
        "metadata": {"name": name},
        "spec": {"provider": {"vault": vault}, **extra},
    }


# ---------------------------------------------------------------------------------------------- stores
async def apply_all(cluster: Cluster, docs: list[dict[str, Any]], namespace: str) -> None:
    for doc in docs:
        await cluster.apply(doc, namespace)


async def apply_token_store(
    cluster: Cluster, env: TestEnvironment, namespace: str, name: str = "vault", **kw: Any
) -> None:
    """The environment's Vault token store ``name`` (and its token Secret), not waited for."""
    await apply_all(cluster, env.vault_token_store(namespace, name, **kw), namespace)


async def root_cluster_store(
    cluster: Cluster,
    env: TestEnvironment,
    namespace: str,
    name: str | None = None,
    *,
    secret: str = "root-token",
    kv: bool = True,
    wait: bool = True,
    **spec: Any,
) -> str:
    """A ClusterSecretStore (``css-{namespace}`` unless named) on Vault's root token, which it
    reads from the Secret ``secret`` in ``namespace``; waited for until Valid unless ``wait`` is
    False. Returns its name."""
    name = name or f"css-{namespace}"[:63]
    await cluster.apply(token_secret(secret), namespace)
    await cluster.apply(
        vault_store(
            name,
            env.vault_addr,
            {"token": {"secretRef": {"name": secret, "key": "token", "namespace": namespace}}},
            cluster_scoped=True,
            kv=kv,
            **spec,
        )
    )
    if wait:
        await cluster.wait_condition("ClusterSecretStore", name, None, status="True", reason="Valid")
    return name


def reader_policy(env: TestEnvironment, namespace: str) -> str:
    """A Vault policy that may read ``secret/data/{namespace}/*`` and nothing else; its name."""
    name = f"reader-{namespace}"
    env.vault_client().sys.create_or_update_policy(
        name, f'path "secret/data/{namespace}/*" {{ capabilities = ["read"] }}\n'
    )
    return name


async def approle_store(
    cluster: Cluster, env: TestEnvironment, namespace: str, leaks: LeakRegistry, **role: Any
) -> str:
    """A SecretStore "approle" logging in with a new AppRole (``role-{namespace}``, the reader
    policy, 1 h tokens, ``role`` for more options) whose secret-id is in the Secret "approle";
    waited for until Valid. Returns the role's name."""
    vault = env.vault_client()
    policy = reader_policy(env, namespace)
    name = f"role-{namespace}"
    vault.auth.approle.create_or_update_approle(name, token_policies=[policy], token_ttl="1h", **role)
    role_id = vault.auth.approle.read_role_id(name)["data"]["role_id"]
    secret_id = vault.auth.approle.generate_secret_id(name)["data"]["secret_id"]
    leaks.add(secret_id)
    await cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "approle"},
            "stringData": {"secret-id": secret_id},
        },
        namespace,
    )
    await cluster.apply(
        vault_store(
            "approle",
            env.vault_addr,
            {
                "appRole": {
                    "mount": "approle",
                    "roleId": role_id,
                    "secretIdRef": {"name": "approle", "key": "secret-id"},
                }
            },
            kv=False,
        ),
        namespace,
    )
    await cluster.wait_condition("SecretStore", "approle", namespace, status="True", reason="Valid")
    return name


def iso_namespace_fixture(prefix: str) -> Any:
    """A fixture ``iso_namespace``: a namespace ``iso-{prefix}-*`` (the session operator leaves
    those alone), deleted afterwards."""

    @pytest_asyncio.fixture(loop_scope="session")
    async def iso_namespace(cluster: Cluster) -> AsyncIterator[str]:
        name = f"iso-{prefix}-{secrets.token_hex(3)}"
        await cluster.create_namespace(name)
        yield name
        await cluster.delete_namespace(name)

    return iso_namespace


# ---------------------------------------------------------------------------------------------- certificates
def self_signed(
    key: Any, cn: str, not_before: dt.datetime, not_after: dt.datetime, *, san: bool = True
) -> bytes:
    """A self-signed certificate (PEM) for ``key``, named ``cn`` (and, with ``san``, for DNS ``cn``)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def private_pem(key: Any) -> bytes:
    """``key`` as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


# ---------------------------------------------------------------------------------------------- what happened
def audit(
    op: OperatorProcess | None, namespace: str, name: str | None = None, *, verb: str = "read"
) -> list[dict[str, Any]]:
    """The operator's audit records of ``verb`` for ManagedSecret ``namespace/name`` (without a
    name: for any ManagedSecret in ``namespace``)."""
    assert op is not None
    out = []
    for line in op.log_text().splitlines():
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


def metric(op: OperatorProcess | None, name: str, labels: str) -> float:
    """The value of the sample ``name{labels}`` the operator serves now (0 when it has none)."""
    assert op is not None
    pattern = re.compile(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} ([0-9.e+-]+)$", re.M)
    match = pattern.search(op.metrics())
    return float(match.group(1)) if match else 0.0


async def stalled_status(cluster: Cluster, namespace: str, name: str) -> str | None:
    """The status of the ManagedSecret's Stalled condition (None without one)."""
    cond = await cluster.condition("ManagedSecret", name, namespace, "Stalled")
    return cond["status"] if cond else None


async def assert_unchanged(cluster: Cluster, namespace: str, name: str, before: dict[str, Any]) -> None:
    """The Secret is still there, never written since ``before`` was read."""
    after = await cluster.secret(namespace, name)
    assert after is not None, "the last good Secret was deleted"
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"], (
        "the Secret was written"
    )
    assert after.get("data") == before.get("data")
