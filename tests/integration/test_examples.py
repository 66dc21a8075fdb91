"""Every manifest in examples/ works as documented: applied against the real servers (with the
values `rotor demo` seeds), every ManagedSecret becomes Ready with the data the example promises."""

from __future__ import annotations

import contextlib
import json

import pytest

from rotor.devenv.examples import EXAMPLES, apply, managed_secrets
from rotor.devenv.seed import DEMO_NAMESPACES, seed_aws, seed_vault
from support.cluster import Cluster

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_every_example_becomes_ready(cluster: Cluster, env, leaks) -> None:
    for ns in DEMO_NAMESPACES:
        with contextlib.suppress(Exception):
            await cluster.create_namespace(ns)
    vault_values = seed_vault(env.vault_client())
    aws_values = seed_aws(env.aws_endpoint)
    for data in vault_values.values():
        leaks.add(*[v for v in data.values() if isinstance(v, str) and v not in ("app", "orders")])
    for value in aws_values.values():
        leaks.add(value)
        if value.startswith("{"):
            leaks.add(*json.loads(value).values())
    apply(str(env.kubectl), str(env.kubeconfig), vault_addr=env.vault_addr, aws_endpoint=env.aws_endpoint)
    wanted = managed_secrets(EXAMPLES)
    assert len(wanted) >= 8
    for ns, name in wanted:
        await cluster.ready(name, ns, timeout=60)

    app_db = await cluster.secret_data("demo", "app-db")
    assert app_db is not None
    password = vault_values["apps/db"]["password"]
    from urllib.parse import quote

    assert (
        app_db["DATABASE_URL"].decode() == f"postgresql://app:{quote(password, safe='')}@db.demo.svc:5432/app"
    )
    tls = await cluster.secret("demo", "web-tls")
    assert tls is not None and tls["type"] == "kubernetes.io/tls"
    web = await cluster.get("ManagedSecret", "web-tls", "demo")
    assert web is not None and web["status"]["expiry"]["source"] == "Certificate"
    for ns in ("team-a", "team-b"):
        data = await cluster.secret_data(ns, "team-config")
        assert data == {"api-token": vault_values[f"tenants/{ns}/config"]["api-token"].encode()}
    payments = await cluster.secret_data("demo", "payments")
    assert payments is not None and set(payments) == {"api-key", "signing-secret"}
    flags = await cluster.secret_data("demo", "feature-flags")
    assert flags is not None and flags["new-checkout"] == b"true"
    api = await cluster.secret_data("demo", "api-keys")
    assert api is not None and set(api) == {"stripe-key", "webhook-secret"}
