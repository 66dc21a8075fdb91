"""Leader election and sharding by namespace (DESIGN §8, §12): of two replicas of one shard,
only the holder of the shard's Lease acts; the other takes over when the leader dies (SIGKILL)
or leaves (SIGTERM releases the Lease); a shard serves exactly the namespaces its patterns
select, whether they are plain names or globs.

Each test runs two real ``rotor run`` processes with ``--leader-elect --lease-name
rotor-ha-<random>`` and distinct identities (``POD_NAME``) on its own ``iso-ha*`` namespaces
(the session operator ignores ``iso-*``); the Lease lives in the served namespace, so it goes
with it.

Who acted is read from each process's own log: an audit line for every backend read ("read")
and Secret write ("write-secret"), and an ``apiWrite`` line for every write the operator sends to
the apiserver (Secrets, status, Events...). A standby must have none of either.

Failover time is measured by bench/failover.py; here it is only printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from kubernetes_asyncio import client

from support.cluster import Cluster, wait_for
from support.environment import TestEnvironment
from support.leaks import LeakRegistry
from support.operator import OperatorProcess

pytestmark = pytest.mark.asyncio(loop_scope="session")

API = "rotor.dev/v1alpha1"
#: a generous deadline for the standby to take over and sync (the Lease expires after 15 s)
FAILOVER_DEADLINE = 90.0


class Replica(OperatorProcess):
    """``rotor run --leader-elect`` with an identity, plus readers of what its log says."""

    def entries(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                out.append(entry)
        return out

    def audits(self, verb: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.entries() if e.get("audit") and (verb is None or e.get("verb") == verb)]

    def api_writes(self) -> list[dict[str, Any]]:
        """Every write this process sent to the apiserver (the Lease aside)."""
        return [e for e in self.entries() if e.get("apiWrite")]

    def acted(self) -> list[dict[str, Any]]:
        return self.audits() + self.api_writes()

    def role(self) -> str | None:
        """What /readyz says: "leader", "standby", or None when not ready."""
        import urllib.request

        try:
            with urllib.request.urlopen(self.metrics_url + "/readyz", timeout=2) as resp:
                text = resp.read().decode()
        except OSError:
            return None
        return "leader" if "leader" in text else "standby" if "standby" in text else None


@dataclass
class Shard:
    lease: str
    lease_namespace: str
    replicas: list[Replica]


# ---------------------------------------------------------------------------------------------- fixtures
@pytest_asyncio.fixture(loop_scope="session")
async def iso_namespace(cluster: Cluster, env: TestEnvironment) -> AsyncIterator[str]:
    name = f"iso-ha-{secrets.token_hex(3)}"
    await cluster.create_namespace(name)
    yield name
    await cluster.delete_namespace(name)


@contextlib.asynccontextmanager
async def shard(env: TestEnvironment, patterns: list[str], lease_namespace: str) -> AsyncIterator[Shard]:
    """Two replicas of one shard (not started), stopped at the end whatever happened."""
    lease = f"rotor-ha-{secrets.token_hex(3)}"
    ops = [
        Replica(
            str(env.kubeconfig),
            env.workdir / "logs",
            name=f"op-{lease}-{letter}",
            namespaces=patterns,
            env=env.aws_env(),
            lease=lease,
            lease_namespace=lease_namespace,
            identity=f"{lease}-{letter}",
        )
        for letter in ("a", "b")
    ]
    try:
        yield Shard(lease, lease_namespace, ops)
    finally:
        for op in ops:
            await asyncio.to_thread(op.stop)


# ---------------------------------------------------------------------------------------------- helpers
def ms(name: str, key: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "ManagedSecret",
        "metadata": {"name": name},
        "spec": {"storeRef": {"name": "vault"}, "dataFrom": [{"extract": {"key": key}}], **spec},
    }


def put(env: TestEnvironment, path: str, data: dict[str, str]) -> None:
    env.vault_client().secrets.kv.v2.create_or_update_secret(path=path, secret=data, mount_point="secret")


async def setup_store(cluster: Cluster, env: TestEnvironment, ns: str) -> None:
    for doc in env.vault_token_store(ns):
        await cluster.apply(doc, ns)


async def holder(cluster: Cluster, sh: Shard) -> str | None:
    try:
        lease = await client.CoordinationV1Api(cluster.api).read_namespaced_lease(
            sh.lease, sh.lease_namespace
        )
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return lease.spec.holder_identity or None


async def leader_and_standby(cluster: Cluster, sh: Shard, *, timeout: float = 60) -> tuple[Replica, Replica]:
    """Wait until one replica leads (by the Lease, and by its own word) and the other stands by."""

    async def probe() -> tuple[Replica, Replica] | None:
        held = await holder(cluster, sh)
        leaders = [op for op in sh.replicas if op.identity == held]
        if not leaders:
            return None
        leader = leaders[0]
        (standby,) = [op for op in sh.replicas if op is not leader]
        roles = await asyncio.gather(asyncio.to_thread(leader.role), asyncio.to_thread(standby.role))
        return (leader, standby) if roles == ["leader", "standby"] else None

    return await wait_for(probe, timeout=timeout, what=f"one leader and one standby on Lease {sh.lease}")


async def read_at_least(op: Replica, count: int) -> bool:
    return len(op.audits("read")) >= count


def targets(entries: list[dict[str, Any]]) -> set[str]:
    return {str(e.get("target")) for e in entries}


# ---------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("by", ["name", "glob"])
async def test_only_the_leader_writes_and_the_standby_takes_over_after_sigkill(
    cluster: Cluster, env: TestEnvironment, leaks: LeakRegistry, by: str
) -> None:
    """Two replicas, never two writers, whether the shard names its namespace or globs it."""
    prefix = f"iso-ha{by[0]}-{secrets.token_hex(3)}"
    ns = f"{prefix}-a"
    await cluster.create_namespace(ns)
    try:
        await setup_store(cluster, env, ns)
        patterns = [ns] if by == "name" else [f"{prefix}-*"]
        async with shard(env, patterns, ns) as sh:
            for op in sh.replicas:
                await asyncio.to_thread(op.start)  # both Ready: a standby is Ready once listed
            leader, standby = await leader_and_standby(cluster, sh)

            # a burst of ManagedSecrets: every write comes from the leader
            names = [f"burst-{i:02d}" for i in range(12)]
            for name in names:
                value = secrets.token_urlsafe(20)
                leaks.add(value)
                put(env, f"{ns}/{name}", {"token": value})
                await cluster.apply(ms(name, f"{ns}/{name}", refresh={"interval": "3s"}), ns)
            for name in names:
                await cluster.ready(name, ns, timeout=60)
            assert targets(leader.audits("write-secret")) == {f"{ns}/{name}" for name in names}
            assert f"ManagedSecret/{ns}/burst-00" in targets(leader.api_writes())
            # refreshes come due every 3 s meanwhile: the standby still does nothing
            reads = len(leader.audits("read"))
            await wait_for(
                lambda: read_at_least(leader, reads + 2 * len(names)),
                timeout=60,
                what="two more refresh rounds by the leader",
            )
            assert standby.acted() == [], f"the standby acted: {standby.acted()[:5]}"
            assert await holder(cluster, sh) == leader.identity

            # kill -9 the leader; the standby takes over once the Lease expires
            await asyncio.to_thread(leader.kill)
            killed_at = time.monotonic()
            value = secrets.token_urlsafe(20)
            leaks.add(value)
            put(env, f"{ns}/after-failover", {"token": value})
            await cluster.apply(ms("after-failover", f"{ns}/after-failover"), ns)
            await cluster.ready("after-failover", ns, timeout=FAILOVER_DEADLINE)
            print(
                f"\nfailover ({by}): a ManagedSecret created at SIGKILL was Ready {time.monotonic() - killed_at:.1f}s later"
            )
            assert (await cluster.secret_data(ns, "after-failover") or {}).get("token") == value.encode()
            assert await holder(cluster, sh) == standby.identity
            assert f"{ns}/after-failover" in targets(standby.audits("write-secret"))
            # the Secrets written before the kill are adopted as they are: no rewrite of unchanged data
            assert not targets(standby.audits("write-secret")) & {f"{ns}/{name}" for name in names}
    finally:
        await cluster.delete_namespace(ns)


async def test_a_standby_stays_idle_and_takes_over_at_once_when_the_leader_leaves(
    cluster: Cluster, env: TestEnvironment, iso_namespace: str, leaks: LeakRegistry
) -> None:
    """A rolling update in miniature: the running leader is joined by a second replica, which must
    neither read backends nor write while refreshes come due; the leader then stops (SIGTERM),
    releasing the Lease, and the new replica picks the changed values up."""
    ns = iso_namespace
    await setup_store(cluster, env, ns)
    names = [f"refreshing-{i}" for i in range(3)]
    async with shard(env, [ns], ns) as sh:
        old, new = sh.replicas
        await asyncio.to_thread(old.start)
        await wait_for(
            lambda: holder_is(cluster, sh, old),
            timeout=60,
            what="the first replica to lead",
        )
        for name in names:
            value = secrets.token_urlsafe(20)
            leaks.add(value)
            put(env, f"{ns}/{name}", {"token": value})
            await cluster.apply(ms(name, f"{ns}/{name}", refresh={"interval": "2s"}), ns)
        for name in names:
            await cluster.ready(name, ns, timeout=60)
        assert targets(old.audits("write-secret")) == {f"{ns}/{name}" for name in names}

        await asyncio.to_thread(new.start)
        assert await asyncio.to_thread(new.role) == "standby"
        reads = len(old.audits("read"))
        await wait_for(
            lambda: read_at_least(old, reads + 3 * len(names)),
            timeout=60,
            what="three refresh rounds by the leader while the new replica stands by",
        )
        assert new.acted() == [], f"the standby acted: {new.acted()[:3]}"

        await asyncio.to_thread(old.stop)  # SIGTERM: the Lease is released on the way out
        assert "released Lease" in old.log_text()
        await wait_for(lambda: holder_is(cluster, sh, new), timeout=30, what="the new replica to lead")
        changed = {}
        for name in names:
            changed[name] = secrets.token_urlsafe(20)
            leaks.add(changed[name])
            put(env, f"{ns}/{name}", {"token": changed[name]})

        async def propagated() -> bool:
            for name in names:
                if (await cluster.secret_data(ns, name) or {}).get("token") != changed[name].encode():
                    return False
            return True

        await wait_for(propagated, timeout=60, interval=0.5, what="the new values, by the new leader")
        assert targets(new.audits("write-secret")) == {f"{ns}/{name}" for name in names}


async def holder_is(cluster: Cluster, sh: Shard, op: Replica) -> bool:
    return await holder(cluster, sh) == op.identity


async def test_a_shard_serves_its_pattern_minus_its_exclusions(
    cluster: Cluster, env: TestEnvironment, leaks: LeakRegistry
) -> None:
    """``--namespace 'iso-shard-X-*' --namespace '!iso-shard-X-legacy'``: -a is served, -legacy is
    not, and nor is a namespace outside the glob."""
    prefix = f"iso-shard-{secrets.token_hex(3)}"
    served, excluded, outside = f"{prefix}-a", f"{prefix}-legacy", f"iso-noshard-{secrets.token_hex(3)}"
    for ns in (excluded, outside, served):  # the ones it must not serve first
        await cluster.create_namespace(ns)
        await setup_store(cluster, env, ns)
        value = secrets.token_urlsafe(20)
        leaks.add(value)
        put(env, f"{ns}/app", {"token": value})
        await cluster.apply(ms("app", f"{ns}/app"), ns)
    op = OperatorProcess(
        str(env.kubeconfig),
        env.workdir / "logs",
        name=f"op-shard-{prefix}",
        namespaces=[f"{prefix}-*", f"!{excluded}"],
        env=env.aws_env(),
    )
    try:
        await asyncio.to_thread(op.start)
        await cluster.ready("app", served, timeout=60)
        # the served one went first through the same watch start-up; a second round trip on it
        # leaves the others every chance to have been picked up, were they served
        await cluster.patch(
            "ManagedSecret", "app", {"metadata": {"annotations": {"rotor.dev/force-sync": "1"}}}, served
        )

        async def force_synced() -> bool:
            obj = await cluster.get("ManagedSecret", "app", served)
            return ((obj or {}).get("status") or {}).get("lastForceSync") == "1"

        await wait_for(force_synced, timeout=30, what="the served namespace's force-sync")
        for ns in (excluded, outside):
            obj = await cluster.get("ManagedSecret", "app", ns)
            assert not (obj or {}).get("status"), f"{ns} is not in the shard, yet it was served: {obj}"
            assert await cluster.secret(ns, "app") is None
    finally:
        await asyncio.to_thread(op.stop)
        for ns in (served, excluded, outside):
            await cluster.delete_namespace(ns)
