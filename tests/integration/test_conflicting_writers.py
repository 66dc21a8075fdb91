"""Conflicting writers (issue 13): while rotations are in flight, someone removes Rotor's label from
the Secret, edits a value, deletes the Secret, re-types it; two creationPolicy Merge
ManagedSecrets write into one Secret; a second operator runs without leader election. After each,
the promises of DESIGN §2 hold (tests/support/invariants.py checks them over every version of the
Secret a watch saw):

- the Secret equals the source's current value once the conflict clears;
- the source has exactly one new version per rotation request;
- ``<key>_previous`` during the grace period is exactly the value the rotation replaced;
- no managed key is ever empty.

"In flight" is made deterministic with the test-only hook ``ROTOR_FAULT_HOLD_AFTER_PHASE=Pending``
(the operator records the rotation's start, then waits for a file): the conflict is applied while
the rotation is started and not finished, then the operator goes on. Each conflict is applied a
second time during the grace period. Each test runs its own operator(s) on an ``iso-*`` namespace.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from support.cluster import Cluster, wait_for
from support.environment import TestEnvironment
from support.invariants import (
    MANAGED_BY,
    SecretHistory,
    final_violations,
    history_violations,
    kv2_chain,
    restore_label,
    touch_secret,
)
from support.leaks import LeakRegistry
from support.rotation import (
    condition,
    force_sync,
    iso_namespace,
    kv2_write,
    managed_secret,
    own_operator,
    policy,
    request_rotation,
    rotation_status,
    running,
    vault_source,
    wait_rotated,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

POLICY = {"preset": "database-password", "gracePeriod": "1h"}
HOLD, HOLD_FILE = "ROTOR_FAULT_HOLD_AFTER_PHASE", "ROTOR_FAULT_HOLD_FILE"
SETTLE = 90.0


# ---------------------------------------------------------------------------------------------- helpers
async def _phase(
    cluster: Cluster, ns: str, name: str, phase: str, holder: str | None = None
) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        rot = await rotation_status(cluster, ns, name)
        if rot.get("phase") != phase:
            return None
        if holder is not None and not str(rot.get("claimedBy", "")).startswith(holder):
            return None
        return rot

    return await wait_for(probe, timeout=60, what=f"{ns}/{name} rotation phase {phase} ({holder or 'any'})")


async def _settled(
    cluster: Cluster,
    env: TestEnvironment,
    ns: str,
    secret: str,
    sources: dict[str, tuple[str, int, int]],
    extra: dict[str, bytes] | None = None,
) -> None:
    """Wait until the Secret equals every source (``sources``: Secret key -> (path, first version,
    rotation requests)) with the previous values the rotations replaced; fail naming what is not."""
    vault = env.vault_client()

    async def probe() -> list[str] | None:
        data = await cluster.secret_data(ns, secret)
        wrong: list[str] = []
        for key, (path, first, requests) in sources.items():
            chain = kv2_chain(vault, path, first)
            expected = {key: chain[-1], **(extra or {})}
            wrong += [
                f"{key}: {v}"
                for v in final_violations(
                    data, expected=expected, rotated=key, chain=chain, requests=requests
                )
            ]
        return None if wrong else ["settled"]

    try:
        await wait_for(probe, timeout=SETTLE, interval=0.5, what=f"{ns}/{secret} to equal its sources")
    except AssertionError:
        data = await cluster.secret_data(ns, secret)
        details = []
        for key, (path, first, requests) in sources.items():
            chain = kv2_chain(vault, path, first)
            expected = {key: chain[-1], **(extra or {})}
            details += final_violations(data, expected=expected, rotated=key, chain=chain, requests=requests)
        raise AssertionError(f"{ns}/{secret} never settled: {details}") from None


def _no_violations(
    env: TestEnvironment,
    history: SecretHistory,
    secret: str,
    sources: dict[str, tuple[str, int, int]],
    managed: list[str],
    ours: list[str],
    leaks: LeakRegistry,
) -> None:
    vault = env.vault_client()
    problems: list[str] = []
    seen = history.of(secret)
    assert seen, f"the watch saw no version of {secret}"
    for key, (path, first, _) in sources.items():
        chain = kv2_chain(vault, path, first)
        for value in chain:
            leaks.add(value.decode())
        problems += history_violations(seen, managed=managed, rotated=key, chain=chain, ignore=ours)
    assert not problems, f"{len(seen)} versions of {secret} seen; violations: {problems}"


async def _clear(cluster: Cluster, ns: str, name: str, kind: str) -> list[str]:
    """Resolve the conflict where a person must: put Rotor's label back."""
    if kind != "label":
        return []
    await cluster.wait_condition("ManagedSecret", name, ns, "Ready", status="False", reason="SecretConflict")
    return await restore_label(cluster.api, ns, name)


# ---------------------------------------------------------------------------------------------- the Secret touched
@pytest.mark.parametrize("kind", ["label", "edit", "delete", "retype"])
async def test_the_secret_touched_during_a_rotation_and_its_grace_period(
    cluster: Cluster, env: TestEnvironment, leaks: LeakRegistry, kind: str
) -> None:
    async with iso_namespace(cluster, f"cw-{kind}") as ns:
        path, base, _ = await vault_source(cluster, env, ns, leaks, POLICY)
        hold = env.workdir / f"hold-{ns}"
        op = own_operator(env, ns, extra_env={HOLD: "Pending", HOLD_FILE: str(hold)})
        async with running(op):
            await cluster.apply(managed_secret("app", key=path), ns)
            await cluster.ready("app", ns, timeout=60)
            label = ((await cluster.secret(ns, "app")) or {})["metadata"]["labels"][MANAGED_BY]
            assert label == "app", "the label _clear() puts back"
            history = SecretHistory(cluster.api, ns, ["app"])
            ours: list[str] = []
            sources = {"password": (path, base, 1)}
            async with history.recording():
                request = await request_rotation(cluster, ns, "app")
                await _phase(cluster, ns, "app", "Pending")  # started, held before the source write
                ours += await touch_secret(cluster.api, ns, "app", kind)
                hold.write_text("go")
                ours += await _clear(cluster, ns, "app", kind)
                await wait_rotated(cluster, ns, "app", request=request, timeout=SETTLE)
                await _settled(cluster, env, ns, "app", sources, {"user": b"app"})

                # the same during the grace period: the previous value survives it
                ours += await touch_secret(cluster.api, ns, "app", kind)
                ours += await _clear(cluster, ns, "app", kind)
                await _settled(cluster, env, ns, "app", sources, {"user": b"app"})
                obj = await cluster.ready("app", ns, timeout=SETTLE)
                assert condition(obj, "Rotating")["reason"] == "Succeeded"
            _no_violations(env, history, "app", sources, ["password", "user"], ours, leaks)
            # nothing more happens for the request, even when asked to look again
            await force_sync(cluster, ns, "app")
            await _settled(cluster, env, ns, "app", sources, {"user": b"app"})


# ---------------------------------------------------------------------------------------------- two Merge writers
def _merge_writer(name: str, path: str) -> dict[str, Any]:
    key = f"{name}-password"
    doc = managed_secret(name, keys=[key], target={"name": "shared", "creationPolicy": "Merge"})
    doc["spec"]["data"] = [{"secretKey": key, "remoteRef": {"key": path, "property": "password"}}]
    return doc


async def test_two_merge_writers_into_one_secret_during_rotations(
    cluster: Cluster, env: TestEnvironment, leaks: LeakRegistry
) -> None:
    """Two creationPolicy Merge ManagedSecrets (keys a-password and b-password) in one existing
    Secret, both rotated twice at the same moments: every version of the Secret holds both
    writers' keys and the key nobody manages, each previous value is its own rotation's."""
    async with iso_namespace(cluster, "cw-merge") as ns:
        for doc in env.vault_token_store(ns):
            await cluster.apply(doc, ns)
        await cluster.apply(policy("policy", POLICY), ns)
        bases: dict[str, tuple[str, int]] = {}
        for writer in ("a", "b"):
            value = secrets.token_urlsafe(20)
            leaks.add(value)
            path = f"{ns}/{writer}"
            bases[writer] = (path, kv2_write(env, path, {"password": value, "user": writer}))
        await cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "shared"},
                "data": {"other": "a2VlcA=="},  # "keep": nobody's key
            },
            ns,
        )
        async with running(own_operator(env, ns)):
            for writer in ("a", "b"):
                await cluster.apply(_merge_writer(writer, bases[writer][0]), ns)
            for writer in ("a", "b"):
                await cluster.ready(writer, ns, timeout=60)
            history = SecretHistory(cluster.api, ns, ["shared"])
            async with history.recording():
                for round_ in (1, 2):
                    requests = [await request_rotation(cluster, ns, w) for w in ("a", "b")]
                    for writer, request in zip(("a", "b"), requests, strict=True):
                        await wait_rotated(cluster, ns, writer, request=request, timeout=SETTLE)
                    sources = {f"{w}-password": (bases[w][0], bases[w][1], round_) for w in ("a", "b")}
                    await _settled(cluster, env, ns, "shared", sources, {"other": b"keep"})
                for writer in ("a", "b"):
                    obj = await cluster.ready(writer, ns, timeout=SETTLE)
                    assert condition(obj, "Ready")["reason"] == "Synced"
            _no_violations(env, history, "shared", sources, ["a-password", "b-password", "other"], [], leaks)


# ---------------------------------------------------------------------------------------------- two operators
def _claims_lost(op: Any) -> float:
    total = 0.0
    for line in op.metrics().splitlines():
        if line.startswith("rotor_rotation_claims_lost_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_a_second_operator_without_leader_election_never_multiplies_rotations(
    cluster: Cluster, env: TestEnvironment, leaks: LeakRegistry
) -> None:
    """Two operators with --no-leader-elect serve one namespace. First, deterministically: A
    starts a rotation and is held right after recording it; B takes it over and completes it;
    when A goes on, it loses its claim (a RotationClaimLost Event, the metric) and writes nothing.
    Then both run freely through two rounds of rotation requests on four objects."""
    names = ["app", "db-1", "db-2", "db-3"]
    async with iso_namespace(cluster, "cw-two") as ns:
        for doc in env.vault_token_store(ns):
            await cluster.apply(doc, ns)
        await cluster.apply(policy("policy", POLICY), ns)
        paths: dict[str, tuple[str, int]] = {}
        for name in names:
            value = secrets.token_urlsafe(20)
            leaks.add(value)
            path = f"{ns}/{name}"
            paths[name] = (path, kv2_write(env, path, {"password": value, "user": "app"}))
        hold = env.workdir / f"hold-{ns}"
        first = own_operator(
            env,
            ns,
            name=f"op-{ns}-a",
            extra_env={HOLD: "Pending", HOLD_FILE: str(hold), "POD_NAME": "writer-a"},
        )
        second = own_operator(env, ns, name=f"op-{ns}-b", extra_env={"POD_NAME": "writer-b"})
        requests = dict.fromkeys(names, 0)
        async with running(first):
            for name in names:
                await cluster.apply(managed_secret(name, key=paths[name][0]), ns)
            for name in names:
                await cluster.ready(name, ns, timeout=60)
            history = SecretHistory(cluster.api, ns, names)
            async with history.recording():
                request = await request_rotation(cluster, ns, "app")
                requests["app"] += 1
                await _phase(cluster, ns, "app", "Pending", holder="writer-a/")
                async with running(second):
                    await wait_rotated(cluster, ns, "app", request=request, timeout=SETTLE)
                    assert str((await rotation_status(cluster, ns, "app"))["claimedBy"]).startswith(
                        "writer-b/"
                    )
                    hold.write_text("go")  # A goes on from its stale view

                    async def lost() -> bool:
                        return "RotationClaimLost" in await cluster.event_reasons(ns, "app")

                    await wait_for(lost, timeout=60, what="a RotationClaimLost Event from the operator held")
                    assert _claims_lost(first) >= 1
                    await _settled(
                        cluster, env, ns, "app", {"password": (*paths["app"], 1)}, {"user": b"app"}
                    )

                    # both serving freely: two rounds on every object
                    for _ in range(2):
                        asked = {}
                        for name in names:
                            asked[name] = await request_rotation(cluster, ns, name)
                            requests[name] += 1
                        for name in names:
                            await wait_rotated(cluster, ns, name, request=asked[name], timeout=120)
                    for name in names:
                        await _settled(
                            cluster,
                            env,
                            ns,
                            name,
                            {"password": (*paths[name], requests[name])},
                            {"user": b"app"},
                        )
                # the second operator gone: still settled, and nothing more is written
                for name in names:
                    await force_sync(cluster, ns, name)
                    await _settled(
                        cluster, env, ns, name, {"password": (*paths[name], requests[name])}, {"user": b"app"}
                    )
            for name in names:
                _no_violations(
                    env,
                    history,
                    name,
                    {"password": (*paths[name], requests[name])},
                    ["password", "user"],
                    [],
                    leaks,
                )
        notes = [n for n in await cluster.event_notes(ns) if "another operator" in n]
        assert notes and all("writer-a/" in n or "writer-b/" in n for n in notes)
