"""Dynamic credentials end to end through SyncService, against the fake provider's leases on a
clock the test moves: issued once, kept across syncs and a restart, renewed in place, replaced
before the end when the max TTL caps the renewal (previous kept until its lease ends, then
removed), revoked on delete, and a lease whose Secret write failed revoked at once."""

from __future__ import annotations

import base64
import copy
import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest
from test_sync_service import Gateway, Stores

from rotor.api.secretstore import SecretStoreSpec
from rotor.api.status import ManagedSecretStatus
from rotor.providers.base import Capabilities
from rotor.providers.fake.provider import FakeProvider
from rotor.services.backend import Backend
from rotor.services.stores import StoreHandle
from rotor.services.sync import SyncService
from support.memindex import MemoryIndex

pytestmark = pytest.mark.asyncio(loop_scope="function")

NS, NAME, PATH = "team-a", "app", "database/creds/app"
T0 = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.at = T0

    def now(self) -> dt.datetime:
        return self.at

    def to(self, seconds: float) -> None:
        self.at = T0 + dt.timedelta(seconds=seconds)


def _service(w: Any) -> SyncService:
    return SyncService(
        w.gateway,  # type: ignore[arg-type]
        Stores(w.handle),  # type: ignore[arg-type]
        w.clock,  # type: ignore[arg-type]
        w.index,
        w.index,
        hash_key=b"k",
    )


@pytest.fixture
def world() -> Any:
    clock = Clock()
    fake = FakeProvider(capabilities=Capabilities.READ_ONLY)
    fake.clock = clock.now
    fake.dynamic(PATH, ttl=100, max_ttl=200)
    gateway = Gateway()
    gateway.objects[("ManagedSecret", NAME)] = {
        "metadata": {"name": NAME, "namespace": NS, "uid": "uid-1", "generation": 1, "resourceVersion": "1"},
        "spec": {
            "storeRef": {"name": "vault"},
            "dataFrom": [{"vaultDynamic": {"path": PATH, "renewPercent": 67, "revokeOnDelete": True}}],
            "template": {"data": {"url": "postgresql://{{ username }}:{{ password }}@db/app"}},
        },
    }
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
        ("SecretStore", NS, "vault"),
        1,
        "",
        store,
        backend=Backend(fake, store="vault"),
        ready=True,
        capabilities=Capabilities.READ_ONLY,
    )
    w = SimpleNamespace(clock=clock, fake=fake, gateway=gateway, handle=handle, index=MemoryIndex())
    w.sync = _service(w)
    return w


async def _sync(w: Any, at: float) -> dict[str, Any]:
    w.clock.to(at)
    body = copy.deepcopy(w.gateway.objects[("ManagedSecret", NAME)])
    outcome = await w.sync.sync(body)
    status = w.gateway.objects[("ManagedSecret", NAME)].get("status") or {}
    ManagedSecretStatus.model_validate(status)
    w.next_at = outcome.next_at
    return status


def _data(w: Any) -> dict[str, bytes]:
    secret = w.gateway.secrets.get(NAME) or {}
    return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}


def _ready(status: dict[str, Any]) -> str:
    return next(c["reason"] for c in status["conditions"] if c["type"] == "Ready")


async def test_issue_keep_renew_replace_and_remove_the_previous(world: Any) -> None:
    w = world
    status = await _sync(w, 0)
    assert _ready(status) == "Synced" and w.fake.calls["issue"] == 1
    first = copy.deepcopy(status["lease"])
    assert first["id"] == f"{PATH}/lease-1" and first["renewable"] and first["duration"] == 100
    assert first["keys"] == ["password", "username"]
    data = _data(w)
    assert (
        data["username"] == b"v-user-1"
        and data["url"] == b"postgresql://v-user-1:" + data["password"] + b"@db/app"
    )
    assert status["expiry"]["source"] == "Provider" and status["expiry"]["notAfter"] == first["expiresAt"]
    assert w.next_at == T0 + dt.timedelta(seconds=67), "the next look is the renewal, not the hourly refresh"
    assert "CredentialsIssued" in w.gateway.events

    # a routine sync before the renewal: nothing issued, nothing renewed, nothing written
    events = len(w.gateway.events)
    status = await _sync(w, 30)
    assert w.fake.calls["issue"] == 1 and w.fake.calls["renew"] == 0 and len(w.gateway.events) == events

    # at 67 %: renewed in place, same lease id, the end moved
    status = await _sync(w, 67)
    assert w.fake.calls["renew"] == 1 and w.fake.calls["issue"] == 1
    assert status["lease"]["id"] == first["id"]
    assert status["lease"]["expiresAt"] == "2024-05-01T12:02:47Z"
    assert status["lease"]["renewable"] is True
    assert _data(w) == data

    # the next renewal is capped at the max TTL (200 s): final, replaced 33 s before its end
    status = await _sync(w, 134)
    assert w.fake.calls["renew"] == 2 and status["lease"]["expiresAt"] == "2024-05-01T12:03:20Z"
    assert status["lease"]["renewable"] is False and w.fake.calls["issue"] == 1
    assert w.next_at == T0 + dt.timedelta(seconds=167)

    status = await _sync(w, 167)
    assert w.fake.calls["issue"] == 2
    second = status["lease"]
    assert second["id"] == f"{PATH}/lease-2" and second["previous"]["id"] == first["id"]
    new = _data(w)
    assert new["username"] == b"v-user-2" and new["username_previous"] == b"v-user-1"
    assert new["password_previous"] == data["password"] and new["password"] != data["password"]
    assert w.next_at == T0 + dt.timedelta(seconds=200), "wakes when the previous credentials end"
    assert sorted(w.fake.live_leases()) == [f"{PATH}/lease-1", f"{PATH}/lease-2"]

    # the previous lease ends: its keys leave the Secret
    status = await _sync(w, 200)
    assert status["lease"].get("previous") is None and w.fake.calls["issue"] == 2
    assert set(_data(w)) == {"username", "password", "url"}
    assert _data(w)["password"] == new["password"]

    # nothing secret in status or Events
    text = repr(w.gateway.objects) + repr(w.gateway.events)
    for value in (data["password"], new["password"]):
        assert value.decode() not in text


async def test_a_restart_resumes_the_recorded_lease(world: Any) -> None:
    w = world
    await _sync(w, 0)
    secret_before = copy.deepcopy(w.gateway.secrets[NAME])
    w.sync = _service(w)  # a new process: nothing in memory but what the index lists
    status = await _sync(w, 20)
    assert w.fake.calls["issue"] == 1, "a restart issued new credentials"
    assert status["lease"]["id"] == f"{PATH}/lease-1"
    assert w.gateway.secrets[NAME]["data"] == secret_before["data"]
    status = await _sync(w, 70)
    assert w.fake.calls["renew"] == 1 and w.fake.calls["issue"] == 1


async def test_edited_credentials_are_not_taken_for_the_leased_ones(world: Any) -> None:
    w = world
    await _sync(w, 0)
    for secret in (w.gateway.secrets[NAME], w.index.secrets[(NS, NAME)]):  # the watch brings the edit
        secret["data"]["password"] = base64.b64encode(b"edited").decode()
    status = await _sync(w, 10)
    assert w.fake.calls["issue"] == 2
    assert status["lease"]["id"] == f"{PATH}/lease-2"
    assert _data(w)["password"] != b"edited" and "password_previous" not in _data(w)


async def test_a_refused_renewal_replaces_the_credentials_at_once(world: Any) -> None:
    w = world
    await _sync(w, 0)
    w.fake.leases[f"{PATH}/lease-1"].revoked = True  # revoked behind Rotor's back: renewal refused
    status = await _sync(w, 67)
    assert w.fake.calls["renew"] == 1 and w.fake.calls["issue"] == 2
    assert (
        status["lease"]["id"] == f"{PATH}/lease-2" and status["lease"]["previous"]["id"] == f"{PATH}/lease-1"
    )


async def test_revoke_on_delete(world: Any) -> None:
    w = world
    await _sync(w, 0)
    await _sync(w, 67)
    body = w.gateway.objects[("ManagedSecret", NAME)]
    body["metadata"]["deletionTimestamp"] = "2024-05-01T12:02:00Z"
    await w.sync.sync(copy.deepcopy(body))
    assert w.fake.calls["revoke"] == 1 and w.fake.live_leases() == []
    assert body["metadata"]["finalizers"] == []


async def test_credentials_whose_secret_write_failed_are_revoked(world: Any) -> None:
    w = world
    w.gateway.objects[("ManagedSecret", NAME)]["spec"]["template"] = {"data": {"url": "{{ missing.x }}"}}
    status = await _sync(w, 0)
    assert _ready(status) == "TemplateError"
    assert w.fake.calls["issue"] == 1 and w.fake.calls["revoke"] == 1 and w.fake.live_leases() == []
    assert "lease" not in status and NAME not in w.gateway.secrets


async def test_no_credentials_are_issued_for_a_secret_rotor_cannot_write(world: Any) -> None:
    w = world
    w.gateway.secrets[NAME] = {"metadata": {"name": NAME, "namespace": NS}, "data": {}}
    w.index.secrets[(NS, NAME)] = copy.deepcopy(w.gateway.secrets[NAME])
    status = await _sync(w, 0)
    assert _ready(status) == "SecretConflict" and w.fake.calls["issue"] == 0


class Rollouts:
    """The rollout service's part a sync calls: records each Secret write handed to it."""

    def __init__(self) -> None:
        self.writes: list[dict[str, bytes]] = []

    async def after_write(self, body: Any, spec: Any, desired: Any) -> None:
        self.writes.append(dict(desired.data))


async def test_consumers_roll_out_when_credentials_change_not_when_the_lease_is_renewed(world: Any) -> None:
    w = world
    w.sync.rollout = rollouts = Rollouts()
    await _sync(w, 0)
    assert len(rollouts.writes) == 1  # first credentials
    await _sync(w, 67)  # renewed in place
    await _sync(w, 134)  # renewed, capped
    assert len(rollouts.writes) == 1, "a renewal rolled the consumers out"
    await _sync(w, 167)  # replaced: the new credentials and the previous ones
    assert len(rollouts.writes) == 2 and rollouts.writes[-1]["username"] == b"v-user-2"
    assert rollouts.writes[-1]["username_previous"] == b"v-user-1"
