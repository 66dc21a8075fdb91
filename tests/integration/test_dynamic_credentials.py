"""Dynamic credentials (``dataFrom.vaultDynamic``) from Vault's database secrets engine against a
REAL PostgreSQL, with a dynamic role of short TTLs: the credentials Rotor writes log in; the lease
is renewed in place (same id, later end); when the max TTL caps a renewal, new credentials are
issued before the old ones end, the old ones stay under ``<key>_previous`` and keep working until
their lease ends, then leave the Secret; ``revokeOnDelete`` makes them fail at once; and an
operator killed mid-lease and started again issues nothing new."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
from pathlib import Path
from typing import Any

import hvac.exceptions
import pytest
import yaml
from test_rotation_database import can_login

from rotor.devenv.postgres import PostgresServer
from support.cluster import Cluster, wait_for
from support.postgres import postgres  # noqa: F401
from support.rotation import force_sync, iso_namespace, own_operator, running

pytestmark = pytest.mark.asyncio(loop_scope="session")

ROOT = Path(__file__).resolve().parents[2]
MOUNT = "dyndb"
CONNECTION = "dyn-pg"
CREATION = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"
REVOCATION = 'DROP ROLE IF EXISTS "{{name}}";'


def dynamic_role(env: Any, pg: PostgresServer, role: str, *, ttl: int, max_ttl: int) -> None:
    """The database engine at ``dyndb`` on the test PostgreSQL, and a dynamic role (idempotent)."""
    client = env.vault_client()
    if f"{MOUNT}/" not in client.sys.list_mounted_secrets_engines()["data"]:
        client.sys.enable_secrets_engine("database", path=MOUNT)
    client.secrets.database.configure(
        name=CONNECTION,
        plugin_name="postgresql-database-plugin",
        allowed_roles=["*"],
        connection_url=f"postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{pg.port}/postgres?sslmode=disable",
        username=pg.superuser,
        password=pg.password,
        mount_point=MOUNT,
    )
    client.secrets.database.create_role(
        name=role,
        db_name=CONNECTION,
        creation_statements=[CREATION],
        revocation_statements=[REVOCATION],
        default_ttl=ttl,
        max_ttl=max_ttl,
        mount_point=MOUNT,
    )


def leases_of(env: Any, role: str) -> list[str]:
    """The lease ids Vault holds for the role (what Rotor issued and Vault has not ended)."""
    try:
        keys = env.vault_client().sys.list_leases(f"{MOUNT}/creds/{role}")["data"]["keys"]
    except hvac.exceptions.InvalidPath:
        return []
    return sorted(keys)


def manifest(role: str, *, renew_percent: int, revoke: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "rotor.dev/v1alpha1",
        "kind": "ManagedSecret",
        "metadata": {"name": "app-db"},
        "spec": {
            "storeRef": {"name": "vault"},
            "dataFrom": [
                {
                    "vaultDynamic": {
                        "path": f"{MOUNT}/creds/{role}",
                        "renewPercent": renew_percent,
                        "revokeOnDelete": revoke,
                    }
                }
            ],
            "refresh": {"interval": "1h"},
        },
    }


async def lease_of(cluster: Cluster, namespace: str) -> dict[str, Any]:
    obj = await cluster.get("ManagedSecret", "app-db", namespace)
    return copy.deepcopy(((obj or {}).get("status") or {}).get("lease") or {})


async def credentials(cluster: Cluster, namespace: str, leaks: Any) -> dict[str, bytes]:
    data = await cluster.secret_data(namespace, "app-db") or {}
    leaks.add(*(v for k, v in data.items() if k.startswith("password")))
    return data


def logs_in(pg: PostgresServer, data: dict[str, bytes], suffix: str = "") -> bool:
    return can_login(pg, data[f"username{suffix}"].decode(), data[f"password{suffix}"].decode())


async def test_issued_renewed_replaced_before_expiry_and_revoked_on_delete(
    cluster: Cluster,
    env: Any,
    namespace: str,
    leaks: Any,
    postgres: PostgresServer,  # noqa: F811
) -> None:
    # lease 12 s, renewed at 50 % (6 s before its end); the max TTL (20 s) caps the second renewal
    # (at 12 s, to 8 s instead of 12), so the credentials are replaced 6 s before they end (14 s)
    dynamic_role(env, postgres, "short", ttl=12, max_ttl=20)
    for doc in env.vault_token_store(namespace):
        await cluster.apply(doc, namespace)
    await cluster.apply(manifest("short", renew_percent=50), namespace)
    obj = await cluster.ready("app-db", namespace, timeout=60)

    first = await lease_of(cluster, namespace)
    data = await credentials(cluster, namespace, leaks)
    assert set(data) == {"username", "password"}
    assert first["id"].startswith(f"{MOUNT}/creds/short/") and first["duration"] == 12 and first["renewable"]
    assert obj["status"]["expiry"]["notAfter"] == first["expiresAt"]
    assert obj["status"]["expiry"]["source"] == "Provider"
    assert logs_in(postgres, data), "PostgreSQL refuses the credentials Rotor wrote"
    assert leases_of(env, "short") == [first["id"].rsplit("/", 1)[1]]

    async def renewed() -> dict[str, Any] | None:
        lease = await lease_of(cluster, namespace)
        return lease if lease.get("id") == first["id"] and lease["expiresAt"] > first["expiresAt"] else None

    again = await wait_for(renewed, timeout=20, what="the lease renewed in place")
    assert again["issuedAt"] == first["issuedAt"]
    assert (await credentials(cluster, namespace, leaks)) == data, "a renewal changed the credentials"

    async def replaced() -> dict[str, Any] | None:
        lease = await lease_of(cluster, namespace)
        return lease if lease.get("id") not in (None, first["id"]) else None

    second = await wait_for(replaced, timeout=30, what="new credentials before the old ones end")
    now = await credentials(cluster, namespace, leaks)
    ends = dt.datetime.fromisoformat(second["previous"]["expiresAt"])
    assert second["previous"]["id"] == first["id"]
    assert dt.datetime.fromisoformat(second["issuedAt"]) < ends, "issued only after the old ones ended"
    assert now["username"] != data["username"] and now["password"] != data["password"]
    assert now["username_previous"] == data["username"] and now["password_previous"] == data["password"]
    assert logs_in(postgres, now), "PostgreSQL refuses the new credentials"
    if dt.datetime.now(dt.UTC) < ends - dt.timedelta(seconds=1):
        assert logs_in(postgres, now, "_previous"), (
            "the previous credentials stopped before their lease ended"
        )
    assert "CredentialsIssued" in await cluster.event_reasons(namespace, "app-db")

    async def previous_gone() -> dict[str, bytes] | None:
        got = await credentials(cluster, namespace, leaks)
        return got if "password_previous" not in got else None

    after = await wait_for(previous_gone, timeout=30, what="the previous credentials removed at their end")
    assert after == {"username": now["username"], "password": now["password"]}
    assert not logs_in(postgres, now, "_previous"), "the ended credentials still log in"
    current = await lease_of(cluster, namespace)

    # revokeOnDelete: the live credentials stop working once the ManagedSecret is gone
    await cluster.delete("ManagedSecret", "app-db", namespace)

    async def deleted() -> bool:
        return await cluster.get("ManagedSecret", "app-db", namespace) is None

    await wait_for(deleted, timeout=30, what="the ManagedSecret deleted")
    assert current["id"].rsplit("/", 1)[1] not in leases_of(env, "short")
    assert not logs_in(postgres, after), "revoked credentials still log in"


async def test_a_restart_mid_lease_issues_nothing_new_and_renews_on_time(
    cluster: Cluster,
    env: Any,
    leaks: Any,
    postgres: PostgresServer,  # noqa: F811
) -> None:
    """Killed mid-lease: the next operator resumes the recorded lease, renews it when due (the
    refresh interval is 1 h, so only the lease's own time brings it back) and issues nothing."""
    dynamic_role(env, postgres, "resume", ttl=16, max_ttl=600)
    async with iso_namespace(cluster, "lease") as ns:
        for doc in env.vault_token_store(ns):
            await cluster.apply(doc, ns)
        doomed = own_operator(env, ns, name=f"lease-{ns}-1")
        await asyncio.to_thread(doomed.start)
        try:
            await cluster.apply(manifest("resume", renew_percent=50, revoke=False), ns)
            await cluster.ready("app-db", ns, timeout=60)
            lease = await lease_of(cluster, ns)
            data = await credentials(cluster, ns, leaks)
        finally:
            await asyncio.to_thread(doomed.kill)
        assert leases_of(env, "resume") == [lease["id"].rsplit("/", 1)[1]]

        async with running(own_operator(env, ns, name=f"lease-{ns}-2")):

            async def renewed() -> dict[str, Any] | None:
                got = await lease_of(cluster, ns)
                return got if got.get("expiresAt", "") > lease["expiresAt"] else None

            after = await wait_for(renewed, timeout=30, what="the resumed lease renewed when due")
            assert after["id"] == lease["id"] and after["issuedAt"] == lease["issuedAt"]
            assert await credentials(cluster, ns, leaks) == data, "the restart changed the credentials"
            assert leases_of(env, "resume") == [lease["id"].rsplit("/", 1)[1]], "the restart issued a lease"
            assert logs_in(postgres, data)
            await force_sync(cluster, ns, "app-db", timeout=60)
            assert leases_of(env, "resume") == [lease["id"].rsplit("/", 1)[1]]
            assert (await cluster.event_reasons(ns, "app-db")).count("CredentialsIssued") == 1


async def test_the_example_file_works_as_documented(
    cluster: Cluster,
    env: Any,
    namespace: str,
    leaks: Any,
    postgres: PostgresServer,  # noqa: F811
) -> None:
    """examples/dynamic/database-credentials.yaml, with only the Vault address put in (and the
    test's namespace for ``demo``), against the role its comment describes."""
    client = env.vault_client()
    if "database/" not in client.sys.list_mounted_secrets_engines()["data"]:
        client.sys.enable_secrets_engine("database", path="database")
    client.secrets.database.configure(
        name="orders-pg",
        plugin_name="postgresql-database-plugin",
        allowed_roles=["orders"],
        connection_url=f"postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{postgres.port}/postgres?sslmode=disable",
        username=postgres.superuser,
        password=postgres.password,
        mount_point="database",
    )
    client.secrets.database.create_role(
        name="orders",
        db_name="orders-pg",
        creation_statements=[CREATION],
        revocation_statements=[REVOCATION],
        default_ttl="1h",
        max_ttl="24h",
        mount_point="database",
    )
    text = (ROOT / "examples" / "dynamic" / "database-credentials.yaml").read_text()
    for doc in yaml.safe_load_all(text.replace("${VAULT_ADDR}", env.vault_addr)):
        doc["metadata"]["namespace"] = namespace
        await cluster.apply(doc, namespace)
    obj = await cluster.ready("orders-db-creds", namespace, timeout=60)
    assert obj["status"]["lease"]["id"].startswith("database/creds/orders/")
    data = await cluster.secret_data(namespace, "orders-db-creds") or {}
    leaks.add(data["password"])
    assert logs_in(postgres, data), "PostgreSQL refuses the example's credentials"
