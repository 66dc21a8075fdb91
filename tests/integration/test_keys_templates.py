"""Key rewrite (DESIGN §11), against the real apiserver, Vault and the AWS emulator: the happy path
per provider, and each bad input with its reason, the Secret left exactly as it was."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest

from support.cluster import Cluster, wait_for
from support.objects import apply_token_store, assert_unchanged, ms_manifest
from support.rotation import kv2_write

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _rw(source: str, target: str) -> dict[str, Any]:
    return {"regexp": {"source": source, "target": target}}


async def _invalid_key(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    cond = await cluster.wait_condition(
        "ManagedSecret", name, namespace, status="False", reason="InvalidKey", timeout=30
    )
    ms = await cluster.get("ManagedSecret", name, namespace)
    assert ms is not None and ms["status"]["observedGeneration"] == ms["metadata"]["generation"]
    return cond


async def test_vault_extract_and_find_rewrite(cluster: Cluster, env, namespace: str, leaks) -> None:
    password, token, cert = (secrets.token_urlsafe(24) for _ in range(3))
    leaks.add(password, token, cert)
    kv2_write(env, f"{namespace}/db", {"db-user": "app", "db-password": password})
    kv2_write(env, f"{namespace}/svc/api/token", {"value": token})
    kv2_write(env, f"{namespace}/svc/web/cert", {"value": cert})
    await apply_token_store(cluster, env, namespace)
    spec = {
        "dataFrom": [
            {"extract": {"key": f"{namespace}/db"}, "rewrite": [_rw("^db-", ""), _rw("^(.*)$", "DB_$1")]},
            {"find": {"path": f"{namespace}/svc/"}, "rewrite": [_rw("^(?P<app>[^/]+)/(.*)$", "${app}.$2")]},
        ]
    }
    await cluster.apply(ms_manifest("app", **spec), namespace)
    await cluster.ready("app", namespace)
    assert await cluster.secret_data(namespace, "app") == {
        "DB_user": b"app",
        "DB_password": password.encode(),
        "api.token": token.encode(),
        "web.cert": cert.encode(),
    }
    before = await cluster.secret(namespace, "app")
    assert before is not None

    # two remote names rewritten to one key: InvalidKey naming both, the Secret kept
    spec["dataFrom"][1]["rewrite"] = [_rw("^[^/]+/(.*)$", "$1"), _rw("^(token|cert)$", "x")]
    await cluster.apply(ms_manifest("app", **spec), namespace)
    cond = await _invalid_key(cluster, namespace, "app")
    assert "'api/token'" in cond["message"] and "'web/cert'" in cond["message"], cond
    assert token not in cond["message"] and cert not in cond["message"]
    await assert_unchanged(cluster, namespace, "app", before)

    # a result that is not a Secret key (the '/' kept): InvalidKey naming it
    spec["dataFrom"][1]["rewrite"] = [_rw("^api", "API")]
    await cluster.apply(ms_manifest("app", **spec), namespace)
    await wait_message(cluster, namespace, "app", "'API/token'")
    await assert_unchanged(cluster, namespace, "app", before)

    # fixed: Ready again with the new keys
    spec["dataFrom"][1]["rewrite"] = [_rw("/", "_")]
    await cluster.apply(ms_manifest("app", **spec), namespace)
    await cluster.wait_condition(
        "ManagedSecret", "app", namespace, status="True", reason="Synced", timeout=30
    )
    data = await cluster.secret_data(namespace, "app")
    assert data is not None and data["api_token"] == token.encode() and "api.token" not in data


async def wait_message(cluster: Cluster, namespace: str, name: str, text: str) -> None:
    async def has() -> bool:
        ms = await cluster.get("ManagedSecret", name, namespace)
        conds = (ms or {}).get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and text in c.get("message", "") for c in conds)

    await wait_for(has, timeout=30)


async def test_aws_rewrite_extract_and_parameter_find(cluster: Cluster, env, namespace: str, leaks) -> None:
    sm, ssm = env.boto("secretsmanager"), env.boto("ssm")
    api_key, flag = secrets.token_hex(16), secrets.token_hex(8)
    leaks.add(api_key, flag)
    sm.create_secret(Name=f"{namespace}/pay", SecretString=json.dumps({"api-key": api_key}))
    ssm.put_parameter(Name=f"/{namespace}/flags/new/checkout", Value=flag, Type="SecureString")
    for doc in [*env.aws_store(namespace), *env.aws_store(namespace, "ssm", service="ParameterStore")]:
        await cluster.apply(doc, namespace)
    await cluster.apply(
        ms_manifest(
            "pay", "aws", dataFrom=[{"extract": {"key": f"{namespace}/pay"}, "rewrite": [_rw("-", "_")]}]
        ),
        namespace,
    )
    await cluster.apply(
        ms_manifest(
            "flags", "ssm", dataFrom=[{"find": {"path": f"/{namespace}/flags/"}, "rewrite": [_rw("/", "-")]}]
        ),
        namespace,
    )
    await cluster.ready("pay", namespace)
    await cluster.ready("flags", namespace)
    assert await cluster.secret_data(namespace, "pay") == {"api_key": api_key.encode()}
    assert await cluster.secret_data(namespace, "flags") == {"new-checkout": flag.encode()}


async def test_rewrite_on_a_database_source_is_refused_by_the_crd(
    cluster: Cluster, env, namespace: str
) -> None:
    await apply_token_store(cluster, env, namespace)
    bad = ms_manifest(
        "db", dataFrom=[{"vaultDatabase": {"mount": "database", "role": "app"}, "rewrite": [_rw("a", "b")]}]
    )
    with pytest.raises(Exception, match="rewrite is used only with extract or find"):
        await cluster.apply(bad, namespace)
