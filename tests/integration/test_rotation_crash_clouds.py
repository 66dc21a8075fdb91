"""Crash safety on Azure Key Vault and Google Secret Manager (DESIGN §2), as for Vault in
test_rotation_crash: an operator killed at each point of a rotation resumes on restart and ends
with the source's current value in the Secret and exactly one new version at the source; and a
concurrent writer between Rotor's read and its write makes Rotor's own check-and-set refuse the
write, then the retry writes on top of the other writer's version."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
from typing import Any

import pytest

from support.azure_keyvault import OFFICER
from support.clouds import azure_store, gcp_store
from support.cluster import Cluster, wait_for
from support.gcp_secretmanager import ACCESSOR, VERSION_ADDER, VIEWER
from support.rotation import (
    MovableClock,
    condition,
    force_sync,
    iso_namespace,
    managed_secret,
    own_operator,
    policy,
    request_rotation,
    rotation_status,
    running,
    wait_exit,
    wait_rotated,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

FAULT = "ROTOR_FAULT_EXIT_AFTER_PHASE"
POINTS = ["Pending", "BeforeWrite", "AfterWrite", "Written"]
RECORDED = {"BeforeWrite": "Pending", "AfterWrite": "Pending"}


class Source:
    """One secret in a cloud test server, seen as its versions' values."""

    def __init__(self, clouds: Any, backend: str, key: str) -> None:
        self.clouds, self.backend, self.key = clouds, backend, key

    def put(self, value: dict[str, str]) -> None:
        if self.backend == "azure":
            self.clouds.keyvault.put(self.key, json.dumps(value))
        else:
            self.clouds.secretmanager.put(self.key, json.dumps(value))

    def values(self) -> list[dict[str, str]]:
        if self.backend == "azure":
            versions = self.clouds.keyvault.secrets[self.key.lower()].versions
            return [json.loads(v.value) for v in versions]
        return [json.loads(v.data) for v in self.clouds.secretmanager.record(self.key).versions]

    def store(self, ns: str) -> list[dict[str, Any]]:
        if self.backend == "azure":
            return azure_store(self.clouds, ns, "cloud", role=OFFICER)
        return gcp_store(self.clouds, ns, "cloud", ACCESSOR, VIEWER, VERSION_ADDER)


async def _setup(cluster: Cluster, clouds: Any, ns: str, backend: str, old: str) -> Source:
    source = Source(clouds, backend, f"{ns}-app")
    source.put({"password": old, "user": "app"})
    for doc in source.store(ns):
        await cluster.apply(doc, ns)
    await cluster.apply(policy("policy", {"preset": "database-password", "gracePeriod": "1h"}), ns)
    return source


@pytest.mark.parametrize(("backend", "point"), [(b, p) for b in ("azure", "gcp") for p in POINTS])
async def test_killed_during_rotation_resumes_with_exactly_one_new_version(
    cluster: Cluster, env: Any, clouds: Any, leaks: Any, backend: str, point: str
) -> None:
    old = secrets.token_urlsafe(20)
    leaks.add(old)
    async with iso_namespace(cluster, "crash") as ns:
        source = await _setup(cluster, clouds, ns, backend, old)
        doomed = own_operator(env, ns, extra_env={FAULT: point}, name=f"crash-{ns}-1")
        await asyncio.to_thread(doomed.start)
        try:
            await cluster.apply(managed_secret("app", store="cloud", key=source.key), ns)
            await cluster.ready("app", ns, timeout=60)
            request = await request_rotation(cluster, ns, "app")
            code = await wait_exit(doomed)
        finally:
            await asyncio.to_thread(doomed.stop)
        assert code == 137, f"the operator was to die at {point}; see {doomed.log_path}"
        assert (await rotation_status(cluster, ns, "app"))["phase"] == RECORDED.get(point, point)
        data = await cluster.secret_data(ns, "app") or {}
        assert data.get("password") == old.encode(), "the Secret keeps the last good value until the sync"

        async with running(own_operator(env, ns, name=f"crash-{ns}-2")):
            await wait_rotated(cluster, ns, "app", request=request, timeout=90)
            await force_sync(cluster, ns, "app")
            values = source.values()
            current = values[-1]["password"]
            leaks.add(current)
            assert len(values) == 2, f"exactly one new version, got {len(values) - 1}"
            assert current != old and values[-1]["user"] == "app"
            data = await cluster.secret_data(ns, "app") or {}
            assert data["password"] == current.encode()
            assert data["password_previous"] == old.encode()
            assert (await rotation_status(cluster, ns, "app"))["phase"] == "Completed"


@pytest.mark.parametrize("backend", ["azure", "gcp"])
async def test_concurrent_writer_is_not_overwritten(
    cluster: Cluster, env: Any, clouds: Any, leaks: Any, backend: str
) -> None:
    old = secrets.token_urlsafe(20)
    leaks.add(old)
    async with iso_namespace(cluster, "cas") as ns:
        source = await _setup(cluster, clouds, ns, backend, old)
        clock = MovableClock(env.workdir / f"clock-{ns}")
        hold = env.workdir / f"hold-{ns}"
        op = own_operator(
            env,
            ns,
            clock,
            extra_env={"ROTOR_FAULT_HOLD_AFTER_PHASE": "BeforeWrite", "ROTOR_FAULT_HOLD_FILE": str(hold)},
        )
        async with running(op):
            await cluster.apply(managed_secret("app", store="cloud", key=source.key), ns)
            await cluster.ready("app", ns, timeout=60)
            request = await request_rotation(cluster, ns, "app")

            async def about_to_write() -> dict[str, Any] | None:
                rot = await rotation_status(cluster, ns, "app")
                return rot if str(rot.get("pendingVersion", "")).startswith("hmac:") else None

            await wait_for(about_to_write, timeout=60, what="the rotation to record what it will write")
            source.put({"password": old, "user": "app", "note": "written-concurrently"})
            hold.write_text("go")

            async def failed() -> dict[str, Any] | None:
                obj = await cluster.get("ManagedSecret", "app", ns)
                return obj if condition(obj, "Rotating").get("reason") == "Failed" else None

            obj = await wait_for(failed, timeout=60, what="Rotating=False Failed")
            assert "changed since it was read" in condition(obj, "Rotating")["message"]
            assert len(source.values()) == 2, "Rotor's write was refused"

            clock.advance(dt.timedelta(minutes=5))  # past the retry back-off
            await wait_rotated(cluster, ns, "app", request=request, timeout=60)
            values = source.values()
            leaks.add(values[-1]["password"])
            assert len(values) == 3
            assert values[-1]["note"] == "written-concurrently" and values[-1]["password"] != old
            data = await cluster.secret_data(ns, "app") or {}
            assert data["password"] == values[-1]["password"].encode()
