"""The previous value survives the loss of the Secret during the grace period (issue 13, item 3):
deleted, or re-created with another type, the Secret comes back with ``<key>_previous`` read from
exactly the source version the rotation recorded as replaced (``VersionReader``), and only until
``previousRetainedUntil``. Against the fake provider (staged like AWS Secrets Manager) and the
in-memory KV v2 (written in place like Vault KV and SSM)."""

from __future__ import annotations

import copy
import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest
from test_sync_service import NAME, NS, PATH, Gateway, Stores, _cond, _data, _request, _sync

from rotor.api.secretstore import SecretStoreSpec
from rotor.providers.base import Capabilities, KeyNotFound
from rotor.providers.fake import FakeProvider
from rotor.services.backend import Backend
from rotor.services.rotation import RotationService
from rotor.services.stores import StoreHandle
from rotor.services.sync import SyncService
from support.memindex import MemoryIndex

pytestmark = pytest.mark.asyncio(loop_scope="function")

#: a few minutes after the fake provider's first version (its clock starts at 2024-01-01)
START = dt.datetime(2024, 1, 1, 0, 5, tzinfo=dt.UTC)
OLD = "old-value-1"


class Clock:
    def __init__(self) -> None:
        self.at = START

    def now(self) -> dt.datetime:
        return self.at


def _objects(gateway: Gateway) -> None:
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
            "creationTimestamp": "2024-01-01T00:00:00Z",
            "annotations": {},
        },
        "spec": {
            "storeRef": {"name": "store"},
            "dataFrom": [{"extract": {"key": PATH}}],
            "rotation": {"policyRef": {"name": "policy"}, "keys": ["password"]},
        },
    }


def _world(provider: Any, gateway: Gateway | None = None, clock: Clock | None = None) -> Any:
    """A fresh operator (services, index, backend) over the same provider and cluster objects:
    called again, it is a restart that remembers nothing but what status and the source hold."""
    if gateway is None:
        gateway = Gateway()
        _objects(gateway)
    clock = clock or Clock()
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
        ("SecretStore", NS, "store"),
        1,
        "",
        store,
        backend=Backend(provider, store="store"),
        ready=True,
        capabilities=Capabilities.READ_WRITE,
    )
    index = MemoryIndex()
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
    return SimpleNamespace(kv=provider, gateway=gateway, index=index, sync=sync, clock=clock)


def _staged() -> FakeProvider:
    fake = FakeProvider()
    fake.put(PATH, {"password": OLD, "user": "app"})
    return fake


def _in_place() -> Any:
    from test_rotation_service import FakeKV  # the in-memory KV v2 (no staging)

    return FakeKV(versions={PATH: [{"password": OLD, "user": "app"}]})


def _new_password(w: Any) -> bytes:
    if isinstance(w.kv, FakeProvider):
        return str(w.kv.value(PATH)["password"]).encode()  # type: ignore[index]
    return str(w.kv.versions[PATH][-1]["password"]).encode()


async def _rotated(w: Any) -> bytes:
    await _sync(w)
    _request(w, "r1")
    status = await _sync(w)
    assert status["rotation"]["phase"] == "Completed", status["rotation"]
    new = _new_password(w)
    assert _data(w) == {"password": new, "password_previous": OLD.encode(), "user": b"app"}
    return new


def _lose(w: Any, how: str) -> None:
    """What someone does to the Secret during the grace period."""
    if how == "deleted":
        del w.gateway.secrets[NAME]
    else:  # re-created by hand with another type (a Secret's type is immutable)
        old = w.gateway.secrets.pop(NAME)
        w.gateway.secrets[NAME] = {
            "metadata": copy.deepcopy(old["metadata"]),
            "type": "kubernetes.io/basic-auth",
            "data": {"username": "YXBw"},
        }
    w.index.secrets.clear()  # the watch would deliver the change; the sync reads the Secret


async def test_every_versioned_provider_reads_versions_back() -> None:
    from rotor.providers.aws.provider import ParameterStoreProvider, SecretsManagerProvider
    from rotor.providers.base import VersionReader
    from rotor.providers.vault.provider import VaultProvider

    for cls in (VaultProvider, SecretsManagerProvider, ParameterStoreProvider, FakeProvider):
        assert issubclass(cls, VersionReader), cls


@pytest.mark.parametrize("restart", [False, True], ids=["same-operator", "after-restart"])
@pytest.mark.parametrize("how", ["deleted", "retyped"])
@pytest.mark.parametrize("source", ["staged", "in-place"])
async def test_the_secret_lost_during_grace_comes_back_with_the_replaced_value(
    source: str, how: str, restart: bool
) -> None:
    w = _world(_staged() if source == "staged" else _in_place())
    new = await _rotated(w)
    base = w.gateway.objects[("ManagedSecret", NAME)]["status"]["rotation"]["baseVersions"][PATH]
    _lose(w, how)
    if restart:
        w = _world(w.kv, w.gateway, w.clock)
    w.clock.at = START + dt.timedelta(minutes=30)  # still within the 1h grace period
    status = await _sync(w)
    assert _cond(status, "Ready")["reason"] == "Synced"
    assert w.gateway.secrets[NAME].get("type", "Opaque") == "Opaque"
    assert _data(w) == {"password": new, "password_previous": OLD.encode(), "user": b"app"}
    if isinstance(w.kv, FakeProvider):
        assert w.kv.calls["read_version"] >= 1 and w.kv.value(PATH, base) == {"password": OLD, "user": "app"}


@pytest.mark.parametrize("source", ["staged", "in-place"])
async def test_after_the_grace_period_the_secret_comes_back_without_the_previous_value(source: str) -> None:
    w = _world(_staged() if source == "staged" else _in_place())
    new = await _rotated(w)
    w.clock.at = START + dt.timedelta(hours=2)
    await _sync(w)  # the grace period ends: the previous value goes
    assert _data(w) == {"password": new, "user": b"app"}
    _lose(w, "deleted")
    await _sync(w)
    assert _data(w) == {"password": new, "user": b"app"}


async def test_a_replaced_version_the_source_no_longer_holds_is_not_guessed() -> None:
    """If the recorded version is gone at the source, the Secret is re-created without
    ``_previous`` (never with another version's value, never with the current one) and the
    sync still succeeds."""
    w = _world(_staged())
    new = await _rotated(w)
    _lose(w, "deleted")
    w.kv.fail(KeyNotFound("fake: version aged out"), key=PATH, operations={"read_version"})
    status = await _sync(w)
    assert _cond(status, "Ready")["reason"] == "Synced"
    assert _data(w) == {"password": new, "user": b"app"}


async def test_only_the_recorded_version_is_read_back() -> None:
    """A newer version written at the source after the rotation (by someone else) is synced as
    current; ``_previous`` stays the value the rotation replaced, not the version before the
    newest one."""
    w = _world(_staged())
    await _rotated(w)
    w.kv.put(PATH, {"password": "written-later-by-someone", "user": "app"})
    _lose(w, "deleted")
    w = _world(w.kv, w.gateway, w.clock)
    await _sync(w)
    assert _data(w)["password"] == b"written-later-by-someone"
    assert _data(w)["password_previous"] == OLD.encode()


async def test_aws_reads_the_recorded_version_by_its_id_whatever_it_looks_like() -> None:
    """A version created by another tool with its own ClientRequestToken has that token as its
    VersionId, not necessarily a UUID: it is still read by VersionId (a ref's version that is not
    a UUID would be taken for a stage name)."""
    from botocore.stub import Stubber
    from test_aws_errors import _stubbed_secretsmanager

    provider = _stubbed_secretsmanager()
    token = "terraform-20240101-app-db-password-0001"
    stub = Stubber(provider.client.botocore_client)
    answer = {"Name": PATH, "VersionId": token, "VersionStages": ["AWSPREVIOUS"], "SecretString": "{}"}
    stub.add_response("get_secret_value", answer, {"SecretId": PATH, "VersionId": token})
    stub.add_response(
        "get_secret_value",
        {**answer, "VersionId": "another-version-id-000000000000000000"},
        {"SecretId": PATH, "VersionId": token},
    )
    with stub:
        assert provider.read_version(PATH, token).version == token
        with pytest.raises(KeyNotFound):  # never another version in its place
            provider.read_version(PATH, token)
    stub.assert_no_pending_responses()


@pytest.mark.parametrize("source", ["staged", "in-place"])
async def test_a_stale_body_does_not_pair_the_new_value_with_an_older_previous(source: str) -> None:
    """Two operators (or one whose event predates its own latest status write): one completes
    rotation 2 while the other syncs a body whose status still records rotation 1. The source's
    current value is rotation 2's, so rotation 1's ``baseVersions`` do not name the value it
    replaced: ``_previous`` stays rotation 2's replaced value (seen by bench/soak.py --writers as
    "'a-password_previous' is not the value rotation 5 replaced (source position 3 instead of 4)")."""
    a = _world(_staged() if source == "staged" else _in_place())
    first = await _rotated(a)
    stale = copy.deepcopy(a.gateway.objects[("ManagedSecret", NAME)])
    _request(a, "r2")
    status = await _sync(a)
    assert status["rotation"]["phase"] == "Completed", status["rotation"]
    second = _new_password(a)
    assert _data(a) == {"password": second, "password_previous": first, "user": b"app"}
    b = _world(a.kv, a.gateway, a.clock)  # the second operator, its event from before rotation 2
    a.clock.at = START + dt.timedelta(minutes=1)
    await b.sync.sync(stale)
    assert _data(a) == {"password": second, "password_previous": first, "user": b"app"}


@pytest.mark.parametrize("source", ["staged", "in-place"])
async def test_a_read_shared_from_before_another_operators_rotation_is_not_synced_back(source: str) -> None:
    """The second operator read the source a moment before the first one rotated it; its next
    sync (the status event of that rotation, within the 5 s a read is shared) must not put the
    replaced value back into the Secret without ``_previous``."""
    a = _world(_staged() if source == "staged" else _in_place())
    first = await _rotated(a)
    b = _world(a.kv, a.gateway, a.clock)
    await b.sync.sync(copy.deepcopy(a.gateway.objects[("ManagedSecret", NAME)]))  # b reads, shared
    _request(a, "r2")
    await _sync(a)
    second = _new_password(a)
    await b.sync.sync(copy.deepcopy(a.gateway.objects[("ManagedSecret", NAME)]))
    assert _data(a) == {"password": second, "password_previous": first, "user": b"app"}
