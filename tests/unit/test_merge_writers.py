"""Two creationPolicy Merge ManagedSecrets writing into one Secret (issue 13, item 6): each keeps
its own keys (per-writer annotations), a key claimed by two writers is a SecretConflict for the
later one, and the single ``rotor.dev/managed-keys`` annotation of earlier versions is migrated.
The pure plan, applied to an in-memory Secret as the apiserver would (merge patch with a
resourceVersion precondition), and the SyncService end to end over the fake provider."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from rotor.api.names import (
    DATA_HASH_ANNOTATION,
    MANAGED_KEYS_ANNOTATION,
    MANAGED_KEYS_PREFIX,
    WRITER_DATA_HASH_PREFIX,
    writer_annotation,
)
from rotor.sync.plan import Desired, merge_release, plan

SECRET = "shared"


def want(writer: str, data: dict[str, bytes], hash_: str | None = None) -> Desired:
    return Desired(
        namespace="ns",
        name=SECRET,
        type="Opaque",
        data=data,
        data_hash=hash_
        or "h-" + writer + "-" + ",".join(f"{k}={v.decode()}" for k, v in sorted(data.items())),
        labels={},
        annotations={},
        creation_policy="Merge",
        owner=None,
        managed_by=writer,
    )


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def existing(
    data: dict[str, bytes] | None = None, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    """A Secret someone else created (no Rotor label, no owner)."""
    return {
        "metadata": {
            "name": SECRET,
            "namespace": "ns",
            "resourceVersion": "1",
            "annotations": annotations or {},
        },
        "type": "Opaque",
        "data": {k: b64(v) for k, v in (data or {"config": b"theirs"}).items()},
    }


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict) and isinstance(target.get(k), dict):
            _merge(target[k], v)
        else:
            target[k] = copy.deepcopy(v)


def apply(actual: dict[str, Any], desired: Desired) -> str:
    """One sync's write, as the apiserver takes a merge patch; returns the plan's action."""
    decision = plan(desired, actual)
    if decision.action == "patch":
        precondition = decision.body["metadata"].get("resourceVersion")
        assert precondition in (None, actual["metadata"]["resourceVersion"]), "a stale write would be refused"
        _merge(actual, {k: v for k, v in decision.body.items()})
        actual["metadata"]["resourceVersion"] = str(int(actual["metadata"]["resourceVersion"]) + 1)
    return decision.action


def data_of(actual: dict[str, Any]) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in (actual.get("data") or {}).items()}


def test_two_writers_keep_each_others_keys_and_settle() -> None:
    secret = existing()
    a = want("a", {"username": b"app"})
    b = want("b", {"password": b"p1"})
    actions = [apply(secret, w) for w in (a, b, a, b, a, b)]
    assert data_of(secret) == {"config": b"theirs", "username": b"app", "password": b"p1"}
    assert actions == ["patch", "patch", "noop", "noop", "noop", "noop"], actions
    annotations = secret["metadata"]["annotations"]
    assert annotations[f"{MANAGED_KEYS_PREFIX}a"] == "username"
    assert annotations[f"{MANAGED_KEYS_PREFIX}b"] == "password"
    assert DATA_HASH_ANNOTATION not in annotations and MANAGED_KEYS_ANNOTATION not in annotations


def test_a_writer_removes_only_its_own_stale_keys() -> None:
    secret = existing()
    apply(secret, want("a", {"username": b"app", "old": b"x"}))
    apply(secret, want("b", {"password": b"p1"}))
    assert apply(secret, want("a", {"username": b"app"})) == "patch"
    assert data_of(secret) == {"config": b"theirs", "username": b"app", "password": b"p1"}


def test_a_key_claimed_by_two_writers_is_a_conflict_for_the_later_one() -> None:
    secret = existing()
    apply(secret, want("a", {"password": b"from-a", "user": b"u"}))
    decision = plan(want("b", {"password": b"from-b-secret-value"}), secret)
    assert decision.action == "conflict"
    assert "key 'password'" in decision.message and "ManagedSecret 'a'" in decision.message
    assert "from-b-secret-value" not in decision.message and "from-a" not in decision.message
    # the earlier writer keeps writing; the Secret holds its value
    assert apply(secret, want("a", {"password": b"from-a", "user": b"u"})) == "noop"
    assert data_of(secret)["password"] == b"from-a"
    # the later one gives the key up: it writes the rest
    assert apply(secret, want("b", {"token": b"t"})) == "patch"
    assert data_of(secret)["password"] == b"from-a" and data_of(secret)["token"] == b"t"


def test_both_recorded_as_owners_the_later_name_yields() -> None:
    """Only a hand edit records one key for two writers; the tie is broken by name, so exactly
    one of them reports the conflict."""
    secret = existing(
        annotations={f"{MANAGED_KEYS_PREFIX}a": "password", f"{MANAGED_KEYS_PREFIX}b": "password"}
    )
    assert plan(want("a", {"password": b"1"}), secret).action == "patch"
    assert plan(want("b", {"password": b"2"}), secret).action == "conflict"


def test_the_old_single_annotation_is_migrated_without_deleting_anyones_keys() -> None:
    # today's Secret: the last of two writers left its keys (and one hash) in the one annotation
    secret = existing(
        data={"config": b"theirs", "username": b"app", "password": b"p1"},
        annotations={MANAGED_KEYS_ANNOTATION: "password", DATA_HASH_ANNOTATION: "old-hash"},
    )
    assert apply(secret, want("a", {"username": b"app"})) == "patch"
    annotations = secret["metadata"]["annotations"]
    assert data_of(secret)["password"] == b"p1", "b's key is not a's to remove"
    assert annotations[MANAGED_KEYS_ANNOTATION] == "password" and DATA_HASH_ANNOTATION not in annotations
    assert apply(secret, want("b", {"password": b"p1"})) == "patch"
    assert MANAGED_KEYS_ANNOTATION not in secret["metadata"]["annotations"]
    assert apply(secret, want("a", {"username": b"app"})) == "noop"
    assert apply(secret, want("b", {"password": b"p1"})) == "noop"


def test_a_writer_patch_is_conditional_on_the_secret_it_read() -> None:
    decision = plan(want("a", {"username": b"app"}), existing())
    assert decision.body["metadata"]["resourceVersion"] == "1"


def test_release_removes_only_the_writers_own_keys_and_annotations() -> None:
    secret = existing()
    apply(secret, want("a", {"username": b"app"}))
    apply(secret, want("b", {"password": b"p1"}))
    _merge(secret, merge_release(secret, "a", delete_keys=True))
    assert data_of(secret) == {"config": b"theirs", "password": b"p1"}
    assert set(secret["metadata"]["annotations"]) == {
        f"{MANAGED_KEYS_PREFIX}b",
        f"{WRITER_DATA_HASH_PREFIX}b",
    }
    kept = existing()
    apply(kept, want("a", {"username": b"app"}))
    _merge(kept, merge_release(kept, "a", delete_keys=False))
    assert data_of(kept)["username"] == b"app" and not kept["metadata"]["annotations"]


@pytest.mark.parametrize("name", ["a", "x" * 50, "x" * 51, "db.credentials-" + "y" * 200])
def test_writer_annotations_are_valid_names_and_unique(name: str) -> None:
    import re

    for prefix in (MANAGED_KEYS_PREFIX, WRITER_DATA_HASH_PREFIX):
        annotation = writer_annotation(prefix, name)
        part = annotation.split("/", 1)[1]
        assert len(part) <= 63 and re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?", part), annotation
        assert writer_annotation(prefix, name + "z") != annotation


# --------------------------------------------------------------------------- the service

ASYNC = pytest.mark.asyncio(loop_scope="function")


def _ms(name: str, key: str, secret_key: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "team-a",
            "uid": f"uid-{name}",
            "generation": 1,
            "resourceVersion": "1",
            "creationTimestamp": "2024-01-01T00:00:00Z",
            "annotations": {},
        },
        "spec": {
            "storeRef": {"name": "store"},
            "target": {"name": SECRET, "creationPolicy": "Merge"},
            "data": [{"secretKey": secret_key, "remoteRef": {"key": key, "property": "value"}}],
        },
    }


class PreconditionGateway:
    """The in-memory gateway, refusing a patch whose resourceVersion is not the Secret's (409),
    as the apiserver does."""

    def __new__(cls) -> Any:
        from test_sync_service import Gateway

        from rotor.kube.gateway import KubeError

        class _Gateway(Gateway):
            async def patch_secret(self, namespace: str, name: str, patch: dict) -> dict:
                wanted = (patch.get("metadata") or {}).get("resourceVersion")
                if wanted is not None and wanted != self.secrets[name]["metadata"].get("resourceVersion"):
                    raise KubeError(409, "the object has been modified")
                return await super().patch_secret(namespace, name, patch)

        return _Gateway()


def _service(gateway: Any, provider: Any) -> Any:
    from types import SimpleNamespace

    from test_grace_previous import START
    from test_sync_service import Stores

    from rotor.api.secretstore import SecretStoreSpec
    from rotor.providers.base import Capabilities
    from rotor.services.backend import Backend
    from rotor.services.stores import StoreHandle
    from rotor.services.sync import SyncService
    from support.memindex import MemoryIndex

    store = SecretStoreSpec.model_validate(
        {
            "provider": {
                "vault": {"server": "http://v", "auth": {"token": {"secretRef": {"name": "t", "key": "t"}}}}
            }
        }
    )
    handle = StoreHandle(
        ("SecretStore", "team-a", "store"),
        1,
        "",
        store,
        backend=Backend(provider, store="store"),
        ready=True,
        capabilities=Capabilities.READ_WRITE,
    )
    index = MemoryIndex()
    clock = SimpleNamespace(now=lambda: START)
    return SyncService(gateway, Stores(handle), clock, index, index, hash_key=b"k")  # type: ignore[arg-type]


async def _sync_ms(gateway: Any, sync: Any, name: str) -> dict[str, Any]:
    await sync.sync(copy.deepcopy(gateway.objects[("ManagedSecret", name)]))
    return gateway.objects[("ManagedSecret", name)].get("status") or {}


def _ready(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == "Ready")


@ASYNC
async def test_two_merge_managed_secrets_hold_both_keys_and_stop_rewriting() -> None:
    from rotor.providers.fake import FakeProvider

    fake = FakeProvider()
    fake.put("apps/a", {"value": "alpha-value"})
    fake.put("apps/b", {"value": "beta-value"})
    gateway = PreconditionGateway()
    gateway.secrets[SECRET] = {**existing(), "kind": "Secret", "apiVersion": "v1"}
    gateway.objects[("ManagedSecret", "a")] = _ms("a", "apps/a", "username")
    gateway.objects[("ManagedSecret", "b")] = _ms("b", "apps/b", "password")
    sync = _service(gateway, fake)
    versions = []
    for name in ("a", "b", "a", "b", "a", "b"):
        status = await _sync_ms(gateway, sync, name)
        assert _ready(status)["reason"] == "Synced", status
        versions.append(gateway.secrets[SECRET]["metadata"]["resourceVersion"])
    assert data_of(gateway.secrets[SECRET]) == {
        "config": b"theirs",
        "username": b"alpha-value",
        "password": b"beta-value",
    }
    assert len(set(versions[2:])) == 1, "the Secret is rewritten although nothing changed"


@ASYNC
async def test_the_later_writer_of_a_key_reports_secret_conflict_and_writes_nothing() -> None:
    from test_grace_previous import START

    from rotor.conditions import is_stalled
    from rotor.providers.fake import FakeProvider

    fake = FakeProvider()
    fake.put("apps/a", {"value": "alpha-value"})
    fake.put("apps/b", {"value": "beta-value"})
    gateway = PreconditionGateway()
    gateway.secrets[SECRET] = {**existing(), "kind": "Secret", "apiVersion": "v1"}
    gateway.objects[("ManagedSecret", "a")] = _ms("a", "apps/a", "password")
    gateway.objects[("ManagedSecret", "b")] = _ms("b", "apps/b", "password")
    sync = _service(gateway, fake)
    assert _ready(await _sync_ms(gateway, sync, "a"))["reason"] == "Synced"
    before = copy.deepcopy(gateway.secrets[SECRET])
    ready = _ready(await _sync_ms(gateway, sync, "b"))
    assert ready["status"] == "False" and ready["reason"] == "SecretConflict"
    assert "ManagedSecret 'a'" in ready["message"] and "key 'password'" in ready["message"]
    assert "beta-value" not in ready["message"] and "alpha-value" not in ready["message"]
    assert is_stalled(ready["reason"], failing_since=None, now=START)
    assert gateway.secrets[SECRET] == before
    assert _ready(await _sync_ms(gateway, sync, "a"))["reason"] == "Synced"
    assert data_of(gateway.secrets[SECRET])["password"] == b"alpha-value"


@ASYNC
async def test_a_writer_that_lost_the_race_reads_again_and_keeps_the_others_keys() -> None:
    """The Secret changed after it was indexed (another writer's patch not yet seen): the
    conditional patch is refused, the Secret is read again and judged on what it holds now."""
    from rotor.providers.fake import FakeProvider

    fake = FakeProvider()
    fake.put("apps/a", {"value": "alpha-value"})
    fake.put("apps/b", {"value": "beta-value"})
    gateway = PreconditionGateway()
    gateway.secrets[SECRET] = {**existing(), "kind": "Secret", "apiVersion": "v1"}
    gateway.objects[("ManagedSecret", "a")] = _ms("a", "apps/a", "password")
    gateway.objects[("ManagedSecret", "b")] = _ms("b", "apps/b", "password")
    sync = _service(gateway, fake)
    stale = copy.deepcopy(gateway.secrets[SECRET])
    assert _ready(await _sync_ms(gateway, sync, "a"))["reason"] == "Synced"
    sync.index.secrets[("team-a", SECRET)] = stale  # b's view lags behind a's write
    ready = _ready(await _sync_ms(gateway, sync, "b"))
    assert ready["reason"] == "SecretConflict" and "ManagedSecret 'a'" in ready["message"]
    assert data_of(gateway.secrets[SECRET])["password"] == b"alpha-value"


@ASYNC
async def test_a_rotation_of_the_later_writer_never_writes_the_source() -> None:
    """The rotation asks the same plan before acting on the source, over the keys the sync will
    write: a key another Merge writer owns keeps the source untouched (Rotating=False)."""
    from types import SimpleNamespace

    from test_grace_previous import START
    from test_rotation_service import FakeKV

    from rotor.services.rotation import RotationService

    kv = FakeKV(versions={"apps/a": [{"value": "alpha-value"}], "apps/b": [{"password": "beta-value"}]})
    gateway = PreconditionGateway()
    gateway.secrets[SECRET] = {**existing(), "kind": "Secret", "apiVersion": "v1"}
    gateway.objects[("ManagedSecret", "a")] = _ms("a", "apps/a", "password")
    later = _ms("b", "apps/b", "password")
    later["spec"].pop("data")
    later["spec"]["dataFrom"] = [{"extract": {"key": "apps/b"}}]
    later["spec"]["rotation"] = {"policyRef": {"name": "policy"}, "keys": ["password"]}
    later["metadata"]["annotations"]["rotor.dev/rotate"] = "r1"
    gateway.objects[("ManagedSecret", "b")] = later
    gateway.objects[("RotationPolicy", "policy")] = {
        "kind": "RotationPolicy",
        "metadata": {"name": "policy", "namespace": "team-a", "generation": 1},
        "spec": {"preset": "database-password", "gracePeriod": "1h"},
    }
    sync = _service(gateway, kv)
    sync.rotation = RotationService(gateway, SimpleNamespace(now=lambda: START), sync.index, hash_key=b"k")  # type: ignore[arg-type]
    assert _ready(await _sync_ms(gateway, sync, "a"))["reason"] == "Synced"
    status = await _sync_ms(gateway, sync, "b")
    assert kv.writes == 0, "the source was written although the Secret could not follow"
    assert _ready(status)["reason"] == "SecretConflict"
    rotating = next(c for c in status["conditions"] if c["type"] == "Rotating")
    assert rotating["status"] == "False" and rotating["reason"] == "SecretConflict"
