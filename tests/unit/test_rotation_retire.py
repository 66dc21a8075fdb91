"""Retiring the versions a rotation replaced once its grace period is over (``RetiresVersions``,
Azure Key Vault disables them): the report releases ``baseVersions`` only when a completed
rotation's grace period has passed, keeps them when retiring failed; the rotation service retires
only the keys the rotation wrote, on stores that retire versions, and turns a failure into a
warning and an Event, never an exception."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest

from rotor.api.managedsecret import ManagedSecretSpec
from rotor.api.secretstore import SecretStoreSpec
from rotor.providers.base import Capabilities, RetiresVersions, Unreachable
from rotor.providers.fake import FakeProvider
from rotor.rotation.presets import effective_policy
from rotor.rotation.report import RotationDone, RotationSeen, report
from rotor.services.backend import Backend
from rotor.services.rotation import RotationContext, RotationService
from rotor.services.stores import StoreHandle
from support.memindex import MemoryIndex

NOW = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
GENERATE = effective_policy({"preset": "database-password", "gracePeriod": "1h"})
OBSERVE = effective_policy({"strategy": "Observe", "maxAge": "240h"})
BASES = {"app-db": "1", "app-other": "7"}


def _seen(status: dict[str, Any] | None = None) -> RotationSeen:
    return RotationSeen(
        now=NOW,
        generation=1,
        status=status or {},
        data={"password": b"new"},
        created=NOW - dt.timedelta(days=1),
        observed=None,
        store_writable=True,
        seed="ns/app",
    )


def _completed(retained: dt.datetime | None, **done: Any) -> RotationDone:
    rot: dict[str, Any] = {
        "phase": "Completed",
        "baseVersions": dict(BASES),
        "lastRotationTime": "2024-05-01T10:00:00Z",
    }
    if retained is not None:
        rot["previousRetainedUntil"] = retained.strftime("%Y-%m-%dT%H:%M:%SZ")
    return RotationDone(rotation=rot, policy=GENERATE, **done)


def test_the_base_versions_are_released_once_the_grace_period_is_over() -> None:
    status = {"rotation": {"baseVersions": dict(BASES)}}
    over = report(_completed(NOW - dt.timedelta(seconds=1)), _seen(status), [])
    assert over.released == BASES
    assert over.rotation["baseVersions"] is None  # removed from the stored status


def test_during_the_grace_period_nothing_is_released() -> None:
    during = report(_completed(NOW + dt.timedelta(minutes=5)), _seen(), [])
    assert during.released == {}
    assert during.rotation["baseVersions"] == BASES


def test_a_rotation_without_grace_releases_when_it_completes() -> None:
    done = RotationDone(
        rotation={"phase": "Synced", "trigger": "Manual", "baseVersions": dict(BASES)},
        policy=effective_policy({"preset": "database-password", "gracePeriod": "0"}),
        advanced=True,
    )
    rep = report(done, _seen(), [])
    assert rep.rotation["phase"] == "Completed" and rep.released == BASES


def test_a_failed_rotation_releases_nothing_to_retire() -> None:
    # a rotation that failed before writing recorded the versions that are still current
    done = RotationDone(rotation={"phase": "Failed", "baseVersions": dict(BASES)}, policy=GENERATE)
    rep = report(done, _seen(), [])
    assert rep.released == {} and "baseVersions" not in rep.rotation


def test_a_failed_retire_keeps_the_base_versions_for_the_next_sync() -> None:
    status = {"rotation": {"baseVersions": dict(BASES)}}
    rep = report(_completed(NOW - dt.timedelta(seconds=1), retire_failed=True), _seen(status), [])
    assert rep.released == {}
    assert rep.rotation["baseVersions"] == BASES


# --------------------------------------------------------------------------- the service


class RetiringFake(FakeProvider):
    """The fake with the capability: records what it was asked to retire."""

    def __init__(self) -> None:
        super().__init__()
        self.retired: list[tuple[str, str]] = []
        self.broken = False

    def retire_version(self, key: str, version: str) -> bool:
        if self.broken:
            raise Unreachable("the vault is unreachable")
        self.retired.append((key, version))
        return True


class Gateway:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    async def post_event(self, body: Any, *, type_: str, reason: str, note: str, action: str) -> None:
        self.events.append((type_, reason, note))


def _world(provider: Any) -> Any:
    gateway = Gateway()
    service = RotationService(
        gateway,  # type: ignore[arg-type]
        SimpleNamespace(now=lambda: NOW),  # type: ignore[arg-type]
        MemoryIndex(),
        hash_key=b"k",
    )
    store = SecretStoreSpec.model_validate(
        {
            "provider": {
                "vault": {
                    "server": "http://vault",
                    "auth": {"token": {"secretRef": {"name": "t", "key": "t"}}},
                }
            }
        }
    )
    handle = StoreHandle(
        ("SecretStore", "ns", "s"),
        1,
        "",
        store,
        backend=Backend(provider, store="s"),
        ready=True,
        capabilities=Capabilities.READ_WRITE,
    )
    # app-db is rotated; app-other is only read (its version must never be retired)
    spec = ManagedSecretSpec.model_validate(
        {
            "storeRef": {"name": "s"},
            "dataFrom": [{"extract": {"key": "app-db"}}],
            "data": [{"secretKey": "url", "remoteRef": {"key": "app-other"}}],
            "rotation": {"policyRef": {"name": "p"}, "keys": ["password"]},
        }
    )
    body = {"metadata": {"name": "app", "namespace": "ns"}}
    return SimpleNamespace(gateway=gateway, service=service, handle=handle, spec=spec, body=body)


@pytest.mark.asyncio(loop_scope="function")
async def test_only_the_rotated_keys_are_retired() -> None:
    provider = RetiringFake()
    assert isinstance(provider, RetiresVersions)
    w = _world(provider)
    ctx = RotationContext(rotation={}, policy=GENERATE)
    assert await w.service.retire_replaced(w.body, w.spec, w.handle, ctx, BASES)
    assert provider.retired == [("app-db", "1")]
    assert w.gateway.events == []


@pytest.mark.asyncio(loop_scope="function")
async def test_a_failure_to_retire_is_a_warning_event_not_an_error(caplog: pytest.LogCaptureFixture) -> None:
    provider = RetiringFake()
    provider.broken = True
    w = _world(provider)
    ctx = RotationContext(rotation={}, policy=GENERATE)
    assert not await w.service.retire_replaced(w.body, w.spec, w.handle, ctx, BASES)
    [(kind, reason, note)] = w.gateway.events
    assert (kind, reason) == ("Warning", "RetireFailed")
    assert "unreachable" in note and "next sync" in note
    assert any(r.levelname == "WARNING" and "could not be retired" in r.getMessage() for r in caplog.records)


@pytest.mark.asyncio(loop_scope="function")
async def test_nothing_is_retired_without_the_capability_or_outside_generate() -> None:
    plain = FakeProvider()
    assert not isinstance(plain, RetiresVersions)
    w = _world(plain)
    assert await w.service.retire_replaced(
        w.body, w.spec, w.handle, RotationContext({}, policy=GENERATE), BASES
    )
    provider = RetiringFake()
    w = _world(provider)
    assert await w.service.retire_replaced(
        w.body, w.spec, w.handle, RotationContext({}, policy=OBSERVE), BASES
    )
    assert provider.retired == [] and w.gateway.events == []
