"""Crash safety (DESIGN §2): an operator killed at each point of a rotation resumes on restart and
ends with the source's current value in the Secret, exactly one new value at the source for the
one rotation, and never an empty Secret. Also: a concurrent writer between Rotor's read and its
check-and-set write makes the rotation fail cleanly and retry, keeping what the other writer wrote.

Each test runs its own operator on an ``iso-*`` namespace. The operator is killed deterministically
by the test-only hook ``ROTOR_FAULT_EXIT_AFTER_PHASE`` (inert unless set), which exits the process
right after the named phase is recorded in status (or at BeforeWrite/AfterWrite inside Pending).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
from typing import Any

import pytest

from support.cluster import Cluster, wait_for
from support.rotation import (
    MovableClock,
    aws_current,
    aws_stages,
    condition,
    force_sync,
    iso_namespace,
    kv2_current,
    kv2_write,
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
VAULT_POINTS = ["Pending", "BeforeWrite", "AfterWrite", "Written"]
AWS_POINTS = ["Pending", "BeforeWrite", "AfterWrite", "Staged", "Verified", "Promoted"]
#: where status.rotation.phase stands when the process dies at each point
RECORDED = {"BeforeWrite": "Pending", "AfterWrite": "Pending"}


async def _setup(cluster: Cluster, env: Any, ns: str, backend: str, old: str) -> tuple[str, Any]:
    """The source (returns its key and what identifies its current version), store and policy."""
    key = f"{ns}/app"
    if backend == "vault":
        base: Any = kv2_write(env, key, {"password": old, "user": "app"})
        for doc in env.vault_token_store(ns):
            await cluster.apply(doc, ns)
    else:
        env.boto("secretsmanager").create_secret(
            Name=key, SecretString=json.dumps({"password": old, "user": "app"})
        )
        base = set(aws_stages(env, key))
        for doc in env.aws_store(ns, name="vault"):  # the same store name keeps the manifests alike
            await cluster.apply(doc, ns)
    await cluster.apply(policy("policy", {"preset": "database-password", "gracePeriod": "1h"}), ns)
    return key, base


async def _source_password(env: Any, backend: str, key: str) -> str:
    if backend == "vault":
        return str(kv2_current(env, key)[1]["password"])
    return str(json.loads(aws_current(env, key)[1])["password"])


@pytest.mark.parametrize(
    ("backend", "point"), [("vault", p) for p in VAULT_POINTS] + [("aws", p) for p in AWS_POINTS]
)
async def test_killed_during_rotation_resumes_exactly_once(
    cluster: Cluster, env: Any, leaks: Any, backend: str, point: str
) -> None:
    old = secrets.token_urlsafe(20)
    leaks.add(old)
    async with iso_namespace(cluster, "crash") as ns:
        key, base = await _setup(cluster, env, ns, backend, old)
        doomed = own_operator(env, ns, extra_env={FAULT: point}, name=f"crash-{ns}-1")
        await asyncio.to_thread(doomed.start)
        try:
            await cluster.apply(managed_secret("app", key=key), ns)
            await cluster.ready("app", ns, timeout=60)
            request = await request_rotation(cluster, ns, "app")
            code = await wait_exit(doomed)
        finally:
            await asyncio.to_thread(doomed.stop)
        assert code == 137, f"the operator was to die at {point}; see {doomed.log_path}"
        rot = await rotation_status(cluster, ns, "app")
        assert rot["phase"] == RECORDED.get(point, point)
        data = await cluster.secret_data(ns, "app") or {}
        assert data.get("password") == old.encode(), "the Secret keeps the last good value until the sync"

        async with running(own_operator(env, ns, name=f"crash-{ns}-2")):
            obj = await wait_rotated(cluster, ns, "app", request=request, timeout=90)
            current = await _source_password(env, backend, key)
            leaks.add(current)
            data = await cluster.secret_data(ns, "app") or {}
            assert current != old
            assert data["password"] == current.encode(), (
                "no lost value: the Secret holds the source's current"
            )
            assert data["password_previous"] == old.encode()
            assert data["user"] == b"app"
            assert condition(obj, "Rotating")["reason"] == "Succeeded"
            # nothing more happens for this due date, even when asked to look again
            await force_sync(cluster, ns, "app")
            if backend == "vault":
                version, source = kv2_current(env, key)
                assert version == base + 1, f"exactly one new version, got {version - base}"
                assert source["password"] == current
            else:
                stages = aws_stages(env, key)
                new = set(stages) - base
                assert len(new) == 1, f"exactly one new version, got {len(new)}: {stages}"
                assert "AWSCURRENT" in stages[new.pop()]
                assert [s for s in stages.values() if "AWSPREVIOUS" in s]
                assert not any("AWSPENDING" in s for s in stages.values())
            assert (await rotation_status(cluster, ns, "app"))["phase"] == "Completed"


async def test_concurrent_writer_makes_the_write_fail_and_retry(
    cluster: Cluster, env: Any, leaks: Any
) -> None:
    """A writer between Rotor's read and its write: check-and-set refuses Rotor's write, nothing is
    lost, and the retry writes on top of the other writer's version, keeping its properties."""
    old = secrets.token_urlsafe(20)
    leaks.add(old)
    async with iso_namespace(cluster, "cas") as ns:
        key, base = await _setup(cluster, env, ns, "vault", old)
        clock = MovableClock(env.workdir / f"clock-{ns}")
        hold = env.workdir / f"hold-{ns}"
        op = own_operator(
            env,
            ns,
            clock,
            extra_env={"ROTOR_FAULT_HOLD_AFTER_PHASE": "BeforeWrite", "ROTOR_FAULT_HOLD_FILE": str(hold)},
        )
        async with running(op):
            await cluster.apply(managed_secret("app", key=key), ns)
            await cluster.ready("app", ns, timeout=60)
            request = await request_rotation(cluster, ns, "app")

            async def about_to_write() -> dict[str, Any] | None:
                rot = await rotation_status(cluster, ns, "app")
                return rot if str(rot.get("pendingVersion", "")).startswith("hmac:") else None

            await wait_for(about_to_write, timeout=60, what="the rotation to record what it will write")
            other = kv2_write(env, key, {"password": old, "user": "app", "note": "written-concurrently"})
            hold.write_text("go")

            async def failed() -> dict[str, Any] | None:
                obj = await cluster.get("ManagedSecret", "app", ns)
                cond = condition(obj, "Rotating")
                return obj if cond.get("reason") == "Failed" else None

            obj = await wait_for(failed, timeout=60, what="Rotating=False Failed")
            cond = condition(obj, "Rotating")
            assert cond["status"] == "False" and "check-and-set" in cond["message"], cond
            rot = obj["status"]["rotation"]
            assert rot["failedAttempts"] == 1 and rot["phase"] == "Pending"
            assert kv2_current(env, key)[0] == other, "Rotor's write was refused"
            data = await cluster.secret_data(ns, "app") or {}
            assert data["password"] == old.encode()

            clock.advance(dt.timedelta(minutes=5))  # past the retry back-off
            await wait_rotated(cluster, ns, "app", request=request, timeout=60)
            version, source = kv2_current(env, key)
            leaks.add(source["password"])
            assert version == other + 1
            assert source["note"] == "written-concurrently" and source["user"] == "app"
            assert source["password"] != old
            data = await cluster.secret_data(ns, "app") or {}
            assert data["password"] == source["password"].encode()
            assert data["note"] == b"written-concurrently"
            assert base + 2 == version
