"""No thundering herd (DESIGN §2, §10): refresh times are spread over the interval, and an
operator restart keeps every object on its own slot instead of refreshing everything at once."""

from __future__ import annotations

import secrets
import time
from collections import Counter

import pytest
from test_shared_reads import metric

from rotor.clock import parse_time
from support.cluster import Cluster, wait_for
from support.operator import OperatorProcess

pytestmark = pytest.mark.asyncio(loop_scope="session")

N = 30
INTERVAL = 120


async def test_restart_keeps_refreshes_spread(cluster: Cluster, env, leaks) -> None:
    ns = f"iso-spread-{secrets.token_hex(3)}"
    await cluster.create_namespace(ns)
    op = OperatorProcess(str(env.kubeconfig), env.workdir / "logs", name=f"op-{ns}", namespaces=[ns])
    op.start()
    try:
        client = env.vault_client()
        for i in range(N):
            value = secrets.token_hex(12)
            leaks.add(value)
            client.secrets.kv.v2.create_or_update_secret(
                path=f"{ns}/p{i}", secret={"v": value}, mount_point="secret"
            )
        for doc in env.vault_token_store(ns):
            await cluster.apply(doc, ns)
        for i in range(N):
            await cluster.apply(
                {
                    "apiVersion": "rotor.dev/v1alpha1",
                    "kind": "ManagedSecret",
                    "metadata": {"name": f"m{i}"},
                    "spec": {
                        "storeRef": {"name": "vault"},
                        "refresh": {"interval": f"{INTERVAL}s"},
                        "data": [{"secretKey": "v", "remoteRef": {"key": f"{ns}/p{i}", "property": "v"}}],
                    },
                },
                ns,
            )
        for i in range(N):
            await cluster.ready(f"m{i}", ns, timeout=60)

        async def next_times() -> dict[str, float]:
            out = {}
            for i in range(N):
                obj = await cluster.get("ManagedSecret", f"m{i}", ns)
                when = parse_time((obj or {}).get("status", {}).get("nextRefreshTime"))
                assert when is not None
                out[f"m{i}"] = when.timestamp()
            return out

        before = await next_times()
        span = max(before.values()) - min(before.values())
        assert span > INTERVAL / 2, f"refreshes bunched within {span:.0f}s of a {INTERVAL}s interval"
        # hashed slots are uniform, so a few objects share a second by chance (30 in 120 s gives
        # about 27 distinct seconds, often fewer); lockstep would put them all in one
        busiest = max(Counter(round(t) for t in before.values()).values())
        assert busiest <= 5, f"{busiest} objects refresh in the same second"

        op.stop()
        op.start()
        restarted = time.monotonic()

        async def settled() -> bool:
            return time.monotonic() - restarted > 8

        await wait_for(settled, timeout=20, what="8 seconds after the restart")
        syncs = metric(op.metrics(), "rotor_sync_total")
        # with slots spread over 120s, an 8s window holds a few objects at most, not all 30
        assert syncs <= 10, f"{syncs} of {N} objects refreshed right after the restart"
        after = await next_times()
        assert after == before  # nothing was rewritten: every object kept its slot
    finally:
        op.stop()
        await cluster.delete_namespace(ns)
