"""Reads are shared and cheap (DESIGN §2, §9): counted on the operator's own metrics, with an
operator of its own per test so the counts are only this test's."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from support.cluster import Cluster, wait_for
from support.operator import OperatorProcess

pytestmark = pytest.mark.asyncio(loop_scope="session")


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


@pytest_asyncio.fixture(loop_scope="session")
async def iso(cluster: Cluster, env) -> AsyncIterator[tuple[str, OperatorProcess]]:
    ns = f"iso-reads-{secrets.token_hex(3)}"
    await cluster.create_namespace(ns)
    op = OperatorProcess(
        str(env.kubeconfig), env.workdir / "logs", name=f"op-{ns}", namespaces=[ns], env=env.aws_env()
    )
    op.start()
    yield ns, op
    op.stop()
    await cluster.delete_namespace(ns)


def _ms(name: str, store: str, key: str, interval: str, prop: str | None = None) -> dict:
    ref = {"key": key, **({"property": prop} if prop else {})}
    return {
        "apiVersion": "rotor.dev/v1alpha1",
        "kind": "ManagedSecret",
        "metadata": {"name": name},
        "spec": {
            "storeRef": {"name": store},
            "refresh": {"interval": interval},
            "data": [{"secretKey": "value", "remoteRef": ref}],
        },
    }


async def test_two_managed_secrets_sharing_a_path_read_it_once_per_refresh(
    cluster: Cluster, env, iso, leaks
) -> None:
    ns, op = iso
    value = secrets.token_hex(16)
    leaks.add(value)
    env.vault_client().secrets.kv.v2.create_or_update_secret(
        path=f"{ns}/shared", secret={"v": value}, mount_point="secret"
    )
    for doc in env.vault_token_store(ns):
        await cluster.apply(doc, ns)
    await cluster.apply(_ms("first", "vault", f"{ns}/shared", "2s", "v"), ns)
    await cluster.apply(_ms("second", "vault", f"{ns}/shared", "2s", "v"), ns)
    await cluster.ready("first", ns)
    await cluster.ready("second", ns)
    store = f"SecretStore/{ns}/vault"

    def counts() -> tuple[float, float]:
        text = op.metrics()
        reads = metric(text, "rotor_provider_requests_total", store=store, operation="read")
        syncs = metric(text, "rotor_sync_total")
        return reads, syncs

    reads0, syncs0 = counts()

    async def enough_refreshes() -> tuple[float, float] | None:
        reads, syncs = counts()
        return (reads, syncs) if syncs - syncs0 >= 8 else None

    reads1, syncs1 = await wait_for(enough_refreshes, timeout=40, what="8 more syncs")
    syncs_done = syncs1 - syncs0
    reads_done = reads1 - reads0
    # both objects refresh in the same slot: one backend read serves both
    assert reads_done <= syncs_done / 2 + 1, (reads_done, syncs_done)
    assert reads_done >= 1
    hits = metric(op.metrics(), "rotor_provider_cache_hits_total")
    assert hits >= syncs_done / 2 - 1


async def test_forty_aws_secrets_are_fetched_in_two_batch_calls(cluster: Cluster, env, iso, leaks) -> None:
    ns, op = iso
    sm = env.boto("secretsmanager")
    keys = [f"{ns}/s{i:02d}" for i in range(40)]
    for key in keys:
        v = secrets.token_hex(12)
        leaks.add(v)
        sm.create_secret(Name=key, SecretString=json.dumps({"v": v}))
    for doc in env.aws_store(ns):
        await cluster.apply(doc, ns)
    for i, key in enumerate(keys):
        await cluster.apply(_ms(f"s{i:02d}", "aws", key, "10s", "v"), ns)
    for i in range(40):
        await cluster.ready(f"s{i:02d}", ns, timeout=60)
    store = f"SecretStore/{ns}/aws"

    def batch_calls() -> float:
        return metric(
            op.metrics(), "rotor_provider_requests_total", store=store, operation="BatchGetSecretValue"
        )

    def single_calls() -> float:
        return metric(op.metrics(), "rotor_provider_requests_total", store=store, operation="GetSecretValue")

    # an unchanged refresh wave fetches nothing: versions come from ListSecrets
    before_batch, before_single = batch_calls(), single_calls()
    syncs0 = metric(op.metrics(), "rotor_sync_total", result="unchanged")
    await wait_for(lambda: _at_least(op, syncs0 + 40), timeout=30, what="a refresh wave of 40")
    assert batch_calls() == before_batch and single_calls() == before_single

    # every value changes upstream, right after a wave (the next comes 10 s later, so no wave
    # sees only some of the changes): the next wave fetches all 40 in 2 batch calls of 20
    new_values = {}
    for key in keys:
        v = secrets.token_hex(12)
        leaks.add(v)
        new_values[key] = v
        sm.put_secret_value(SecretId=key, SecretString=json.dumps({"v": v}))

    async def all_updated() -> bool:
        for i, key in enumerate(keys):
            data = await cluster.secret_data(ns, f"s{i:02d}")
            if data is None or data["value"] != new_values[key].encode():
                return False
        return True

    await wait_for(all_updated, timeout=40, what="40 Secrets updated")
    assert batch_calls() - before_batch == 2
    assert single_calls() - before_single <= 2  # moto's stale batch answers may be re-read singly


async def _at_least(op: OperatorProcess, target: float) -> bool:
    return metric(op.metrics(), "rotor_sync_total", result="unchanged") >= target
