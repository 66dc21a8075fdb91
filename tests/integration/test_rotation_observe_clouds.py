"""The Observe strategy on Azure Key Vault and Google Secret Manager: the age comes from the
current version's time as the service reports it (Key Vault ``attributes.updated``, Secret Manager
``createTime`` of ``latest``), Expiring turns RotationOverdue past maxAge, and nothing is written."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from typing import Any

import pytest

from support.azure_keyvault import READER
from support.clouds import azure_store, gcp_store
from support.cluster import Cluster, wait_for
from support.gcp_secretmanager import ACCESSOR, VIEWER
from support.rotation import (
    MovableClock,
    condition,
    iso_namespace,
    managed_secret,
    own_operator,
    policy,
    running,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize("backend", ["azure", "gcp"])
async def test_age_from_the_current_version_and_never_written(
    cluster: Cluster, env: Any, clouds: Any, leaks: Any, backend: str
) -> None:
    async with iso_namespace(cluster, f"observe-{backend}") as ns:
        clock = MovableClock(env.workdir / f"clock-{ns}")
        key = f"{ns}-app"
        value = secrets.token_urlsafe(20)
        leaks.add(value)
        if backend == "azure":
            version = clouds.keyvault.put(key, json.dumps({"password": value}))
            changed = dt.datetime.fromtimestamp(version.updated, dt.UTC)
            docs = azure_store(clouds, ns, "cloud", role=READER)

            def versions() -> int:
                return len(clouds.keyvault.secrets[key.lower()].versions)
        else:
            clouds.secretmanager.put(key, json.dumps({"password": value}))
            changed = clouds.secretmanager.record(key).versions[-1].created
            docs = gcp_store(clouds, ns, "cloud", ACCESSOR, VIEWER)

            def versions() -> int:
                return len(clouds.secretmanager.record(key).versions)

        for doc in docs:
            await cluster.apply(doc, ns)
        await cluster.apply(policy("policy", {"strategy": "Observe", "maxAge": "1h"}), ns)
        async with running(own_operator(env, ns, clock)):
            await cluster.apply(managed_secret("app", store="cloud", key=key), ns)
            ms = await cluster.ready("app", ns, timeout=60)
            not_after = _t(ms["status"]["expiry"]["notAfter"])
            assert abs(not_after - (changed + dt.timedelta(hours=1))) <= dt.timedelta(seconds=1)
            assert condition(ms, "Expiring")["status"] == "False"
            clock.move_to(not_after + dt.timedelta(minutes=5))

            async def overdue() -> dict[str, Any] | None:
                obj = await cluster.get("ManagedSecret", "app", ns)
                cond = condition(obj, "Expiring")
                return (
                    obj if cond.get("status") == "True" and cond.get("reason") == "RotationOverdue" else None
                )

            await wait_for(overdue, timeout=30, what="Expiring=True RotationOverdue")
            assert versions() == 1, "Observe never writes"
