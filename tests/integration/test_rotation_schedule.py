"""Scheduled rotation with a moved clock: ``every`` rotates once per due date, ``cron`` follows its
time zone, a window defers a due rotation until it opens, grace keys leave at
``previousRetainedUntil``, and a generated certificate is renewed at its renewalTime.

Each test runs its own operator on an ``iso-*`` namespace and moves that operator's clock through
its offset file, so nothing sleeps and the session operator is not disturbed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from cryptography import x509

from support.cluster import Cluster, wait_for
from support.objects import apply_token_store
from support.rotation import (
    MovableClock,
    condition,
    force_sync,
    iso_namespace,
    kv2_current,
    kv2_write,
    managed_secret,
    own_operator,
    policy,
    request_rotation,
    running,
    vault_source,
    wait_rotated,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _vault_created(env: Any, path: str) -> dt.datetime:
    """The current version's created_time, to the second (as status writes times)."""
    meta = env.vault_client().secrets.kv.v2.read_secret_metadata(path=path, mount_point="secret")["data"]
    created = meta["versions"][str(meta["current_version"])]["created_time"]
    return _t(created.split(".")[0] + "Z")


def _fmt(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_every_rotates_once_per_due_date_and_grace_keys_expire(
    cluster: Cluster, env: Any, leaks: Any
) -> None:
    async with iso_namespace(cluster, "every") as ns:
        clock = MovableClock(env.workdir / f"clock-{ns}")
        path, base, old = await vault_source(
            cluster,
            env,
            ns,
            leaks,
            {
                "schedule": {"every": "2h"},
                "gracePeriod": "30m",
                "generator": {"password": {"length": 30, "symbols": 0}},
            },
        )
        async with running(own_operator(env, ns, clock)):
            await cluster.apply(managed_secret("app", key=path), ns)
            ms = await cluster.ready("app", ns, timeout=60)
            due = _t(ms["status"]["rotation"]["nextRotationTime"])
            assert due == _vault_created(env, path) + dt.timedelta(hours=2), "2h after the value was made"

            clock.move_to(due - dt.timedelta(minutes=5))  # not yet due
            await force_sync(cluster, ns, "app")
            assert kv2_current(env, path)[0] == base

            clock.move_to(due + dt.timedelta(minutes=1))
            obj = await wait_rotated(cluster, ns, "app", timeout=60)
            rot = obj["status"]["rotation"]
            assert rot["trigger"] == "Scheduled" and rot["dueAt"] == _fmt(due)
            assert condition(obj, "Rotating")["reason"] == "Succeeded"
            version, source = kv2_current(env, path)
            leaks.add(source["password"])
            assert version == base + 1 and source["password"] != old and len(source["password"]) == 30
            data = await cluster.secret_data(ns, "app") or {}
            assert data["password"] == source["password"].encode()
            assert data["password_previous"] == old.encode()
            last = _t(rot["lastRotationTime"])
            assert _t(rot["nextRotationTime"]) == last + dt.timedelta(hours=2)
            assert _t(rot["previousRetainedUntil"]) == last + dt.timedelta(minutes=30)

            # the same due date never rotates again
            await force_sync(cluster, ns, "app")
            assert kv2_current(env, path)[0] == base + 1

            # the grace period ends: the previous value leaves the Secret, the source is untouched
            clock.move_to(_t(rot["previousRetainedUntil"]) + dt.timedelta(minutes=1))

            async def previous_gone() -> dict[str, bytes] | None:
                data = await cluster.secret_data(ns, "app") or {}
                return data if "password_previous" not in data else None

            data = await wait_for(previous_gone, timeout=30, what="password_previous to leave the Secret")
            assert data["password"] == source["password"].encode() and data["user"] == b"app"
            assert kv2_current(env, path)[0] == base + 1


async def test_cron_schedule_follows_its_time_zone(cluster: Cluster, env: Any, leaks: Any) -> None:
    zone = ZoneInfo("Asia/Kolkata")  # UTC+05:30, no daylight saving
    async with iso_namespace(cluster, "cron") as ns:
        clock = MovableClock(env.workdir / f"clock-{ns}")
        path, base, _ = await vault_source(
            cluster,
            env,
            ns,
            leaks,
            {
                "schedule": {"cron": "30 4 * * *", "timeZone": "Asia/Kolkata"},
                "generator": {"apiKey": {"length": 32}},
            },
        )
        async with running(own_operator(env, ns, clock)):
            await cluster.apply(managed_secret("app", key=path), ns)
            ms = await cluster.ready("app", ns, timeout=60)
            created = _t(ms["metadata"]["creationTimestamp"])
            expected = croniter("30 4 * * *", created.astimezone(zone)).get_next(dt.datetime)
            assert (expected.hour, expected.minute) == (4, 30)
            due = _t(ms["status"]["rotation"]["nextRotationTime"])
            assert due == expected.astimezone(dt.UTC)
            assert (due.hour, due.minute) == (23, 0), "04:30 in Kolkata is 23:00 UTC"

            clock.move_to(due + dt.timedelta(minutes=2))
            obj = await wait_rotated(cluster, ns, "app", timeout=60)
            rot = obj["status"]["rotation"]
            assert rot["dueAt"] == _fmt(due) and rot["trigger"] == "Scheduled"
            assert _t(rot["nextRotationTime"]) == due + dt.timedelta(days=1)
            version, source = kv2_current(env, path)
            leaks.add(source["password"])
            assert version == base + 1
            data = await cluster.secret_data(ns, "app") or {}
            assert data["password"] == source["password"].encode()


async def test_window_defers_a_due_rotation_until_it_opens(cluster: Cluster, env: Any, leaks: Any) -> None:
    async with iso_namespace(cluster, "window") as ns:
        clock = MovableClock(env.workdir / f"clock-{ns}")
        hour = (dt.datetime.now(dt.UTC).hour + 6) % 24
        path, base, old = await vault_source(
            cluster,
            env,
            ns,
            leaks,
            {
                "schedule": {"every": "1h"},
                "window": {"cron": f"0 {hour} * * *", "duration": "1h"},
                "generator": {"password": {"length": 24}},
            },
        )
        async with running(own_operator(env, ns, clock)):
            await cluster.apply(managed_secret("app", key=path), ns)
            ms = await cluster.ready("app", ns, timeout=60)
            created = _t(ms["metadata"]["creationTimestamp"])
            opens = _t(ms["status"]["rotation"]["nextRotationTime"])
            assert opens.hour == hour and opens.minute == 0 and opens > created + dt.timedelta(hours=1), (
                "the due date (created + 1h) falls outside the window: the next window start"
            )

            clock.move_to(created + dt.timedelta(hours=2))  # due, window closed
            obj = await force_sync(cluster, ns, "app")
            assert kv2_current(env, path)[0] == base, "no rotation outside the window"
            assert condition(obj, "Rotating").get("status") != "True"
            assert obj["status"]["rotation"].get("phase") is None
            assert _t(obj["status"]["rotation"]["nextRotationTime"]) == opens
            data = await cluster.secret_data(ns, "app") or {}
            assert data["password"] == old.encode()

            clock.move_to(opens + dt.timedelta(minutes=5))  # the window is open
            obj = await wait_rotated(cluster, ns, "app", timeout=60)
            started = _t(obj["status"]["rotation"]["startedAt"])
            assert opens <= started < opens + dt.timedelta(hours=1)
            version, source = kv2_current(env, path)
            leaks.add(source["password"])
            assert version == base + 1 and source["password"] != old


async def test_certificate_is_renewed_at_its_renewal_time(cluster: Cluster, env: Any, leaks: Any) -> None:
    async with iso_namespace(cluster, "cert") as ns:
        clock = MovableClock(env.workdir / f"clock-{ns}")
        path = f"{ns}/tls"
        base = kv2_write(env, path, {"tls.crt": "placeholder", "tls.key": "placeholder"})
        await apply_token_store(cluster, env, ns)
        await cluster.apply(
            policy(
                "policy",
                {
                    "preset": "certificate",
                    "generator": {
                        "selfSignedCertificate": {
                            "commonName": "svc.example.test",
                            "dnsNames": ["svc.example.test"],
                            "duration": "24h",
                        }
                    },
                },
            ),
            ns,
        )
        async with running(own_operator(env, ns, clock)):
            await cluster.apply(
                managed_secret("tls", key=path, keys=["tls.crt"], target={"type": "kubernetes.io/tls"}), ns
            )
            await cluster.ready("tls", ns, timeout=60)
            first = await wait_rotated(cluster, ns, "tls", request=await request_rotation(cluster, ns, "tls"))
            cert = x509.load_pem_x509_certificate(kv2_current(env, path)[1]["tls.crt"].encode())
            lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
            expiry = first["status"]["expiry"]
            assert expiry["source"] == "Certificate"
            assert expiry["notAfter"] == _fmt(cert.not_valid_after_utc)
            renewal = _t(expiry["renewalTime"])
            assert abs(renewal - (cert.not_valid_after_utc - lifetime / 3)) <= dt.timedelta(seconds=1)
            assert first["status"]["rotation"]["nextRotationTime"] == expiry["renewalTime"]
            assert condition(first, "Expiring")["status"] == "False"

            clock.move_to(renewal + dt.timedelta(minutes=1))
            second = await wait_rotated(
                cluster, ns, "tls", since=first["status"]["rotation"]["lastRotationTime"]
            )
            assert second["status"]["rotation"]["trigger"] == "Expiring"
            version, source = kv2_current(env, path)
            assert version == base + 2
            renewed = x509.load_pem_x509_certificate(source["tls.crt"].encode())
            assert renewed.not_valid_after_utc > cert.not_valid_after_utc
            assert renewed.serial_number != cert.serial_number
            data = await cluster.secret_data(ns, "tls") or {}
            assert (
                data["tls.crt"] == source["tls.crt"].encode()
                and data["tls.key"] == source["tls.key"].encode()
            )
            assert second["status"]["expiry"]["notAfter"] == _fmt(renewed.not_valid_after_utc)
            assert condition(second, "Expiring")["status"] == "False"
