"""Prometheus metrics over HTTP (DESIGN §5), scraped from a real ``rotor run``.

The test runs its own operator on its own ``iso-metrics-*`` namespace (the session operator
ignores ``iso-*``), so every per-object series it sees is one of its three ManagedSecrets: a
ready one, a failing one (KeyNotFound) and one holding a certificate past its renewal time.
The text is parsed with prometheus_client's own parser, as Prometheus would read it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import json
import pathlib
import re
import secrets
import subprocess
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric import ec
from prometheus_client.parser import text_string_to_metric_families

from rotor import __version__
from rotor.devenv import binaries
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


ROOT = pathlib.Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "charts" / "rotor" / "files" / "dashboards" / "rotor.json"
# Grafana's variables, as "All" selects them
GRAFANA_VARIABLES = {"$namespace": ".*", "$store": ".*", "$__rate_interval": "5m"}


def promtool_binary() -> str:
    path = binaries.locate("promtool")
    if path is None:
        pytest.fail("no promtool binary: run `hack/build-binaries.sh promtool` (CI builds it)", pytrace=False)
    return str(path)


def fetch(url: str, headers: dict[str, str]) -> tuple[dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(req, timeout=5) as resp:
        return {k.lower(): v for k, v in resp.headers.items()}, resp.read()


def check_exposition(url: str) -> None:
    headers, body = fetch(url, {})
    assert headers["content-type"].startswith("text/plain"), headers
    headers, body = fetch(url, {"Accept": "application/openmetrics-text; version=1.0.0"})
    assert headers["content-type"].startswith("application/openmetrics-text"), headers
    assert body.rstrip().endswith(b"# EOF")
    headers, body = fetch(url, {"Accept-Encoding": "gzip"})
    assert headers.get("content-encoding") == "gzip", headers
    assert b"rotor_build_info" in gzip.decompress(body)


def check_metrics_with_promtool(promtool: str, text: str) -> None:
    proc = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, f"promtool check metrics:\n{proc.stdout}\n{proc.stderr}"


def dashboard_queries() -> list[str]:
    def panels(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for p in items:
            out.append(p)
            out += panels(p.get("panels", []))
        return out

    exprs = [
        t["expr"] for p in panels(json.loads(DASHBOARD.read_text())["panels"]) for t in p.get("targets", [])
    ]
    out = []
    for e in exprs:
        for var, value in GRAFANA_VARIABLES.items():
            e = e.replace(var, value)
        assert "$" not in e, f"a Grafana variable the test does not know in {e!r}"
        out.append(e)
    return out


def selectors(expr: str) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """The metric selectors of a PromQL expression: (name, [(label, op, value)])."""
    found = []
    for m in re.finditer(r"\b((?:rotor|process)_[a-zA-Z0-9_:]*)(\{[^}]*\})?", expr):
        matchers = re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', m.group(2) or "")
        found.append((m.group(1), matchers))
    return found


def selected(samples: Samples, name: str, matchers: list[tuple[str, str, str]]) -> bool:
    def ok(labels: dict[str, str]) -> bool:
        for label, op, value in matchers:
            have = labels.get(label, "")
            if (op == "=" and have != value) or (op == "!=" and have == value):
                return False
            if (op == "=~" and not re.fullmatch(value, have)) or (op == "!~" and re.fullmatch(value, have)):
                return False
        return True

    return any(ok(dict(k)) for k in samples.get(name, {}))


def series_line(name: str, labels: Labels) -> str:
    inner = ", ".join(f'{k}="' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for k, v in labels)
    return f"{name}{{{inner}}}"


def check_dashboard_queries(promtool: str, samples: Samples, tmp: pathlib.Path) -> None:
    """Every dashboard query, evaluated by promtool over the live scrape held for 20 minutes, has
    a result wherever the scrape has the series it selects."""
    queries = dashboard_queries()
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"alert": f"Q{i}", "expr": f"absent(({q}))"} for i, q in enumerate(queries)],
            }
        ]
    }
    inputs = [
        {"series": series_line(name, labels), "values": f"{value!r}x20"}
        for name, family in samples.items()
        if name.startswith(("rotor_", "process_"))
        for labels, value in family.items()
    ]
    checked, unchecked = [], []
    for q in queries:
        # a panel that groups by a label none of its series has shows one nameless line
        have = {label for name, m in selectors(q) for k in samples.get(name, {}) for label, _ in k}
        for group in re.findall(r"\bby\s*\(([^)]*)\)", q):
            for label in (x.strip() for x in group.split(",")):
                if have:
                    assert label in have, f"{q} groups by {label}, a label its series do not have"
    for i, q in enumerate(queries):
        if all(selected(samples, name, m) for name, m in selectors(q)):
            checked.append({"eval_time": "10m", "alertname": f"Q{i}", "exp_alerts": []})
        else:
            unchecked.append(q)
    # what this test does not create: rotations (and their timestamps), workload restarts and
    # change notifications (the receiver is off here; tests/integration/test_notifications.py)
    for q in unchecked:
        assert re.search(
            r"rotor_(rotation_|rollout_|notifications_|managedsecret_(last|next)_rotation_)", q
        ), f"a dashboard query over no series: {q}"
    assert len(checked) > len(unchecked)
    (tmp / "dashboard-rules.yaml").write_text(json.dumps(rules))
    test = {
        "rule_files": ["dashboard-rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": inputs, "alert_rule_test": checked}],
    }
    (tmp / "dashboard-test.yaml").write_text(json.dumps(test))
    proc = subprocess.run(
        [promtool, "test", "rules", "dashboard-test.yaml"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp,
        check=False,
    )
    names = {f"Q{i}": q for i, q in enumerate(queries)}
    assert proc.returncode == 0, (
        "dashboard queries with no result on a live scrape (absent() fired):\n"
        + proc.stdout[-4000:]
        + proc.stderr[-2000:]
        + "\n"
        + "\n".join(f"{k}: {v}" for k, v in names.items())
    )


# ---------------------------------------------------------------------------------------------- the test
async def test_metrics_reflect_current_state_and_forget_deleted_objects(
    cluster: Cluster,
    env: TestEnvironment,
    iso_namespace: str,
    metrics_operator: OperatorProcess,
    leaks: LeakRegistry,
    tmp_path: pathlib.Path,
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
    # the store label is the same on both, so they join on (store)
    assert one(samples, "rotor_secretstore_ready", store=f"SecretStore/{ns}/vault", kind="SecretStore") == 1.0
    assert series(samples, "rotor_build_info") == {(("version", __version__),): 1.0}

    # prometheus_client's exposition: process_* series, no _created series, OpenMetrics on request
    assert one(samples, "process_start_time_seconds") is not None
    assert one(samples, "process_resident_memory_bytes") is not None
    assert not [name for name in samples if name.endswith("_created")]
    await asyncio.to_thread(check_exposition, op.metrics_url + "/metrics")

    # promtool: the scrape passes `check metrics`, and every dashboard query has a result on it
    text_now = await asyncio.to_thread(op.metrics)
    promtool = promtool_binary()
    await asyncio.to_thread(check_metrics_with_promtool, promtool, text_now)
    await asyncio.to_thread(check_dashboard_queries, promtool, parse(text_now), tmp_path)

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
