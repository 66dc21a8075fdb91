"""Rotation against AWS (emulator): Secrets Manager staged write-back and grace keys, Parameter
Store overwrite keeping history, ``rotor rollback`` on both, and the Provider strategy's
RotateSecret."""

from __future__ import annotations

import datetime as dt
import json
import secrets

import pytest

from support.cluster import Cluster, wait_for
from support.rotation import (
    MovableClock,
    aws_current,
    aws_stages,
    condition,
    iso_namespace,
    managed_secret,
    own_operator,
    policy,
    request_rotation,
    run_rotor,
    running,
    wait_rotated,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_manual_rotation_stages_and_keeps_previous(
    cluster: Cluster, env, namespace: str, leaks
) -> None:
    sm = env.boto("secretsmanager")
    old = secrets.token_urlsafe(20)
    leaks.add(old)
    key = f"{namespace}/app"
    sm.create_secret(Name=key, SecretString=json.dumps({"username": "app", "password": old}))
    for doc in env.aws_store(namespace):
        await cluster.apply(doc, namespace)
    await cluster.apply(
        {
            "apiVersion": "rotor.dev/v1alpha1",
            "kind": "RotationPolicy",
            "metadata": {"name": "pw"},
            "spec": {
                "preset": "database-password",
                "gracePeriod": "1h",
                "generator": {"password": {"length": 40, "digits": 2, "symbols": 0}},
            },
        },
        namespace,
    )
    await cluster.apply(
        {
            "apiVersion": "rotor.dev/v1alpha1",
            "kind": "ManagedSecret",
            "metadata": {"name": "app"},
            "spec": {
                "storeRef": {"name": "aws"},
                "dataFrom": [{"extract": {"key": key}}],
                "rotation": {"policyRef": {"name": "pw"}, "keys": ["password"]},
            },
        },
        namespace,
    )
    ms = await cluster.ready("app", namespace)
    assert ms["status"]["rotation"]["nextRotationTime"]
    before = sm.describe_secret(SecretId=key)["VersionIdsToStages"]
    await cluster.patch(
        "ManagedSecret", "app", {"metadata": {"annotations": {"rotor.dev/rotate": "now-1"}}}, namespace
    )

    async def completed() -> dict | None:
        obj = await cluster.get("ManagedSecret", "app", namespace)
        rot = (obj or {}).get("status", {}).get("rotation", {})
        return obj if rot.get("phase") == "Completed" and rot.get("lastRotateRequest") == "now-1" else None

    obj = await wait_for(completed, timeout=30, what="rotation Completed")
    data = await cluster.secret_data(namespace, "app")
    assert data is not None
    new = data["password"].decode()
    leaks.add(new)
    assert new != old and len(new) == 40
    assert data["password_previous"] == old.encode()
    assert data["username"] == b"app"
    # at the source: AWSCURRENT moved to the new version, AWSPREVIOUS on the old one, no AWSPENDING left
    after = sm.describe_secret(SecretId=key)["VersionIdsToStages"]
    current = [v for v, s in after.items() if "AWSCURRENT" in s]
    assert len(current) == 1 and current[0] not in before
    previous = [v for v, s in after.items() if "AWSPREVIOUS" in s]
    assert previous and "AWSCURRENT" in before[previous[0]]
    assert not any("AWSPENDING" in s for s in after.values())
    assert (
        json.loads(sm.get_secret_value(SecretId=key, VersionStage="AWSCURRENT")["SecretString"])["password"]
        == new
    )
    cond = next(c for c in obj["status"]["conditions"] if c["type"] == "Rotating")
    assert cond["status"] == "False" and cond["reason"] == "Succeeded"
    assert obj["status"]["rotation"]["previousRetainedUntil"]
    assert "Rotated" in await cluster.event_reasons(namespace, "app")


# --------------------------------------------------------------------------- Parameter Store
async def test_parameter_store_overwrite_keeps_history_and_rolls_back(
    cluster: Cluster, env, namespace: str, leaks
) -> None:
    ssm = env.boto("ssm")
    name = f"/{namespace}/app/password"
    old = secrets.token_urlsafe(20)
    leaks.add(old)
    ssm.put_parameter(Name=name, Value=old, Type="SecureString")
    for doc in env.aws_store(namespace, name="ssm", service="ParameterStore"):
        await cluster.apply(doc, namespace)
    await cluster.apply(policy("pw", {"preset": "database-password", "gracePeriod": "1h"}), namespace)
    await cluster.apply(
        managed_secret(
            "app", store="ssm", policy_name="pw", data=[{"secretKey": "password", "remoteRef": {"key": name}}]
        ),
        namespace,
    )
    await cluster.ready("app", namespace, timeout=60)
    request = await request_rotation(cluster, namespace, "app")
    await wait_rotated(cluster, namespace, "app", request=request)

    history = ssm.get_parameter_history(Name=name, WithDecryption=True)["Parameters"]
    assert [h["Version"] for h in history] == [1, 2], "an overwrite: the old version stays in the history"
    assert history[0]["Value"] == old and history[1]["Type"] == "SecureString"
    new = history[1]["Value"]
    leaks.add(new)
    assert new != old and len(new) == 32
    data = await cluster.secret_data(namespace, "app") or {}
    assert data["password"] == new.encode() and data["password_previous"] == old.encode()

    done = await run_rotor(env, leaks, "rollback", "app", "-n", namespace, "--timeout", "60s")
    assert done.code == 0, done.lines
    assert "version 3 now holds the value of version 1" in done.lines[-1], done.lines
    history = ssm.get_parameter_history(Name=name, WithDecryption=True)["Parameters"]
    assert [h["Version"] for h in history] == [1, 2, 3] and history[2]["Value"] == old
    data = await cluster.secret_data(namespace, "app") or {}
    assert data["password"] == old.encode()


# --------------------------------------------------------------------------- rollback
async def test_rollback_moves_awscurrent_back(cluster: Cluster, env, namespace: str, leaks) -> None:
    sm = env.boto("secretsmanager")
    key = f"{namespace}/app"
    old = secrets.token_urlsafe(20)
    leaks.add(old)
    sm.create_secret(Name=key, SecretString=json.dumps({"username": "app", "password": old}))
    first = next(iter(aws_stages(env, key)))
    for doc in env.aws_store(namespace):
        await cluster.apply(doc, namespace)
    await cluster.apply(policy("pw", {"preset": "database-password", "gracePeriod": "0"}), namespace)
    await cluster.apply(managed_secret("app", store="aws", key=key, policy_name="pw"), namespace)
    await cluster.ready("app", namespace, timeout=60)
    request = await request_rotation(cluster, namespace, "app")
    await wait_rotated(cluster, namespace, "app", request=request)
    rotated, text = aws_current(env, key)
    leaks.add(json.loads(text)["password"])
    assert rotated != first

    done = await run_rotor(env, leaks, "rollback", "app", "-n", namespace, "--timeout", "60s")
    assert done.code == 0, done.lines
    assert f"version {first} is current again (was {rotated})" in done.lines[-1], done.lines
    stages = aws_stages(env, key)
    assert "AWSCURRENT" in stages[first] and "AWSPREVIOUS" in stages[rotated]
    assert len(stages) == 2, "a rollback moves labels; it makes no new version"
    data = await cluster.secret_data(namespace, "app") or {}
    assert data["password"] == old.encode() and data["username"] == b"app"


# --------------------------------------------------------------------------- Provider: RotateSecret
async def test_aws_rotate_secret_is_requested_and_tracked(cluster: Cluster, env, leaks) -> None:
    """The emulator accepts RotateSecret without a rotation function, moves AWSCURRENT to the new
    version and leaves it empty (a real AWS account runs the function). Rotor calls RotateSecret,
    keeps the last good Secret while the new version has no value, and completes once the function
    (played here by the test) has put the new value."""
    sm = env.boto("secretsmanager")
    async with iso_namespace(cluster, "rotate-secret") as ns:
        clock = MovableClock(env.workdir / f"clock-{ns}")
        key = f"{ns}/app"
        old, new = secrets.token_urlsafe(20), secrets.token_urlsafe(20)
        leaks.add(old, new)
        sm.create_secret(Name=key, SecretString=json.dumps({"password": old}))
        first = next(iter(aws_stages(env, key)))
        for doc in env.aws_store(ns):
            await cluster.apply(doc, ns)
        await cluster.apply(
            policy(
                "policy",
                {"strategy": "Provider", "schedule": {"every": "720h"}, "provider": {"awsRotateSecret": {}}},
            ),
            ns,
        )
        async with running(own_operator(env, ns, clock)):
            await cluster.apply(managed_secret("app", store="aws", key=key), ns)
            await cluster.ready("app", ns, timeout=60)
            request = await request_rotation(cluster, ns, "app")

            async def failed() -> dict | None:
                obj = await cluster.get("ManagedSecret", "app", ns)
                return obj if condition(obj, "Rotating").get("reason") == "Failed" else None

            obj = await wait_for(failed, timeout=60, what="Rotating=False Failed")
            token = obj["status"]["rotation"]["pendingVersion"]
            stages = aws_stages(env, key)
            assert stages[token] == ["AWSCURRENT"] and stages[first] == ["AWSPREVIOUS"], (
                "RotateSecret was called"
            )
            assert sm.describe_secret(SecretId=key).get("LastRotatedDate") is not None
            assert "rotation function" in condition(obj, "Rotating")["message"]
            data = await cluster.secret_data(ns, "app") or {}
            assert data["password"] == old.encode(), "the last good Secret stays"

            # the rotation function's work: a new current value
            sm.put_secret_value(
                SecretId=key, SecretString=json.dumps({"password": new}), VersionStages=["AWSCURRENT"]
            )
            clock.advance(dt.timedelta(minutes=10))  # past the retry back-off
            await wait_rotated(cluster, ns, "app", request=request, timeout=60)
            data = await cluster.secret_data(ns, "app") or {}
            assert data["password"] == new.encode()
