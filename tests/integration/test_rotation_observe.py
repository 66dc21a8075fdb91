"""The Observe strategy: age and expiry come from what the backend reports (Vault KV metadata, AWS
dates and version stages, certificates in the data); Expiring says ExpiresSoon, RotationOverdue,
RotationStalled or Expired; and nothing is ever written to the source."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from support.cluster import Cluster, wait_for
from support.objects import apply_token_store, private_pem, self_signed
from support.rotation import (
    MovableClock,
    aws_stages,
    condition,
    iso_namespace,
    kv2_write,
    managed_secret,
    own_operator,
    policy,
    request_rotation,
    running,
    wait_answered,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


async def _expiring(cluster: Cluster, ns: str, name: str, reason: str, timeout: float = 30) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        obj = await cluster.get("ManagedSecret", name, ns)
        cond = condition(obj, "Expiring")
        return obj if cond.get("status") == "True" and cond.get("reason") == reason else None

    return await wait_for(probe, timeout=timeout, what=f"Expiring=True {reason}")


def _kv2_metadata(env: Any, path: str) -> dict[str, Any]:
    return dict(
        env.vault_client().secrets.kv.v2.read_secret_metadata(path=path, mount_point="secret")["data"]
    )


async def test_vault_age_from_kv_metadata(cluster: Cluster, env: Any, leaks: Any) -> None:
    async with iso_namespace(cluster, "observe-vault") as ns:
        clock = MovableClock(env.workdir / f"clock-{ns}")
        path = f"{ns}/app"
        value = secrets.token_urlsafe(20)
        leaks.add(value)
        kv2_write(env, path, {"password": value})
        before = _kv2_metadata(env, path)
        created = _t(before["versions"][str(before["current_version"])]["created_time"].split(".")[0] + "Z")
        await apply_token_store(cluster, env, ns)
        await cluster.apply(
            policy("policy", {"strategy": "Observe", "maxAge": "2h", "rotateBefore": "30m"}), ns
        )
        async with running(own_operator(env, ns, clock)):
            await cluster.apply(managed_secret("app", key=path), ns)
            ms = await cluster.ready("app", ns, timeout=60)
            expiry = ms["status"]["expiry"]
            assert expiry["source"] == "Policy"
            assert _t(expiry["notAfter"]) == created + dt.timedelta(hours=2), "age from KV metadata"
            assert _t(expiry["renewalTime"]) == created + dt.timedelta(hours=1, minutes=30)
            assert condition(ms, "Expiring")["status"] == "False"
            assert "nextRotationTime" not in (ms["status"].get("rotation") or {}), "Observe never schedules"

            clock.move_to(created + dt.timedelta(hours=1, minutes=40))
            await _expiring(cluster, ns, "app", "ExpiresSoon")
            clock.move_to(created + dt.timedelta(hours=2, minutes=10))
            obj = await _expiring(cluster, ns, "app", "RotationOverdue")
            assert "older than the policy allows" in condition(obj, "Expiring")["message"]

            request = await request_rotation(cluster, ns, "app")
            obj = await wait_answered(cluster, ns, "app", request)
            assert obj["status"]["rotation"]["phase"] == "Failed"
            cond = condition(obj, "Rotating")
            assert cond["reason"] == "Failed" and "Observe" in cond["message"]
            after = _kv2_metadata(env, path)
            assert after["current_version"] == before["current_version"], "Observe never writes"
            assert after["versions"].keys() == before["versions"].keys()
            data = await cluster.secret_data(ns, "app") or {}
            assert data["password"] == value.encode()


async def test_aws_age_and_stages_never_written(cluster: Cluster, env: Any, leaks: Any) -> None:
    sm = env.boto("secretsmanager")
    async with iso_namespace(cluster, "observe-aws") as ns:
        clock = MovableClock(env.workdir / f"clock-{ns}")
        key = f"{ns}/app"
        value = secrets.token_urlsafe(20)
        leaks.add(value)
        sm.create_secret(Name=key, SecretString=json.dumps({"password": value}))
        described = sm.describe_secret(SecretId=key)
        changed = described["LastChangedDate"].astimezone(dt.UTC).replace(microsecond=0)
        before = aws_stages(env, key)
        for doc in env.aws_store(ns):
            await cluster.apply(doc, ns)
        await cluster.apply(policy("policy", {"strategy": "Observe", "maxAge": "1h"}), ns)
        async with running(own_operator(env, ns, clock)):
            await cluster.apply(managed_secret("app", store="aws", key=key), ns)
            ms = await cluster.ready("app", ns, timeout=60)
            not_after = _t(ms["status"]["expiry"]["notAfter"])
            assert abs(not_after - (changed + dt.timedelta(hours=1))) <= dt.timedelta(seconds=1)
            assert condition(ms, "Expiring")["status"] == "False"
            clock.move_to(not_after + dt.timedelta(minutes=5))
            await _expiring(cluster, ns, "app", "RotationOverdue")
            assert aws_stages(env, key) == before, "Observe never writes"


async def test_aws_pending_version_is_a_stalled_rotation(
    cluster: Cluster, env: Any, namespace: str, leaks: Any
) -> None:
    sm = env.boto("secretsmanager")
    key = f"{namespace}/app"
    value, pending = secrets.token_urlsafe(20), secrets.token_urlsafe(20)
    leaks.add(value, pending)
    sm.create_secret(Name=key, SecretString=json.dumps({"password": value}))
    sm.put_secret_value(
        SecretId=key, SecretString=json.dumps({"password": pending}), VersionStages=["AWSPENDING"]
    )
    before = aws_stages(env, key)
    assert any(s == ["AWSPENDING"] for s in before.values())
    for doc in env.aws_store(namespace):
        await cluster.apply(doc, namespace)
    await cluster.apply(policy("policy", {"strategy": "Observe", "maxAge": "720h"}), namespace)
    await cluster.apply(managed_secret("app", store="aws", key=key), namespace)
    obj = await _expiring(cluster, namespace, "app", "RotationStalled", timeout=60)
    assert "AWSPENDING" in condition(obj, "Expiring")["message"]
    assert condition(obj, "Ready")["status"] == "True"
    data = await cluster.secret_data(namespace, "app") or {}
    assert data["password"] == value.encode(), "the Secret holds AWSCURRENT, never the pending version"
    assert aws_stages(env, key) == before, "Observe never writes"
    assert "Expiring" in await cluster.event_reasons(namespace, "app")


def _certificate(hours: int) -> tuple[bytes, bytes, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    crt = self_signed(
        key,
        "observed.example.test",
        now - dt.timedelta(minutes=30),
        now + dt.timedelta(hours=hours),
        san=False,
    )
    return crt, private_pem(key), x509.load_pem_x509_certificate(crt)


async def test_certificate_expires_soon_then_expired(cluster: Cluster, env: Any, leaks: Any) -> None:
    crt, key_pem, cert = _certificate(hours=6)
    leaks.add(key_pem)
    async with iso_namespace(cluster, "observe-cert") as ns:
        clock = MovableClock(env.workdir / f"clock-{ns}")
        path = f"{ns}/tls"
        base = kv2_write(env, path, {"tls.crt": crt.decode(), "tls.key": key_pem.decode()})
        await apply_token_store(cluster, env, ns)
        await cluster.apply(policy("policy", {"preset": "certificate", "strategy": "Observe"}), ns)
        async with running(own_operator(env, ns, clock)):
            await cluster.apply(
                managed_secret("tls", key=path, keys=["tls.crt"], target={"type": "kubernetes.io/tls"}), ns
            )
            ms = await cluster.ready("tls", ns, timeout=60)
            expiry = ms["status"]["expiry"]
            not_after = cert.not_valid_after_utc
            renewal = not_after - (not_after - cert.not_valid_before_utc) / 3
            assert expiry["source"] == "Certificate" and _t(expiry["notAfter"]) == not_after
            assert abs(_t(expiry["renewalTime"]) - renewal) <= dt.timedelta(seconds=1)

            clock.move_to(renewal + dt.timedelta(minutes=1))
            obj = await _expiring(cluster, ns, "tls", "ExpiresSoon")
            assert condition(obj, "Ready")["status"] == "True"
            clock.move_to(not_after + dt.timedelta(minutes=1))
            obj = await _expiring(cluster, ns, "tls", "Expired")
            ready = condition(obj, "Ready")
            assert ready["status"] == "False" and ready["reason"] == "Expired"
            version = env.vault_client().secrets.kv.v2.read_secret_version(
                path=path, mount_point="secret", raise_on_deleted_version=True
            )["data"]["metadata"]["version"]
            assert version == base, "Observe never renews"
