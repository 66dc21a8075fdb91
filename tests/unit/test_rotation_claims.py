"""Two operators serving one ManagedSecret (issue 13, item 5): every rotation phase is claimed with
a conditional status write before the source is touched, so the second operator loses the claim,
backs off without writing the source, and says so (a Warning Event and
rotor_rotation_claims_lost_total); a pending write another operator recorded is left to it; the
rotation's token is derived from the rotation, so both would stage the same AWS version."""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
import test_rotation_service as base
from test_rotation_service import NAME, NOW, PATH, Crash

from rotor.observability.metrics import REGISTRY
from rotor.providers.base import RemoteRef
from rotor.rotation.report import report
from rotor.services.rotation import (
    CLAIM_TTL,
    FAULT_EXIT,
    RotationClaimLost,
    RotationService,
    next_token,
    rotation_token,
)
from rotor.services.state import Fetched

pytestmark = pytest.mark.asyncio(loop_scope="function")
world = base.world  # the fixture: in-memory KV v2, gateway and rotation service


def _lost(phase: str) -> float:
    return REGISTRY.get_sample_value("rotor_rotation_claims_lost_total", {"phase": phase}) or 0.0


def _second(w: Any, writer: str = "operator-b") -> RotationService:
    """Another operator: its own process, the same cluster and source."""
    return RotationService(
        w.gateway,
        SimpleNamespace(now=lambda: NOW),  # type: ignore[arg-type]
        w.service.index,
        hash_key=b"unit-hash-key",
        writer=writer,
    )


def _stored(w: Any) -> dict[str, Any]:
    return copy.deepcopy(w.gateway.objects[("ManagedSecret", NAME)])


async def _reconcile(
    w: Any, service: RotationService, body: dict[str, Any], now: dt.datetime = NOW
) -> dict[str, Any]:
    """One reconcile of ``body`` (this operator's view) by ``service``; returns the stored status."""
    fetched = Fetched(refs={RemoteRef(PATH): w.kv.read(RemoteRef(PATH))})
    ctx, fetched = await service.before_sync(body, w.spec, w.handle, fetched, now)
    data = {k: str(v).encode() for k, v in fetched.refs[RemoteRef(PATH)].data.items()}
    data = await service.with_grace_keys(body, w.spec, data, ctx, now, w.handle, fetched)
    done, seen = await service.gathered(body, w.spec, data, ctx, now, fetched, w.handle)
    rep = report(done, seen, list((body.get("status") or {}).get("conditions") or []))
    extra: dict[str, Any] = {"rotation": rep.rotation, "conditions": rep.conditions}
    if rep.completed is not None:
        service.stamp(extra["rotation"], now)
    await service.write_status(body, extra, now)
    return dict(w.gateway.objects[("ManagedSecret", NAME)]["status"])


async def test_the_second_operator_loses_the_claim_and_never_writes_the_source(world: Any) -> None:
    world.service.writer = "operator-a"
    b = _second(world)
    seen_by_b = _stored(world)  # both operators read the object before either acts
    before = _lost("Pending")
    status = await _reconcile(world, world.service, _stored(world))
    assert status["rotation"]["phase"] == "Completed" and world.kv.writes == 1
    assert status["rotation"]["claimedBy"] == "operator-a"

    with pytest.raises(RotationClaimLost) as lost:
        await _reconcile(world, b, seen_by_b)
    assert world.kv.writes == 1, "the operator that lost the claim wrote the source"
    assert lost.value.retry_at is not None and lost.value.retry_at > NOW
    assert world.gateway.events.count("RotationClaimLost") == 1
    assert _lost("Pending") == before + 1
    assert seen_by_b == _stored(world), "the loser re-reads: its view is what is stored"
    assert _stored(world)["status"]["rotation"]["claimedBy"] == "operator-a"
    # from what it re-read, the second operator has nothing to do
    status = await _reconcile(world, b, seen_by_b)
    assert world.kv.writes == 1 and status["rotation"]["phase"] == "Completed"


async def test_a_stale_view_never_overwrites_a_rotation_in_status(world: Any) -> None:
    """The sync's own status write (nextRotationTime, conditions) is conditional too: a second
    operator that decided nothing from an old view cannot put an old rotation status back."""
    b = _second(world)
    world.gateway.objects[("ManagedSecret", NAME)]["metadata"]["annotations"] = {}
    seen_by_b = _stored(world)
    body = _stored(world)
    body["metadata"]["annotations"]["rotor.dev/rotate"] = "now"
    world.gateway.objects[("ManagedSecret", NAME)]["metadata"]["annotations"]["rotor.dev/rotate"] = "now"
    await _reconcile(world, world.service, body)
    rotated = _stored(world)["status"]["rotation"]
    with pytest.raises(RotationClaimLost):
        await b.write_status(seen_by_b, {"rotation": {"nextRotationTime": "2030-01-01T00:00:00Z"}}, NOW)
    assert _stored(world)["status"]["rotation"] == rotated


async def test_a_pending_write_recorded_by_another_operator_is_left_to_it(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Operator A recorded what it is about to write (and may be writing it): B, seeing the
    rotation Pending, does not write a second value; once A's claim is older than CLAIM_TTL (A is
    gone), B takes the rotation over, and the source gets one new version in all."""
    world.service.writer = "operator-a"
    monkeypatch.setenv(FAULT_EXIT, "BeforeWrite")
    with pytest.raises(Crash):
        await _reconcile(world, world.service, _stored(world))
    monkeypatch.delenv(FAULT_EXIT)
    rot = _stored(world)["status"]["rotation"]
    assert rot["phase"] == "Pending" and rot["pendingVersion"].startswith("hmac:")
    assert rot["claimedBy"] == "operator-a" and world.kv.writes == 0

    b = _second(world)
    soon = NOW + dt.timedelta(seconds=3)
    status = await _reconcile(world, b, _stored(world), soon)
    assert world.kv.writes == 0, "a second value was written while the first writer may be writing"
    assert status["rotation"]["phase"] == "Pending"
    assert status["rotation"]["claimedBy"] == "operator-a"

    later = NOW + CLAIM_TTL + dt.timedelta(seconds=1)
    status = await _reconcile(world, b, _stored(world), later)
    assert world.kv.writes == 1 and len(world.kv.versions[PATH]) == 2
    assert status["rotation"]["phase"] == "Completed" and status["rotation"]["claimedBy"] == "operator-b"


async def test_a_conflict_outside_the_rotation_is_retried_on_the_new_version(world: Any) -> None:
    """Someone changed the object (a label, the spec) after this operator read it: that is no
    second writer of the rotation, so the claim is made again on the new resourceVersion."""
    seen = _stored(world)
    stored = world.gateway.objects[("ManagedSecret", NAME)]
    stored["metadata"]["labels"] = {"team": "a"}
    stored["metadata"]["resourceVersion"] = "7"
    before = _lost("Pending")
    status = await _reconcile(world, world.service, seen)
    assert status["rotation"]["phase"] == "Completed" and world.kv.writes == 1
    assert "RotationClaimLost" not in world.gateway.events and _lost("Pending") == before


async def test_its_own_newer_write_not_yet_seen_is_no_second_writer(world: Any) -> None:
    old_view = _stored(world)
    await _reconcile(world, world.service, _stored(world))
    writes = world.kv.writes
    with pytest.raises(RotationClaimLost):
        await world.service.write_status(old_view, {"rotation": {"failedAttempts": 0}}, NOW)
    assert world.kv.writes == writes
    assert "RotationClaimLost" not in world.gateway.events


async def test_the_rotation_token_is_derived_from_the_rotation() -> None:
    meta = {"uid": "6c1f-uid", "namespace": "team-a", "name": "app"}
    rot = {"lastRotationTime": "2024-05-01T00:00:00Z"}
    due = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
    token = rotation_token(meta, rot, "Manual", "req-1", due)
    # two operators starting the same rotation agree on it (the manual request, not the clock)
    assert token == rotation_token(meta, dict(rot), "Manual", "req-1", due + dt.timedelta(seconds=7))
    assert token != rotation_token(meta, rot, "Manual", "req-2", due)
    # the same request value again after a completed rotation is another rotation
    assert token != rotation_token(meta, {"lastRotationTime": "2024-06-01T00:00:00Z"}, "Manual", "req-1", due)
    assert token != rotation_token({**meta, "uid": "other"}, rot, "Manual", "req-1", due)
    scheduled = rotation_token(meta, rot, "Scheduled", None, due)
    assert scheduled == rotation_token(meta, rot, "Scheduled", None, due)
    assert scheduled != rotation_token(meta, rot, "Scheduled", None, due + dt.timedelta(days=1))
    # a staged rotation started again gets a new version, which every writer derives alike
    assert next_token(token) == next_token(token) != token
    assert uuid.UUID(token).version == 5 and uuid.UUID(next_token(token)).version == 5
