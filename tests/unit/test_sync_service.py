"""The reconcile of one ManagedSecret end to end (SyncService with rotation) against an in-memory
KV v2 store, gateway and index: the Secret plan is decided before any source write, and the
previous value during the grace period is the one the rotation replaced."""

from __future__ import annotations

import base64
import copy
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from rotor.api.names import MANAGED_BY_LABEL
from rotor.api.status import ManagedSecretStatus, Reason
from rotor.kube.gateway import KubeError
from rotor.services.rotation import RotationService
from rotor.services.stores import StoreHandle
from rotor.services.sync import SyncService
from support.handles import vault_token_handle
from support.memindex import MemoryIndex

pytestmark = pytest.mark.asyncio(loop_scope="function")

NS, NAME, PATH = "team-a", "app", "apps/db"
NOW = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
REASONS = {r.value for r in Reason}


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict) and isinstance(target.get(k), dict):
            _merge(target[k], v)
        else:
            target[k] = copy.deepcopy(v)


@dataclass
class Gateway:
    """ManagedSecrets, policies and Secrets in memory; records Events and rotation phases."""

    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    secrets: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    phases: list[str] = field(default_factory=list)
    version: int = 1

    def _bump(self, body: dict[str, Any]) -> None:
        self.version += 1
        body["metadata"]["resourceVersion"] = str(self.version)

    async def patch_object(self, kind: str, name: str, namespace: str | None, patch: dict) -> dict:
        body = self.objects[(kind, name)]
        _merge(body, patch)
        self._bump(body)
        return copy.deepcopy(body)

    async def patch_status(
        self, kind: str, name: str, namespace: str | None, patch: dict, *, resource_version: str | None = None
    ) -> dict:
        body = self.objects[(kind, name)]
        if resource_version is not None and resource_version != body["metadata"].get("resourceVersion"):
            raise KubeError(409, "the object has been modified")
        _merge(body.setdefault("status", {}), patch)
        self._bump(body)
        phase = ((patch.get("rotation") or {}) or {}).get("phase")
        if phase and (not self.phases or self.phases[-1] != phase):
            self.phases.append(phase)
        return copy.deepcopy(body)

    async def get_object(self, kind: str, name: str, namespace: str | None) -> dict | None:
        return copy.deepcopy(self.objects.get((kind, name)))

    async def get_secret(self, namespace: str, name: str) -> dict | None:
        return copy.deepcopy(self.secrets.get(name))

    async def create_secret(self, namespace: str, body: dict) -> dict:
        body = copy.deepcopy(body)
        self._bump(body)
        self.secrets[body["metadata"]["name"]] = body
        return copy.deepcopy(body)

    async def patch_secret(self, namespace: str, name: str, patch: dict) -> dict:
        body = self.secrets[name]
        _merge(body, patch)
        self._bump(body)
        return copy.deepcopy(body)

    async def delete_secret(self, namespace: str, name: str) -> None:
        self.secrets.pop(name, None)

    async def post_event(self, body: Any, *, type_: str, reason: str, note: str, action: str) -> None:
        self.events.append(reason)


class Stores:
    """The store service's part a sync uses, with one handle."""

    def __init__(self, handle: StoreHandle) -> None:
        self.handle = handle

    async def resolve(self, namespace: str, kind: str, name: str) -> StoreHandle:
        return self.handle

    def check_keys(self, handle: StoreHandle, namespace: str, keys: Iterable[str]) -> None:
        pass

    def check_find_path(self, handle: StoreHandle, namespace: str, path: str) -> None:
        pass

    def allowed_only(self, handle: StoreHandle, namespace: str, keys: list[str]) -> list[str]:
        return keys


@pytest.fixture
def world() -> Any:
    from test_rotation_service import FakeKV  # the same in-memory KV v2

    kv = FakeKV(versions={PATH: [{"password": "old-value-1", "user": "app"}]})
    gateway = Gateway()
    gateway.objects[("RotationPolicy", "policy")] = {
        "kind": "RotationPolicy",
        "metadata": {"name": "policy", "namespace": NS, "generation": 1},
        "spec": {"preset": "database-password", "gracePeriod": "1h"},
    }
    gateway.objects[("ManagedSecret", NAME)] = {
        "metadata": {
            "name": NAME,
            "namespace": NS,
            "uid": "uid-1",
            "generation": 1,
            "resourceVersion": "1",
            "creationTimestamp": "2024-05-01T00:00:00Z",
            "annotations": {},
        },
        "spec": {
            "storeRef": {"name": "vault"},
            "dataFrom": [{"extract": {"key": PATH}}],
            "rotation": {"policyRef": {"name": "policy"}, "keys": ["password"]},
        },
    }
    handle = vault_token_handle(kv, NS)
    index = MemoryIndex()
    clock = SimpleNamespace(now=lambda: NOW)
    rotation = RotationService(gateway, clock, index, hash_key=b"k")  # type: ignore[arg-type]
    sync = SyncService(
        gateway,  # type: ignore[arg-type]
        Stores(handle),  # type: ignore[arg-type]
        clock,  # type: ignore[arg-type]
        index,
        index,
        hash_key=b"k",
        rotation=rotation,
    )
    return SimpleNamespace(kv=kv, gateway=gateway, index=index, sync=sync, handle=handle, clock=clock)


async def _sync(w: Any) -> dict[str, Any]:
    """One reconcile of the indexed body (as the controller runs it); returns the stored status."""
    body = copy.deepcopy(w.gateway.objects[("ManagedSecret", NAME)])
    await w.sync.sync(body)
    status = w.gateway.objects[("ManagedSecret", NAME)].get("status") or {}
    ManagedSecretStatus.model_validate(status)
    assert {c["reason"] for c in status.get("conditions") or []} <= REASONS
    return status


def _cond(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def _data(w: Any) -> dict[str, bytes]:
    secret = w.gateway.secrets.get(NAME) or {}
    return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}


def _request(w: Any, value: str) -> None:
    w.gateway.objects[("ManagedSecret", NAME)]["metadata"]["annotations"]["rotor.dev/rotate"] = value


async def test_a_sync_then_a_rotation_through_every_phase(world: Any) -> None:
    status = await _sync(world)
    assert _cond(status, "Ready")["reason"] == "Synced" and _data(world)["password"] == b"old-value-1"
    _request(world, "r1")
    status = await _sync(world)
    new = world.kv.versions[PATH][-1]["password"].encode()
    assert world.kv.writes == 1 and status["rotation"]["phase"] == "Completed"
    assert world.gateway.phases[-4:] == ["Pending", "Written", "Synced", "Completed"]
    assert _data(world) == {"password": new, "password_previous": b"old-value-1", "user": b"app"}


async def test_no_source_write_while_the_secret_cannot_be_written(world: Any) -> None:
    await _sync(world)
    # someone removes Rotor's label: the Secret is no longer Rotor's to write
    del world.gateway.secrets[NAME]["metadata"]["labels"][MANAGED_BY_LABEL]
    world.index.secrets.clear()
    _request(world, "r1")
    status = await _sync(world)
    assert world.kv.writes == 0, "the source was written although the Secret could not be"
    assert _cond(status, "Ready")["reason"] == "SecretConflict"
    rotating = _cond(status, "Rotating")
    assert rotating["status"] == "False" and rotating["reason"] == "SecretConflict"
    assert "Nothing was written to the source" in rotating["message"]
    assert {"RotationFailed", "SyncFailed"} <= set(world.gateway.events)
    assert (status.get("rotation") or {}).get("lastRotateRequest") != "r1", "the request still waits"
    # the label is back: the same request rotates, once, and the Secret follows
    world.gateway.secrets[NAME]["metadata"]["labels"][MANAGED_BY_LABEL] = NAME
    status = await _sync(world)
    new = world.kv.versions[PATH][-1]["password"].encode()
    assert world.kv.writes == 1 and status["rotation"]["lastRotateRequest"] == "r1"
    assert _cond(status, "Rotating")["reason"] == "Succeeded" and _cond(status, "Ready")["reason"] == "Synced"
    assert _data(world)["password"] == new and _data(world)["password_previous"] == b"old-value-1"


async def test_a_hand_edit_during_grace_never_becomes_the_previous_value(world: Any) -> None:
    await _sync(world)
    _request(world, "r1")
    await _sync(world)
    new = world.kv.versions[PATH][-1]["password"].encode()
    world.gateway.secrets[NAME]["data"]["password"] = base64.b64encode(b"hand-edited").decode()
    world.index.secrets.clear()  # the watch would deliver the edit; the sync reads it
    await _sync(world)
    assert _data(world)["password"] == new, "the Secret is restored"
    assert _data(world)["password_previous"] == b"old-value-1"
    # the Secret deleted during grace: re-created with the replaced value, from the source
    del world.gateway.secrets[NAME]
    world.index.secrets.clear()
    await _sync(world)
    assert _data(world) == {"password": new, "password_previous": b"old-value-1", "user": b"app"}
    assert world.kv.writes == 1


async def test_a_claim_lost_after_the_secret_write_leaves_the_other_writers_status(world: Any) -> None:
    """Another operator records the rotation's next phase while this sync writes the Secret: this
    sync writes no status over it (no Synced, no Completed, no Rotated Event), the Secret write is
    still announced, and it looks again soon."""
    await _sync(world)
    _request(world, "r1")
    write_secret = world.gateway.patch_secret

    async def and_another_operator(namespace: str, name: str, patch: dict) -> dict:
        out = await write_secret(namespace, name, patch)
        body = world.gateway.objects[("ManagedSecret", NAME)]
        body["status"]["rotation"].update({"phase": "Synced", "claimedBy": "operator-b/7"})
        world.gateway._bump(body)
        return out

    world.gateway.patch_secret = and_another_operator
    body = copy.deepcopy(world.gateway.objects[("ManagedSecret", NAME)])
    outcome = await world.sync.sync(body)
    assert outcome.reason == "ClaimLost" and outcome.next_at is not None and outcome.next_at > NOW
    stored = world.gateway.objects[("ManagedSecret", NAME)]["status"]
    assert stored["rotation"]["phase"] == "Synced" and stored["rotation"]["claimedBy"] == "operator-b/7"
    assert body["status"] == stored, "the loser's view is what is stored"
    assert world.kv.writes == 1
    assert "Rotated" not in world.gateway.events and "RotationClaimLost" in world.gateway.events
    assert world.gateway.events[-2:] == ["RotationClaimLost", "Synced"]


async def test_after_grace_the_replaced_version_is_retired_and_a_failure_retries_next_sync(
    world: Any,
) -> None:
    from test_rotation_service import FakeKV

    from rotor.providers.base import Unreachable

    @dataclass
    class RetiringKV(FakeKV):
        retired: list[tuple[str, str]] = field(default_factory=list)
        failures: int = 0

        def retire_version(self, key: str, version: str) -> bool:
            if self.failures:
                self.failures -= 1
                raise Unreachable("the store is unreachable")
            self.retired.append((key, version))
            return True

    kv = RetiringKV(versions=world.kv.versions)
    world.handle.backend.provider = kv
    await _sync(world)
    _request(world, "r1")
    status = await _sync(world)
    assert status["rotation"]["baseVersions"] == {PATH: "1"} and kv.retired == []
    await _sync(world)
    assert kv.retired == [], "nothing is retired during the grace period"
    later = NOW + dt.timedelta(hours=2)
    world.clock.now = lambda: later
    kv.failures = 1
    status = await _sync(world)
    assert _cond(status, "Ready")["reason"] == "Synced", "a failed retire never fails the sync"
    assert "RetireFailed" in world.gateway.events
    assert status["rotation"]["baseVersions"] == {PATH: "1"}, "kept for the next sync"
    assert _data(world).keys() == {"password", "user"}  # the grace key is gone all the same
    status = await _sync(world)
    assert kv.retired == [(PATH, "1")]
    assert "baseVersions" not in status["rotation"]
    await _sync(world)
    assert kv.retired == [(PATH, "1")], "retired once"
