"""RotationService against an in-memory KV v2 store and gateway: one write per rotation, a crash
between the write and the next phase does not write twice, check-and-set conflicts retry without
losing the other writer's data, and read-only stores are refused."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import threading
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from rotor.api.managedsecret import ManagedSecretSpec
from rotor.api.status import ManagedSecretStatus, Reason
from rotor.kube.gateway import KubeError
from rotor.providers.base import (
    Capabilities,
    KeyNotFound,
    RemoteRef,
    RemoteSecret,
    SecretMetadata,
    WriteConflict,
    WriteResult,
)
from rotor.rotation.report import report
from rotor.services import rotation as rotation_module
from rotor.services.rotation import FAULT_EXIT, RotationService
from rotor.services.state import Fetched
from support.handles import vault_token_handle
from support.memindex import MemoryIndex

pytestmark = pytest.mark.asyncio(loop_scope="function")

NS, NAME, PATH = "team-a", "app", "apps/db"
NOW = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)


class Crash(BaseException):
    """Stands for the process dying (os._exit) inside a test."""


@dataclass
class FakeKV:
    """Vault KV v2 in memory, with check-and-set."""

    name: str = "vault"
    versions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    writes: int = 0
    before_write: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def read(self, ref: RemoteRef) -> RemoteSecret:
        with self.lock:
            history = self.versions[ref.key]
            number = int(ref.version) if ref.version else len(history)
            return RemoteSecret(ref.key, str(number), data=dict(history[number - 1]), created=NOW)

    def read_version(self, key: str, version: str) -> RemoteSecret:
        """Exactly KV v2 version ``version`` (VersionReader)."""
        with self.lock:
            history = self.versions.get(key) or []
            if not version.isdigit() or not 1 <= int(version) <= len(history):
                raise KeyNotFound(f"fake KV: '{key}' has no version {version}")
            return RemoteSecret(key, version, data=dict(history[int(version) - 1]), created=NOW)

    def write(self, key: str, value: dict[str, Any], cas: str | None) -> WriteResult:
        if self.before_write is not None:
            hook, self.before_write = self.before_write, None
            hook()
        with self.lock:
            history = self.versions.setdefault(key, [])
            if cas is not None and int(cas) != len(history):
                raise WriteConflict(
                    f"Vault write '{key}': the path changed since it was read (check-and-set)"
                )
            history.append(dict(value))
            self.writes += 1
            return WriteResult(key, str(len(history)))

    def describe(self, key: str) -> SecretMetadata:
        return SecretMetadata(key, str(len(self.versions[key])))

    def close(self) -> None:
        pass


@dataclass
class FakeGateway:
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    status_writes: int = 0

    async def patch_status(
        self,
        kind: str,
        name: str,
        namespace: str | None,
        patch: dict[str, Any],
        *,
        resource_version: str | None = None,
    ) -> dict:
        body = self.objects[(kind, name)]
        if resource_version is not None and resource_version != body["metadata"].get("resourceVersion", "1"):
            raise KubeError(409, "the object has been modified")
        self.status_writes += 1
        _merge(body.setdefault("status", {}), patch)
        body["metadata"]["resourceVersion"] = str(int(body["metadata"].get("resourceVersion", "1")) + 1)
        return copy.deepcopy(body)

    async def get_object(self, kind: str, name: str, namespace: str | None) -> dict | None:
        return copy.deepcopy(self.objects.get((kind, name)))

    async def get_secret(self, namespace: str, name: str) -> dict | None:
        return None

    async def post_event(self, body: Any, *, type_: str, reason: str, note: str, action: str) -> None:
        self.events.append(reason)


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict) and isinstance(target.get(k), dict):
            _merge(target[k], v)
        else:
            target[k] = copy.deepcopy(v)


@pytest.fixture
async def world(monkeypatch: pytest.MonkeyPatch) -> Any:
    kv = FakeKV(versions={PATH: [{"password": "old-value-1", "user": "app"}]})
    gateway = FakeGateway()
    gateway.objects[("RotationPolicy", "policy")] = {
        "metadata": {"name": "policy", "namespace": NS, "generation": 1},
        "spec": {"preset": "database-password", "gracePeriod": "1h"},
    }
    spec = {
        "storeRef": {"name": "vault"},
        "dataFrom": [{"extract": {"key": PATH}}],
        "rotation": {"policyRef": {"name": "policy"}, "keys": ["password"]},
    }
    gateway.objects[("ManagedSecret", NAME)] = {
        "metadata": {
            "name": NAME,
            "namespace": NS,
            "generation": 1,
            "resourceVersion": "1",
            "creationTimestamp": "2024-05-01T00:00:00Z",
            "annotations": {"rotor.dev/rotate": "now"},
        },
        "spec": spec,
    }
    index = MemoryIndex()
    service = RotationService(
        gateway,  # type: ignore[arg-type]
        SimpleNamespace(now=lambda: NOW),  # type: ignore[arg-type]
        index,
        hash_key=b"unit-hash-key",
    )
    handle = vault_token_handle(kv, NS)
    crashes: list[int] = []

    def exit_(code: int) -> None:
        crashes.append(code)
        raise Crash()

    monkeypatch.setattr(rotation_module.os, "_exit", exit_)
    monkeypatch.setattr(rotation_module.logging, "shutdown", lambda: None)
    yield SimpleNamespace(
        kv=kv,
        gateway=gateway,
        service=service,
        handle=handle,
        spec=ManagedSecretSpec.model_validate(spec),
        crashes=crashes,
    )


async def _pass(w: Any) -> dict[str, Any]:
    """One reconcile: read, rotate when due, 'sync', record the outcome. Returns the status."""
    body = copy.deepcopy(w.gateway.objects[("ManagedSecret", NAME)])
    fetched = Fetched(refs={RemoteRef(PATH): w.kv.read(RemoteRef(PATH))})
    ctx, fetched = await w.service.before_sync(body, w.spec, w.handle, fetched, NOW)
    data = {k: str(v).encode() for k, v in fetched.refs[RemoteRef(PATH)].data.items()}
    done, seen = await w.service.gathered(body, w.spec, data, ctx, NOW, fetched, w.handle)
    rep = report(done, seen, [])
    for event in rep.events:
        await w.gateway.post_event(
            body, type_=event.type, reason=event.reason, note=event.note, action=event.action
        )
    extra = {"rotation": rep.rotation, "conditions": rep.conditions}
    if rep.has_expiry:
        extra["expiry"] = rep.expiry
    await w.gateway.patch_status("ManagedSecret", NAME, NS, extra)
    return dict(w.gateway.objects[("ManagedSecret", NAME)]["status"])


async def test_a_rotation_writes_once_and_completes(world: Any) -> None:
    status = await _pass(world)
    assert world.kv.writes == 1 and len(world.kv.versions[PATH]) == 2
    new = world.kv.versions[PATH][-1]
    assert new["user"] == "app" and new["password"] != "old-value-1" and len(new["password"]) == 32
    rot = status["rotation"]
    assert rot["phase"] == "Completed" and rot["lastRotateRequest"] == "now"
    assert "token" not in rot
    # the replaced version stays recorded through the grace period: the previous value's source
    assert rot["baseVersions"] == {PATH: "1"} and rot["previousRetainedUntil"]
    assert "Rotated" in world.gateway.events
    assert all("old-value" not in str(v) and new["password"] not in str(v) for v in status.values())
    await _pass(world)
    assert world.kv.writes == 1, "the same request is never served twice"


@pytest.mark.parametrize("point", ["Pending", "BeforeWrite", "AfterWrite", "Written"])
async def test_a_crash_at_any_point_never_writes_twice(
    world: Any, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    monkeypatch.setenv(FAULT_EXIT, point)
    with pytest.raises(Crash):
        await _pass(world)
    assert world.crashes == [137]
    monkeypatch.delenv(FAULT_EXIT)
    status = await _pass(world)
    assert status["rotation"]["phase"] == "Completed"
    assert world.kv.writes == 1, f"one new version after a crash at {point}"


async def test_a_concurrent_writer_makes_the_write_fail_then_retry_on_top(world: Any) -> None:
    world.kv.before_write = lambda: world.kv.write(
        PATH, {"password": "old-value-1", "user": "app", "note": "theirs"}, None
    )
    status = await _pass(world)
    rot = status["rotation"]
    assert rot["phase"] == "Pending" and rot["failedAttempts"] == 1
    assert "check-and-set" in next(c for c in status["conditions"] if c["type"] == "Rotating")["message"]
    assert len(world.kv.versions[PATH]) == 2 and world.kv.versions[PATH][-1]["note"] == "theirs"
    # the retry (its back-off is the caller's business; rotation_due is tested on its own)
    world.gateway.objects[("ManagedSecret", NAME)]["status"]["rotation"]["lastFailureTime"] = (
        "2024-04-01T00:00:00Z"
    )
    status = await _pass(world)
    assert status["rotation"]["phase"] == "Completed"
    latest = world.kv.versions[PATH][-1]
    assert (
        len(world.kv.versions[PATH]) == 3
        and latest["note"] == "theirs"
        and latest["password"] != "old-value-1"
    )


async def test_a_read_only_store_is_refused(world: Any) -> None:
    world.handle.capabilities = Capabilities.READ_ONLY
    status = await _pass(world)
    assert status["rotation"]["phase"] == "Failed" and world.kv.writes == 0
    rotating = next(c for c in status["conditions"] if c["type"] == "Rotating")
    assert rotating["reason"] == "Failed" and "write access" in rotating["message"]


async def _reconcile(w: Any, *, blocked: str | None = None) -> tuple[dict[str, Any], dict[str, bytes]]:
    """One reconcile including the grace keys and the Secret-plan check. Returns (status, data)."""
    body = copy.deepcopy(w.gateway.objects[("ManagedSecret", NAME)])
    fetched = Fetched(refs={RemoteRef(PATH): w.kv.read(RemoteRef(PATH))})

    async def secret_blocked() -> str | None:
        return blocked

    ctx, fetched = await w.service.before_sync(
        body, w.spec, w.handle, fetched, NOW, secret_blocked=secret_blocked
    )
    data = {k: str(v).encode() for k, v in fetched.refs[RemoteRef(PATH)].data.items()}
    data = await w.service.with_grace_keys(body, w.spec, data, ctx, NOW, w.handle, fetched)
    done, seen = await w.service.gathered(body, w.spec, data, ctx, NOW, fetched, w.handle)
    rep = report(done, seen, [])
    for event in rep.events:
        await w.gateway.post_event(
            body, type_=event.type, reason=event.reason, note=event.note, action=event.action
        )
    extra = {"rotation": rep.rotation, "conditions": rep.conditions}
    if rep.has_expiry:
        extra["expiry"] = rep.expiry
    await w.gateway.patch_status("ManagedSecret", NAME, NS, extra)
    status = dict(w.gateway.objects[("ManagedSecret", NAME)]["status"])
    assert {c["reason"] for c in status.get("conditions") or []} <= {r.value for r in Reason}
    ManagedSecretStatus.model_validate(status)  # what is written validates against the models
    return status, data


def _live(w: Any, data: dict[str, bytes] | None) -> None:
    """What the Secret in the cluster holds (None: deleted)."""
    if data is None:
        w.service.index.secrets.pop((NS, NAME), None)
    else:
        w.service.index.secrets[(NS, NAME)] = {
            "metadata": {"name": NAME, "namespace": NS},
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
        }


async def test_the_previous_value_is_the_replaced_one_not_a_hand_edit(world: Any) -> None:
    _live(world, {"password": b"old-value-1", "user": b"app"})
    status, data = await _reconcile(world)
    new = world.kv.versions[PATH][-1]["password"].encode()
    assert status["rotation"]["phase"] == "Completed"
    assert data["password"] == new and data["password_previous"] == b"old-value-1"
    # someone edits the Secret during the grace period: Rotor restores it, and the edit never
    # becomes the previous value
    _live(world, {"password": b"hand-edited", "password_previous": b"hand-edited-too", "user": b"app"})
    _, data = await _reconcile(world)
    assert data["password"] == new and data["password_previous"] == b"old-value-1"
    # the Secret deleted during the grace period: the previous value is read from the source's
    # replaced version again
    _live(world, None)
    _, data = await _reconcile(world)
    assert data["password"] == new and data["password_previous"] == b"old-value-1"
    assert world.kv.writes == 1


async def test_a_rotation_does_not_write_the_source_while_the_secret_cannot_be_written(world: Any) -> None:
    conflict = f"Secret '{NAME}' already exists and is not managed by this ManagedSecret"
    status, _ = await _reconcile(world, blocked=conflict)
    assert world.kv.writes == 0, "the source was written although the Secret could not be"
    rotating = next(c for c in status["conditions"] if c["type"] == "Rotating")
    assert rotating["status"] == "False" and rotating["reason"] == "SecretConflict"
    assert conflict in rotating["message"]
    assert "RotationFailed" in world.gateway.events
    rot = status.get("rotation") or {}
    assert rot.get("lastRotateRequest") != "now" and rot.get("phase") != "Failed", "the request still waits"
    # the conflict cleared: the same request rotates, once
    status, _ = await _reconcile(world)
    assert status["rotation"]["phase"] == "Completed" and status["rotation"]["lastRotateRequest"] == "now"
    assert world.kv.writes == 1
    rotating = next(c for c in status["conditions"] if c["type"] == "Rotating")
    assert rotating["reason"] == "Succeeded"


async def test_a_resumed_rotation_waits_at_its_phase_while_the_secret_cannot_be_written(world: Any) -> None:
    body = world.gateway.objects[("ManagedSecret", NAME)]
    status, _ = await _reconcile(world)  # completes; now a second request, interrupted after Written
    world.kv.versions[PATH].append({"password": "from-an-interrupted-rotation", "user": "app"})
    body["metadata"]["annotations"]["rotor.dev/rotate"] = "again"
    body["status"]["rotation"].update(
        {"phase": "Written", "lastRotateRequest": "again", "baseVersions": {PATH: "2"}, "token": "t"}
    )
    writes = world.kv.writes
    status, _ = await _reconcile(world, blocked="Rotor's label was removed from the Secret")
    assert status["rotation"]["phase"] == "Written", "left resumable, not completed"
    assert world.kv.writes == writes
    status, _ = await _reconcile(world)
    assert status["rotation"]["phase"] == "Completed" and world.kv.writes == writes
