"""Rotation against AWS Secrets Manager (emulator): staged write-back, grace keys, manual rotate."""

from __future__ import annotations

import json
import secrets

import pytest

from support.cluster import Cluster, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_manual_rotation_stages_and_keeps_previous(cluster: Cluster, env, namespace: str, leaks) -> None:
    sm = env.boto("secretsmanager")
    old = secrets.token_urlsafe(20)
    leaks.add(old)
    key = f"{namespace}/app"
    sm.create_secret(Name=key, SecretString=json.dumps({"username": "app", "password": old}))
    for doc in env.aws_store(namespace):
        await cluster.apply(doc, namespace)
    await cluster.apply({"apiVersion": "rotor.dev/v1alpha1", "kind": "RotationPolicy",
                         "metadata": {"name": "pw"},
                         "spec": {"preset": "database-password", "gracePeriod": "1h",
                                  "generator": {"password": {"length": 40, "digits": 2, "symbols": 0}}}},
                        namespace)
    await cluster.apply({"apiVersion": "rotor.dev/v1alpha1", "kind": "ManagedSecret", "metadata": {"name": "app"},
                         "spec": {"storeRef": {"name": "aws"}, "dataFrom": [{"extract": {"key": key}}],
                                  "rotation": {"policyRef": {"name": "pw"}, "keys": ["password"]}}}, namespace)
    ms = await cluster.ready("app", namespace)
    assert ms["status"]["rotation"]["nextRotationTime"]
    before = sm.describe_secret(SecretId=key)["VersionIdsToStages"]
    await cluster.patch("ManagedSecret", "app", {"metadata": {"annotations": {"rotor.dev/rotate": "now-1"}}}, namespace)

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
    assert json.loads(sm.get_secret_value(SecretId=key, VersionStage="AWSCURRENT")["SecretString"])["password"] == new
    cond = next(c for c in obj["status"]["conditions"] if c["type"] == "Rotating")
    assert cond["status"] == "False" and cond["reason"] == "Succeeded"
    assert obj["status"]["rotation"]["previousRetainedUntil"]
    assert "Rotated" in await cluster.event_reasons(namespace, "app")
