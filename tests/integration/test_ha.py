"""Active/standby through kopf peering, and sharding by namespace (DESIGN §8): of two replicas on
the same peering, only the one with the higher priority acts; the standby takes over when the
active one dies (SIGKILL); a shard serves exactly the namespaces its patterns select.

Each test runs two real ``rotor run`` processes with ``--peering rotor-ha-<random>`` and
different ``--priority`` on its own ``iso-ha-*`` namespace (the session operator ignores
``iso-*``). Serving namespaces by name, kopf meets its peers in a KopfPeering of that name in
each served namespace, so the test creates one there (the kopf.dev CRDs come from the chart).

Who acted is read from the audit lines each process logs for every backend read ("read") and
every Secret write ("write-secret").

Failover time: kopf's default peering lifetime is 60 s, and ``rotor run`` has no flag for it
(settings.peering.lifetime is left at kopf's default), so the standby resumes up to ~60 s after
the active replica's last keep-alive. The test prints the time it measured and asserts only a
generous deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from support.cluster import Cluster, wait_for
from support.environment import ROOT, TestEnvironment
from support.leaks import LeakRegistry
from support.operator import OperatorProcess

pytestmark = pytest.mark.asyncio(loop_scope="session")

PEERING_CRDS = ROOT / "charts" / "rotor" / "crds" / "kopf-peering.yaml"
API = "rotor.dev/v1alpha1"
HIGH, LOW = 200, 100
PAUSED = "Pausing operations in favour of"
RESUMED = "Resuming operations after the pause"
FAILOVER_DEADLINE = 180.0  # kopf's lifetime (60 s) + its keep-alive slack + a first sync, with room


class PeeredOperator(OperatorProcess):
    """``rotor run --peering NAME --priority N`` (OperatorProcess's peering option), plus readers
    of what its log says."""

    # ---------------------------------------------------------------- what its log says
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

    def audits(self, verb: str | None = None, *, after: str | None = None) -> list[dict[str, Any]]:
        """Audit entries (of ``verb``), only those logged after the first message containing
        ``after`` if given (none if that message never came)."""
        entries = self.entries()
        if after is not None:
            starts = [i for i, e in enumerate(entries) if after in str(e.get("msg", ""))]
            entries = entries[starts[0] + 1 :] if starts else []
        return [e for e in entries if e.get("audit") and (verb is None or e.get("verb") == verb)]

    def said(self, text: str) -> bool:
        return text in self.log_text()


# ---------------------------------------------------------------------------------------------- fixtures
@pytest_asyncio.fixture(loop_scope="session")
async def iso_namespace(cluster: Cluster, env: TestEnvironment) -> AsyncIterator[str]:
    name = f"iso-ha-{secrets.token_hex(3)}"
    await cluster.create_namespace(name)
    yield name
    await cluster.delete_namespace(name)


@pytest.fixture
def peering(env: TestEnvironment, iso_namespace: str, kubectl_run: Any) -> str:
    """The kopf.dev CRDs, and a KopfPeering of a fresh name in the namespace."""
    applied = kubectl_run("apply", "--server-side", "-f", str(PEERING_CRDS))
    assert applied.returncode == 0, applied.stderr
    kubectl_run("wait", "--for=condition=Established", "--timeout=60s", "crd/kopfpeerings.kopf.dev")
    name = f"rotor-ha-{secrets.token_hex(3)}"
    created = kubectl_run(
        "apply",
        "-n",
        iso_namespace,
        "-f",
        "-",
        input_=json.dumps({"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": name}}),
    )
    assert created.returncode == 0, created.stderr
    return name


@contextlib.asynccontextmanager
async def replicas(
    env: TestEnvironment, namespace: str, peering: str
) -> AsyncIterator[dict[int, PeeredOperator]]:
    """Two replicas on one peering (not started), stopped at the end whatever happened."""
    ops = {
        priority: PeeredOperator(
            str(env.kubeconfig),
            env.workdir / "logs",
            name=f"op-ha-{priority}-{namespace}",
            namespaces=[namespace],
            env=env.aws_env(),
            peering=peering,
            priority=priority,
        )
        for priority in (HIGH, LOW)
    }
    try:
        yield ops
    finally:
        for op in ops.values():
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


async def paused(op: PeeredOperator, *, timeout: float = 60) -> None:
    """An active replica pausing logs it (a replica starting paused says nothing until it resumes)."""
    await wait_for(probe_said(op, PAUSED), timeout=timeout, what=f"{op.name} to pause in favour of its peer")


def probe_said(op: PeeredOperator, text: str) -> Any:
    async def probe() -> bool:
        return op.said(text)

    return probe


async def both_peers(cluster: Cluster, ns: str, peering: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        obj = await cluster.custom.get_namespaced_custom_object("kopf.dev", "v1", ns, "kopfpeerings", peering)
        status = obj.get("status") or {}
        return status if sorted(p.get("priority") for p in status.values()) == [LOW, HIGH] else None

    return await wait_for(probe, timeout=60, what=f"both replicas in KopfPeering {ns}/{peering}")


def targets(audits: list[dict[str, Any]]) -> set[str]:
    return {str(a.get("target")) for a in audits}


# ---------------------------------------------------------------------------------------------- tests
async def test_only_the_active_replica_writes_and_the_standby_takes_over_after_sigkill(
    cluster: Cluster, env: TestEnvironment, iso_namespace: str, peering: str, leaks: LeakRegistry
) -> None:
    ns = iso_namespace
    await setup_store(cluster, env, ns)
    async with replicas(env, ns, peering) as ops:
        active, standby = ops[HIGH], ops[LOW]
        await asyncio.to_thread(active.start)
        await asyncio.to_thread(standby.start)
        # both keep their record in the KopfPeering; with peering mandatory kopf starts each
        # replica paused, and only the one that sees no higher priority resumes
        await both_peers(cluster, ns, peering)
        await wait_for(probe_said(active, RESUMED), timeout=30, what="the high-priority replica to resume")
        assert not standby.said(RESUMED)

        # a burst of ManagedSecrets: every write comes from the active replica
        names = [f"burst-{i:02d}" for i in range(12)]
        for name in names:
            value = secrets.token_urlsafe(20)
            leaks.add(value)
            put(env, f"{ns}/{name}", {"token": value})
            await cluster.apply(ms(name, f"{ns}/{name}"), ns)
        for name in names:
            await cluster.ready(name, ns, timeout=60)
        written = targets(active.audits("write-secret"))
        assert written == {f"{ns}/{name}" for name in names}
        assert standby.audits() == [], f"the standby acted: {standby.audits()[:5]}"

        # kill -9 the active replica; the standby takes over
        await asyncio.to_thread(active.kill)
        killed_at = time.monotonic()
        value = secrets.token_urlsafe(20)
        leaks.add(value)
        put(env, f"{ns}/after-failover", {"token": value})
        await cluster.apply(ms("after-failover", f"{ns}/after-failover"), ns)
        await cluster.ready("after-failover", ns, timeout=FAILOVER_DEADLINE)
        failover = time.monotonic() - killed_at
        print(
            f"\nfailover: the standby made a ManagedSecret created after SIGKILL Ready {failover:.1f}s later "
            f"(kopf peering lifetime: 60s, not configurable through rotor run)"
        )
        assert (await cluster.secret_data(ns, "after-failover") or {}).get("token") == value.encode()
        assert standby.said(RESUMED) and not standby.said(PAUSED)
        assert f"{ns}/after-failover" in targets(standby.audits("write-secret"))
        # the objects written before the kill are adopted as they are: no rewrite of unchanged data
        assert not targets(standby.audits("write-secret")) & {f"{ns}/{name}" for name in names}


async def test_a_replica_that_pauses_stops_acting(
    cluster: Cluster, env: TestEnvironment, iso_namespace: str, peering: str, leaks: LeakRegistry
) -> None:
    """A rolling update in miniature: the running replica (lower priority) is joined by one with a
    higher priority. From its pause on it must neither read backends nor write Secrets, even for
    objects it served before and whose refresh comes due."""
    ns = iso_namespace
    await setup_store(cluster, env, ns)
    names = [f"refreshing-{i}" for i in range(3)]
    async with replicas(env, ns, peering) as ops:
        old, new = ops[LOW], ops[HIGH]
        await asyncio.to_thread(old.start)
        for name in names:
            value = secrets.token_urlsafe(20)
            leaks.add(value)
            put(env, f"{ns}/{name}", {"token": value})
            await cluster.apply(ms(name, f"{ns}/{name}", refresh={"interval": "2s"}), ns)
        for name in names:
            await cluster.ready(name, ns, timeout=60)
        assert targets(old.audits("write-secret")) == {f"{ns}/{name}" for name in names}

        await asyncio.to_thread(new.start)
        await paused(old)

        # the source changes; the new active replica picks it up on its next refreshes
        reads_before = len(new.audits("read"))
        changed = {}
        for name in names:
            changed[name] = secrets.token_urlsafe(20)
            leaks.add(changed[name])
            put(env, f"{ns}/{name}", {"token": changed[name]})

        async def propagated() -> bool:
            for name in names:
                if (await cluster.secret_data(ns, name) or {}).get("token") != changed[name].encode():
                    return False
            # and a few refresh rounds went by (every 2 s), read by the active replica
            return len(new.audits("read")) >= reads_before + 3 * len(names)

        await wait_for(propagated, timeout=60, interval=0.5, what="the new values and more refresh rounds")
        acted = old.audits(after=PAUSED)
        assert acted == [], f"the paused replica acted {len(acted)} times, e.g. {acted[:3]}"


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
