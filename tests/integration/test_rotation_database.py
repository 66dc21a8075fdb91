"""Provider rotation of Vault database static roles against a REAL PostgreSQL: Vault's own
machinery (``<mount>/rotate-role/<role>``) changes the database password, Rotor syncs the new
credentials, and the database accepts the new password and refuses the old one."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from rotor.devenv.postgres import PostgresServer
from support.cluster import Cluster, wait_for
from support.postgres import postgres  # noqa: F401

pytestmark = pytest.mark.asyncio(loop_scope="session")

MOUNT = "database"
CONNECTION = "pg"
ROTATION_STATEMENT = "ALTER ROLE \"{{name}}\" WITH PASSWORD '{{password}}';"


# --------------------------------------------------------------------------- set-up at the sources


def create_login_role(pg: PostgresServer, user: str, password: str) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(
            sql.SQL(verb + " ROLE {} WITH LOGIN PASSWORD {}").format(
                sql.Identifier(user), sql.Literal(password)
            )
        )


def configure_vault_database(env: Any, pg: PostgresServer) -> None:
    """The database secrets engine at ``database`` with the connection ``pg`` (idempotent)."""
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


def create_static_role(env: Any, pg: PostgresServer, leaks: Any, role: str, user: str) -> dict[str, Any]:
    """A PostgreSQL login role with an initial password, managed by the Vault static role ``role``.
    Returns Vault's static-creds for it (Vault sets its own password when the role is created)."""
    initial = secrets.token_urlsafe(24)
    leaks.add(initial)
    create_login_role(pg, user, initial)
    configure_vault_database(env, pg)
    env.vault_client().secrets.database.create_static_role(
        name=role,
        db_name=CONNECTION,
        username=user,
        rotation_statements=[ROTATION_STATEMENT],
        rotation_period="24h",
        mount_point=MOUNT,
    )
    creds = static_creds(env, leaks, role)
    assert creds["username"] == user
    return creds


def static_creds(env: Any, leaks: Any, role: str) -> dict[str, Any]:
    data = dict(
        env.vault_client().secrets.database.get_static_credentials(name=role, mount_point=MOUNT)["data"]
    )
    leaks.add(data["password"])
    return data


def can_login(pg: PostgresServer, user: str, password: str) -> bool:
    """True when PostgreSQL accepts the password; False when it refuses it (OperationalError), or
    when the role is dropped between the login and the query (a dynamic role revoked just then:
    ``invalid role OID``)."""
    try:
        with psycopg.connect(pg.dsn(user=user, password=password), autocommit=True) as conn:
            return conn.execute("SELECT current_user").fetchone() == (user,)
    except psycopg.OperationalError as exc:
        assert "password authentication failed" in str(exc) or "does not exist" in str(exc), exc
        return False
    except psycopg.errors.UndefinedObject as exc:
        assert "invalid role OID" in str(exc), exc
        return False


# --------------------------------------------------------------------------- Kubernetes side


async def apply_database_secret(
    cluster: Cluster, env: Any, namespace: str, role: str, name: str = "app"
) -> None:
    for doc in env.vault_token_store(namespace):
        await cluster.apply(doc, namespace)
    await cluster.apply(
        {
            "apiVersion": "rotor.dev/v1alpha1",
            "kind": "RotationPolicy",
            "metadata": {"name": "db-static"},
            "spec": {
                "strategy": "Provider",
                "provider": {"vaultDatabaseStaticRole": {}},
                "schedule": {"every": "720h"},
            },
        },
        namespace,
    )
    await cluster.apply(
        {
            "apiVersion": "rotor.dev/v1alpha1",
            "kind": "ManagedSecret",
            "metadata": {"name": name},
            "spec": {
                "storeRef": {"name": "vault"},
                "dataFrom": [{"vaultDatabase": {"mount": MOUNT, "role": role}}],
                "rotation": {"policyRef": {"name": "db-static"}, "keys": ["password"]},
            },
        },
        namespace,
    )


async def ready_credentials(cluster: Cluster, namespace: str, name: str, leaks: Any) -> dict[str, bytes]:
    await cluster.ready(name, namespace, timeout=60)
    data = await cluster.secret_data(namespace, name)
    assert data is not None, f"Secret {namespace}/{name} was not written"
    leaks.add(data.get("password", b""))
    return data


class VaultAudit:
    """A Vault file audit device for the duration of a test: the ground truth of what Rotor asked
    Vault to do (values in it are HMAC'd by Vault, never written in clear)."""

    def __init__(self, env: Any, directory: Path) -> None:
        self.client = env.vault_client()
        self.path = f"rotor-test-{secrets.token_hex(4)}"
        self.file = directory / "vault-audit.log"

    def __enter__(self) -> VaultAudit:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        self.client.sys.enable_audit_device("file", path=self.path, options={"file_path": str(self.file)})
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.sys.disable_audit_device(self.path)

    def requests(self, path: str) -> int:
        count = 0
        for line in self.file.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("type") == "request" and (entry.get("request") or {}).get("path") == path:
                count += 1
        return count


# --------------------------------------------------------------------------- tests


async def test_static_role_rotation_changes_the_database_password(
    cluster: Cluster,
    env: Any,
    namespace: str,
    leaks: Any,
    postgres: PostgresServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    creds = create_static_role(env, postgres, leaks, "app", "app_user")
    await apply_database_secret(cluster, env, namespace, "app")

    data = await ready_credentials(cluster, namespace, "app", leaks)
    assert set(data) == {"username", "password"}
    assert data["username"] == b"app_user"
    old = data["password"].decode()
    assert old == creds["password"], "the Secret does not hold Vault's current static-role password"
    assert can_login(postgres, "app_user", old), "PostgreSQL refuses the password Rotor synced"

    with VaultAudit(env, tmp_path) as audit:
        await cluster.patch(
            "ManagedSecret", "app", {"metadata": {"annotations": {"rotor.dev/rotate": "now-1"}}}, namespace
        )

        async def completed() -> dict[str, Any] | None:
            obj = await cluster.get("ManagedSecret", "app", namespace)
            rot = ((obj or {}).get("status") or {}).get("rotation") or {}
            return (
                obj if rot.get("phase") == "Completed" and rot.get("lastRotateRequest") == "now-1" else None
            )

        obj = await wait_for(completed, timeout=60, what="rotation Completed")
        data = await cluster.secret_data(namespace, "app")
        assert data is not None
        new = data["password"].decode()
        leaks.add(new)
        assert new != old
        assert data["username"] == b"app_user"

        after = static_creds(env, leaks, "app")
        assert after["password"] == new, "the Secret does not hold Vault's password after the rotation"
        assert after["last_vault_rotation"] != creds["last_vault_rotation"]
        assert can_login(postgres, "app_user", new), "PostgreSQL refuses the rotated password"
        assert not can_login(postgres, "app_user", old), "PostgreSQL still accepts the password rotated away"
        rotating = next(c for c in obj["status"]["conditions"] if c["type"] == "Rotating")
        assert rotating["status"] == "False" and rotating["reason"] == "Succeeded"

        # a later reconcile (forced sync) must not rotate again for the same request
        await cluster.patch(
            "ManagedSecret",
            "app",
            {"metadata": {"annotations": {"rotor.dev/force-sync": "after-rotation"}}},
            namespace,
        )

        async def synced() -> bool:
            got = await cluster.get("ManagedSecret", "app", namespace)
            return ((got or {}).get("status") or {}).get("lastForceSync") == "after-rotation"

        await wait_for(synced, timeout=60, what="the forced sync after the rotation")
        await cluster.wait_condition("ManagedSecret", "app", namespace, "Ready", timeout=30)
        assert audit.requests(f"{MOUNT}/rotate-role/app") == 1, (
            "Vault was asked to rotate the role more than once"
        )
    again = static_creds(env, leaks, "app")
    assert again["last_vault_rotation"] == after["last_vault_rotation"], "the role was rotated a second time"
    assert again["password"] == new
    assert (await cluster.secret_data(namespace, "app") or {}).get("password") == new.encode()
    assert "Rotated" in await cluster.event_reasons(namespace, "app")


async def test_cli_rotates_a_static_role(
    cluster: Cluster,
    env: Any,
    namespace: str,
    leaks: Any,
    postgres: PostgresServer,  # noqa: F811
) -> None:
    creds = create_static_role(env, postgres, leaks, "app-cli", "app_cli_user")
    await apply_database_secret(cluster, env, namespace, "app-cli")
    old = (await ready_credentials(cluster, namespace, "app", leaks))["password"].decode()
    assert old == creds["password"]

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rotor.cli.main",
        "rotate",
        "app",
        "-n",
        namespace,
        "--timeout",
        "120s",
        env={**os.environ, "KUBECONFIG": str(env.kubeconfig)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=240)
    text = out.decode() + err.decode()
    leaks.capture(f"rotor rotate app -n {namespace}", text)
    lines = [line for line in text.splitlines() if line]
    assert proc.returncode == 0, text
    assert lines and lines[-1].startswith("✔ rotated app: "), text

    data = await cluster.secret_data(namespace, "app")
    assert data is not None
    new = data["password"].decode()
    leaks.add(new)
    assert new != old
    assert not leaks.find(text), "rotor rotate printed a secret value"
    assert static_creds(env, leaks, "app-cli")["password"] == new
    assert can_login(postgres, "app_cli_user", new)
    assert not can_login(postgres, "app_cli_user", old)
