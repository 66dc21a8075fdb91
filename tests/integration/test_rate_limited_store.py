"""A store's rate limit slows its own objects down and never stops the operator (issue 14.1).

A ManagedSecret of 45 AWS keys is read as one batch of 45 (two BatchGetSecretValue calls, two
tokens); on a store with ``burst: 1`` the old token bucket waited for two tokens in a bucket of
one, forever, holding a worker. The limiter now serves large requests in slices: the object syncs,
slowly, and objects on a healthy store sync meanwhile.
"""

from __future__ import annotations

import asyncio
import secrets

import pytest

from support.cluster import Cluster
from support.environment import TestEnvironment
from support.leaks import LeakRegistry
from support.objects import apply_all, apply_token_store, data_item, ms_manifest
from support.rotation import kv2_write

pytestmark = pytest.mark.asyncio(loop_scope="session")

KEYS = 45


async def test_an_object_larger_than_the_burst_syncs_and_healthy_stores_keep_going(
    cluster: Cluster, env: TestEnvironment, namespace: str, leaks: LeakRegistry
) -> None:
    ns = namespace
    sm = env.boto("secretsmanager")
    values = {}
    for i in range(KEYS):
        value = secrets.token_urlsafe(16)
        leaks.add(value)
        values[f"k{i}"] = value
        await asyncio.to_thread(sm.create_secret, Name=f"{ns}/big/k{i}", SecretString=value)

    slow = env.aws_store(ns, "slow")
    slow[1]["spec"]["rateLimit"] = {"qps": 1, "burst": 1}
    await apply_all(cluster, slow, ns)
    await apply_token_store(cluster, env, ns)

    big = ms_manifest("big", store="slow", data=[data_item(k, f"{ns}/big/{k}") for k in values])
    await cluster.apply(big, ns)

    # while the big one is throttled by its store, objects on the healthy store sync
    healthy = [f"fast-{i}" for i in range(3)]
    for name in healthy:
        password = secrets.token_urlsafe(16)
        leaks.add(password)
        kv2_write(env, f"{ns}/{name}", {"password": password})
        await cluster.apply(ms_manifest(name, data=[data_item("password", f"{ns}/{name}", "password")]), ns)
    for name in healthy:
        await cluster.ready(name, ns, timeout=60)

    await cluster.ready("big", ns, timeout=120)
    data = await cluster.secret_data(ns, "big")
    assert data is not None
    assert {k: v.decode() for k, v in data.items()} == values
