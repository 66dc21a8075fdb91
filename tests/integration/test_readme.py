"""The README's worked examples, applied verbatim against the test environment.

The blocks come from README.md itself, in order: every ``sh`` block that starts with
``# what this example needs`` runs as written (bash, with the session's kubectl and vault on the
PATH, as a cluster and Vault admin), and every ``yaml`` block is applied with only the server
address put in (Vault's ``https://vault.example:8200`` becomes the test Vault; the AWS stores get
the emulator's endpoint). The values the AWS examples read are the only thing seeded by hand: the
README leaves them to the reader.

Then each ManagedSecret must be Ready with the data the README promises, and the rotation example
must rotate under its documented least-privilege Vault policy: update on exactly the rotated path.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from test_rotation_database import can_login

from rotor.devenv import binaries
from rotor.devenv.postgres import PostgresServer
from rotor.devenv.vault import ROOT_TOKEN
from support.cluster import Cluster, wait_for
from support.postgres import postgres  # noqa: F401

pytestmark = pytest.mark.asyncio(loop_scope="session")

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SETUP_MARK = "# what this example needs"
VAULT_PLACEHOLDER = "https://vault.example:8200"


def readme_blocks() -> list[tuple[str, str]]:
    """(language, text) of each fenced block of the worked examples, in order."""
    text = README.read_text()
    section = text[text.index("## A worked example per provider") : text.index("## Documentation")]
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```$", section, re.M | re.S)]


async def test_the_readme_has_what_this_test_applies() -> None:
    """A guard for the parser: the blocks are there, setup first, every YAML document complete."""
    blocks = readme_blocks()
    kinds = [
        doc["kind"] for lang, text in blocks if lang == "yaml" for doc in yaml.safe_load_all(text) if doc
    ]
    assert kinds.count("ManagedSecret") == 5 and kinds.count("SecretStore") == 5, kinds
    setups = [text for lang, text in blocks if lang == "sh" and text.startswith(SETUP_MARK)]
    assert len(setups) == 5
    for lang, text in blocks:
        if lang == "yaml":
            for doc in yaml.safe_load_all(text):
                assert {"apiVersion", "kind", "metadata"} <= set(doc), doc
                assert doc["kind"].startswith("Cluster") or doc["metadata"].get("namespace"), doc


def _with_servers(doc: dict[str, Any], vault_addr: str, aws_endpoint: str) -> dict[str, Any]:
    provider = (doc.get("spec") or {}).get("provider") or {}
    if "vault" in provider:
        assert provider["vault"]["server"] == VAULT_PLACEHOLDER
        provider["vault"]["server"] = vault_addr
    if "aws" in provider:
        provider["aws"]["endpoint"] = aws_endpoint  # the README's stores talk to AWS itself
    return doc


def _shell(env: Any, script: str, pg: PostgresServer) -> subprocess.CompletedProcess[str]:
    vault = binaries.ensure("vault")
    path = os.pathsep.join([str(Path(env.kubectl).parent), str(vault.parent), os.environ.get("PATH", "")])
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env={
            **os.environ,
            "PATH": path,
            "KUBECONFIG": str(env.kubeconfig),
            "VAULT_ADDR": env.vault_addr,
            "VAULT_TOKEN": ROOT_TOKEN,
            # the PostgreSQL admin the dynamic-credentials example connects Vault with (libpq's names)
            "PGHOST": pg.host,
            "PGPORT": str(pg.port),
            "PGUSER": pg.superuser,
            "PGPASSWORD": pg.password,
        },
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def readme(
    cluster: Cluster,
    env: Any,
    leaks: Any,
    postgres: PostgresServer,  # noqa: F811
) -> AsyncIterator[dict[str, Any]]:
    """The README applied, block by block; yields the AWS values seeded for it."""
    seeded: dict[str, Any] = {
        "prod/payments/stripe": {"api-key": "sk_" + secrets.token_hex(16), "webhook": secrets.token_hex(20)},
        "/prod/web/beta": "true",
        "/prod/web/db/password": secrets.token_urlsafe(24),
    }
    leaks.add(seeded["/prod/web/db/password"], *seeded["prod/payments/stripe"].values())
    env.boto("secretsmanager").create_secret(
        Name="prod/payments/stripe", SecretString=json.dumps(seeded["prod/payments/stripe"])
    )
    for name in ("/prod/web/beta", "/prod/web/db/password"):
        env.boto("ssm").put_parameter(Name=name, Value=seeded[name], Type="SecureString", Overwrite=True)
    for lang, text in readme_blocks():
        if lang == "sh" and text.startswith(SETUP_MARK):
            done = await asyncio.to_thread(_shell, env, text, postgres)
            assert done.returncode == 0, f"README setup failed:\n{text}\n{done.stderr}"
            if "vault kv put secret/apps/db" in text:
                stored = env.vault_client().secrets.kv.v2.read_secret_version(
                    path="apps/db", mount_point="secret", raise_on_deleted_version=True
                )
                leaks.add(stored["data"]["data"]["password"])
        elif lang == "yaml":
            for doc in yaml.safe_load_all(text):
                await cluster.apply(
                    _with_servers(doc, env.vault_addr, env.aws_endpoint), doc["metadata"].get("namespace")
                )
    yield seeded
    for ns in ("shop", "payments", "web"):
        await cluster.delete_namespace(ns)


async def test_readme_examples_become_ready(cluster: Cluster, env: Any, readme: dict[str, Any]) -> None:
    app_db = await cluster.ready("app-db", "shop", timeout=90)
    assert app_db["spec"]["rotation"]["policyRef"]["name"] == "db-password-30d"
    stored = env.vault_client().secrets.kv.v2.read_secret_version(
        path="apps/db", mount_point="secret", raise_on_deleted_version=True
    )
    password = stored["data"]["data"]["password"]
    data = await cluster.secret_data("shop", "app-db") or {}
    from urllib.parse import quote

    assert data["DATABASE_URL"].decode() == f"postgresql://app:{quote(password, safe='')}@db:5432/app"
    await cluster.ready("stripe", "payments", timeout=60)
    assert await cluster.secret_data("payments", "stripe") == {
        k: v.encode() for k, v in readme["prod/payments/stripe"].items()
    }
    await cluster.ready("flags", "web", timeout=60)
    # nested SSM paths: the name after the path, '/' turned into '_' (as the README says)
    assert await cluster.secret_data("web", "flags") == {
        "beta": b"true",
        "db_password": readme["/prod/web/db/password"].encode(),
    }


async def test_readme_rotation_under_its_least_privilege_policy(
    cluster: Cluster, env: Any, leaks: Any, readme: dict[str, Any]
) -> None:
    """`rotor rotate` as the README says, with update granted on exactly secret/data/apps/db."""
    await cluster.ready("app-db", "shop", timeout=90)
    client = env.vault_client()
    before = client.secrets.kv.v2.read_secret_version(
        path="apps/db", mount_point="secret", raise_on_deleted_version=True
    )["data"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rotor.cli.main",
        "rotate",
        "app-db",
        "-n",
        "shop",
        env={**os.environ, "KUBECONFIG": str(env.kubeconfig)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=240)
    after = client.secrets.kv.v2.read_secret_version(
        path="apps/db", mount_point="secret", raise_on_deleted_version=True
    )["data"]
    leaks.add(after["data"]["password"])
    assert proc.returncode == 0, (out.decode(), err.decode())
    assert int(after["metadata"]["version"]) == int(before["metadata"]["version"]) + 1
    assert after["data"]["username"] == "app" and after["data"]["password"] != before["data"]["password"]

    async def synced() -> dict[str, bytes] | None:
        data = await cluster.secret_data("shop", "app-db") or {}
        return data if data.get("password") == after["data"]["password"].encode() else None

    data = await wait_for(synced, timeout=60, what="the rotated password in the Secret")
    assert data["password_previous"] == before["data"]["password"].encode()


async def test_readme_dynamic_credentials_log_in_under_their_least_privilege_policy(
    cluster: Cluster,
    env: Any,
    leaks: Any,
    readme: dict[str, Any],
    postgres: PostgresServer,  # noqa: F811
) -> None:
    """The dynamic example: the lease recorded, and the credentials log in to PostgreSQL."""
    obj = await cluster.ready("shop-db", "shop", timeout=90)
    lease = obj["status"]["lease"]
    assert lease["id"].startswith("database/creds/shop-app/") and lease["duration"] == 3600
    assert lease["renewable"] is True and obj["status"]["expiry"]["notAfter"] == lease["expiresAt"]
    data = await cluster.secret_data("shop", "shop-db") or {}
    leaks.add(data["password"])
    user, password = data["username"].decode(), data["password"].decode()
    from urllib.parse import quote

    assert data["DATABASE_URL"].decode() == f"postgresql://{user}:{quote(password, safe='')}@db:5432/app"
    assert can_login(postgres, user, password), "PostgreSQL refuses the credentials Rotor wrote"

    # revokeOnDelete under that same policy (sys/leases/revoke/database/creds/shop-app/*)
    await cluster.delete("ManagedSecret", "shop-db", "shop")

    async def gone() -> bool:
        return await cluster.get("ManagedSecret", "shop-db", "shop") is None

    await wait_for(gone, timeout=30, what="the ManagedSecret deleted")
    assert "RevokeFailed" not in await cluster.event_reasons("shop", "shop-db")
    assert not can_login(postgres, user, password), "the credentials still log in after revokeOnDelete"
