"""Prometheus metrics over HTTP (DESIGN §5), scraped from a real ``rotor run``.

The test runs its own operator on its own ``iso-metrics-*`` namespace (the session operator
ignores ``iso-*``), so every per-object series it sees is one of its three ManagedSecrets: a
ready one, a failing one (KeyNotFound) and one holding a certificate past its renewal time.
The text is parsed with prometheus_client's own parser, as Prometheus would read it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric import ec
from prometheus_client.parser import text_string_to_metric_families

from rotor import __version__
from support.cluster import Cluster, wait_for
from support.environment import TestEnvironment
from support.leaks import LeakRegistry
from support.objects import apply_token_store, data_item, iso_namespace_fixture, ms_manifest, self_signed
from support.operator import OperatorProcess
from support.rotation import kv2_write, own_operator, running

pytestmark = pytest.mark.asyncio(loop_scope="session")

Labels = tuple[tuple[str, str], ...]
Samples = dict[str, dict[Labels, float]]


# ---------------------------------------------------------------------------------------------- fixtures
iso_namespace = iso_namespace_fixture("metrics")


@pytest_asyncio.fixture(loop_scope="session")
async def metrics_operator(env: TestEnvironment, iso_namespace: str) -> AsyncIterator[OperatorProcess]:
    async with running(own_operator(env, iso_namespace, name=f"op-metrics-{iso_namespace}")) as op:
        yield op


# ---------------------------------------------------------------------------------------------- helpers
def parse(text: str) -> Samples:
    """{sample name: {sorted labels: value}}, through Prometheus' own text parser."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def series(samples: Samples, metric: str, **labels: str) -> dict[Labels, float]:
    """The samples of ``metric`` whose labels include ``labels``."""
    return {k: v for k, v in samples.get(metric, {}).items() if set(labels.items()) <= set(k)}


def one(samples: Samples, metric: str, **labels: str) -> float | None:
    found = series(samples, metric, **labels)
    assert len(found) <= 1, f"{metric}{labels} matched several series: {found}"
    return next(iter(found.values()), None)


async def scrape(op: OperatorProcess) -> Samples:
    return parse(await asyncio.to_thread(op.metrics))


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def ms(name: str, key: str, prop: str, secret_key: str) -> dict[str, Any]:
    return ms_manifest(name, data=[data_item(secret_key, key, prop)])


# ---------------------------------------------------------------------------------------------- the test
async def test_metrics_reflect_current_state_and_forget_deleted_objects(
    cluster: Cluster,
    env: TestEnvironment,
    iso_namespace: str,
    metrics_operator: OperatorProcess,
    leaks: LeakRegistry,
) -> None:
    ns = iso_namespace
    op = metrics_operator

    # health and readiness answer on the metrics port
    assert await asyncio.to_thread(http_status, op.metrics_url + "/healthz") == 200
    assert await asyncio.to_thread(http_status, op.metrics_url + "/readyz") == 200

    password = secrets.token_urlsafe(24)
    leaks.add(password)
    kv2_write(env, f"{ns}/good", {"password": password})
    # Lifetime 4 h, 1 h left: renewal (at 2/3 of the lifetime) was 20 minutes ago.
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    not_before, not_after = now - dt.timedelta(hours=3), now + dt.timedelta(hours=1)
    cert_pem = self_signed(ec.generate_private_key(ec.SECP256R1()), "metrics.example", not_before, not_after)
    kv2_write(env, f"{ns}/tls", {"crt": cert_pem.decode()})

    await apply_token_store(cluster, env, ns)
    await cluster.apply(ms("good", f"{ns}/good", "password", "password"), ns)
    await cluster.apply(ms("missing", f"{ns}/does-not-exist", "password", "password"), ns)
    await cluster.apply(ms("expiring", f"{ns}/tls", "crt", "tls.crt"), ns)

    await cluster.ready("good", ns, timeout=60)
    await cluster.wait_condition(
        "ManagedSecret", "missing", ns, status="False", reason="KeyNotFound", timeout=60
    )
    await cluster.ready("expiring", ns, timeout=60)
    await cluster.wait_condition(
        "ManagedSecret", "expiring", ns, "Expiring", status="True", reason="ExpiresSoon", timeout=60
    )

    # The collector reads the operator's index, fed by watch events: poll until it has caught up
    # with the statuses just seen.
    expected_ready = {"good": 1.0, "missing": 0.0, "expiring": 1.0}

    async def caught_up() -> Samples | None:
        samples = await scrape(op)
        ready = {
            dict(k)["name"]: v for k, v in series(samples, "rotor_managedsecret_ready", namespace=ns).items()
        }
        expiring = one(samples, "rotor_managedsecret_expiry_timestamp_seconds", namespace=ns, name="expiring")
        return samples if ready == expected_ready and expiring is not None else None

    samples = await wait_for(caught_up, timeout=30, interval=0.5, what="the per-object series of all three")

    # expiry: exactly the certificate's notAfter; renewal at 2/3 of its lifetime, already passed
    expiry = one(samples, "rotor_managedsecret_expiry_timestamp_seconds", namespace=ns, name="expiring")
    assert expiry == not_after.timestamp()
    renewal = one(samples, "rotor_managedsecret_renewal_timestamp_seconds", namespace=ns, name="expiring")
    assert renewal is not None
    lifetime = (not_after - not_before).total_seconds()
    assert abs(renewal - (not_after.timestamp() - lifetime / 3)) < 1.0
    assert renewal < dt.datetime.now(dt.UTC).timestamp()
    status = (await cluster.get("ManagedSecret", "expiring", ns) or {})["status"]
    assert dt.datetime.fromisoformat(status["expiry"]["notAfter"].replace("Z", "+00:00")) == not_after
    # the good and the failing one carry no certificate, no policy: no expiry series for them
    assert one(samples, "rotor_managedsecret_expiry_timestamp_seconds", namespace=ns, name="good") is None
    assert one(samples, "rotor_managedsecret_last_sync_timestamp_seconds", namespace=ns, name="good")

    # process-wide counters
    errors = one(samples, "rotor_sync_total", result="error")
    assert errors is not None and errors > 0
    reads = one(
        samples,
        "rotor_provider_requests_total",
        store=f"SecretStore/{ns}/vault",
        provider="vault",
        operation="read",
        result="success",
    )
    assert reads is not None and reads > 0, series(samples, "rotor_provider_requests_total")
    assert one(samples, "rotor_secretstore_ready", namespace=ns, name="vault", kind="SecretStore") == 1.0
    assert series(samples, "rotor_build_info") == {(("version", __version__),): 1.0}

    # a deleted ManagedSecret leaves no series behind; the others stay
    await cluster.delete("ManagedSecret", "missing", ns)

    async def forgotten() -> Samples | None:
        now_samples = await scrape(op)
        return (
            None
            if series(now_samples, "rotor_managedsecret_ready", namespace=ns, name="missing")
            else now_samples
        )

    after = await wait_for(
        forgotten, timeout=30, interval=0.5, what="the deleted ManagedSecret's series to go"
    )
    assert not [
        k for family in after.values() for k in family if ("namespace", ns) in k and ("name", "missing") in k
    ]
    assert one(after, "rotor_managedsecret_ready", namespace=ns, name="good") == 1.0
    assert one(after, "rotor_managedsecret_ready", namespace=ns, name="expiring") == 1.0

    text = await asyncio.to_thread(op.metrics)
    leaks.capture("metrics of the iso-metrics operator", text)
    assert password not in text
