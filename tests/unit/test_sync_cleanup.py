"""Rotor's finalizer only where deleting the ManagedSecret needs Rotor (rotor/sync/cleanup.py):
the decision table, and the writes a sync makes for a new object under each policy pair, and when
a spec change makes the finalizer needed or unneeded."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import pytest
from test_rotation_service import FakeKV
from test_sync_service import NOW, Gateway, Stores

from rotor.api.names import FINALIZER, MANAGED_BY_LABEL
from rotor.services.sync import SyncService
from rotor.sync.cleanup import needs_finalizer
from support.handles import vault_token_handle
from support.memindex import MemoryIndex

NS, NAME, PATH, UID = "team-a", "app", "apps/db", "uid-1"


def _secret(*, owner: str | None = None, label: str | None = NAME) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": NAME, "labels": {MANAGED_BY_LABEL: label} if label else {}}
    if owner:
        meta["ownerReferences"] = [{"uid": owner, "controller": True}]
    return {"metadata": meta}


@pytest.mark.parametrize(
    ("creation", "deletion", "secret", "expected"),
    [
        # the garbage collector deletes an owned Secret: nothing for Rotor to do
        ("Owner", "Delete", None, False),
        ("Owner", "Delete", _secret(owner=UID), False),
        # ours, but without the ownerReference yet (created under Orphan): Rotor deletes it
        ("Owner", "Delete", _secret(), True),
        # not ours at all (a conflict): Rotor would not delete it either
        ("Owner", "Delete", _secret(label="someone-else"), False),
        # Retain under Owner: the ownerReference must go before the collector acts
        ("Owner", "Retain", None, True),
        ("Owner", "Retain", _secret(owner=UID), True),
        # Orphan + Retain: Rotor removes its label (and an ownerReference left from Owner)
        ("Orphan", "Retain", None, True),
        ("Orphan", "Retain", _secret(), True),
        ("Orphan", "Retain", _secret(owner=UID), True),
        # Orphan + Delete: only Rotor deletes it
        ("Orphan", "Delete", None, True),
        ("Orphan", "Delete", _secret(), True),
        # Merge: Rotor removes its annotations (and its keys under Delete)
        ("Merge", "Retain", _secret(label=None), True),
        ("Merge", "Delete", _secret(label=None), True),
    ],
)
def test_needs_finalizer(creation: str, deletion: str, secret: Any, expected: bool) -> None:
    assert needs_finalizer(creation, deletion, secret, name=NAME, uid=UID) is expected


def test_revoke_on_delete_needs_rotor_even_where_the_collector_deletes_the_secret() -> None:
    owned = _secret(owner=UID)
    assert needs_finalizer("Owner", "Delete", owned, name=NAME, uid=UID) is False
    assert needs_finalizer("Owner", "Delete", owned, name=NAME, uid=UID, revoke_on_delete=True) is True


class CountingGateway(Gateway):
    """The in-memory gateway of test_sync_service, counting every write by kind."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: dict[str, int] = {}

    def _count(self, what: str) -> None:
        self.writes[what] = self.writes.get(what, 0) + 1

    async def patch_object(self, kind: str, name: str, namespace: str | None, patch: dict) -> dict:
        self._count("patch-object")
        return await super().patch_object(kind, name, namespace, patch)

    async def patch_status(self, kind: str, name: str, namespace: str | None, patch: dict) -> dict:
        self._count("patch-status")
        return await super().patch_status(kind, name, namespace, patch)

    async def create_secret(self, namespace: str, body: dict) -> dict:
        self._count("create-secret")
        return await super().create_secret(namespace, body)

    async def patch_secret(self, namespace: str, name: str, patch: dict) -> dict:
        self._count("patch-secret")
        return await super().patch_secret(namespace, name, patch)

    async def delete_secret(self, namespace: str, name: str) -> None:
        self._count("delete-secret")
        await super().delete_secret(namespace, name)

    async def post_event(self, body: Any, *, type_: str, reason: str, note: str, action: str) -> None:
        self._count("event")
        await super().post_event(body, type_=type_, reason=reason, note=note, action=action)


def _world(**target: Any) -> Any:
    kv = FakeKV(versions={PATH: [{"password": "value-1"}]})
    gateway = CountingGateway()
    gateway.objects[("ManagedSecret", NAME)] = {
        "metadata": {
            "name": NAME,
            "namespace": NS,
            "uid": UID,
            "generation": 1,
            "resourceVersion": "1",
            "annotations": {},
        },
        "spec": {
            "storeRef": {"name": "vault"},
            "target": target,
            "data": [{"secretKey": "password", "remoteRef": {"key": PATH, "property": "password"}}],
        },
    }
    handle = vault_token_handle(kv, NS)
    index = MemoryIndex()
    clock = SimpleNamespace(now=lambda: NOW)
    sync = SyncService(
        gateway,  # type: ignore[arg-type]
        Stores(handle),  # type: ignore[arg-type]
        clock,  # type: ignore[arg-type]
        index,
        index,
        hash_key=b"k",
    )
    return SimpleNamespace(gateway=gateway, index=index, sync=sync)


async def _sync(w: Any) -> dict[str, Any]:
    """One reconcile of the stored body; returns the stored ManagedSecret."""
    await w.sync.sync(copy.deepcopy(w.gateway.objects[("ManagedSecret", NAME)]))
    return w.gateway.objects[("ManagedSecret", NAME)]


def _change(w: Any, **target: Any) -> None:
    ms = w.gateway.objects[("ManagedSecret", NAME)]
    ms["spec"]["target"].update(target)
    ms["metadata"]["generation"] += 1


def _finalizers(ms: dict[str, Any]) -> list[str]:
    return list(ms["metadata"].get("finalizers") or [])


@pytest.mark.parametrize(
    ("target", "finalizer"),
    [
        ({"creationPolicy": "Owner", "deletionPolicy": "Delete"}, False),
        ({"creationPolicy": "Orphan", "deletionPolicy": "Retain"}, True),
        ({}, True),  # the defaults: Owner + Retain
        ({"creationPolicy": "Orphan", "deletionPolicy": "Delete"}, True),
    ],
)
async def test_writes_for_a_new_object(target: dict[str, str], finalizer: bool) -> None:
    w = _world(**target)
    ms = await _sync(w)
    expected = {"create-secret": 1, "patch-status": 1, "event": 1}
    if finalizer:
        expected["patch-object"] = 1
    assert w.gateway.writes == expected
    assert (FINALIZER in _finalizers(ms)) is finalizer
    # an unchanged refresh writes nothing at all
    w.gateway.writes.clear()
    await _sync(w)
    assert w.gateway.writes == {}


async def test_a_spec_change_removes_a_finalizer_no_longer_needed_and_adds_one_needed() -> None:
    w = _world()  # Owner + Retain: held
    assert FINALIZER in _finalizers(await _sync(w))
    _change(w, deletionPolicy="Delete")  # now the garbage collector does it
    w.gateway.writes.clear()
    ms = await _sync(w)
    assert FINALIZER not in _finalizers(ms)
    assert w.gateway.writes == {"patch-object": 1, "patch-status": 1}
    _change(w, deletionPolicy="Retain")  # needed again, before anything else is written
    w.gateway.writes.clear()
    ms = await _sync(w)
    assert FINALIZER in _finalizers(ms)
    assert w.gateway.writes == {"patch-object": 1, "patch-status": 1}


async def test_orphan_and_retain_keep_the_finalizer_to_remove_the_label() -> None:
    w = _world()  # created under Owner: the Secret carries the ownerReference
    await _sync(w)
    _change(w, creationPolicy="Orphan")
    assert FINALIZER in _finalizers(await _sync(w))
    # without the ownerReference too: on deletion Rotor still removes its label (DESIGN: Retain)
    del w.gateway.secrets[NAME]["metadata"]["ownerReferences"]
    w.index.secrets[(NS, NAME)] = copy.deepcopy(w.gateway.secrets[NAME])
    _change(w, labels={"team": "a"})
    assert FINALIZER in _finalizers(await _sync(w))


async def test_other_finalizers_are_kept() -> None:
    w = _world()
    w.gateway.objects[("ManagedSecret", NAME)]["metadata"]["finalizers"] = ["example.com/other"]
    assert _finalizers(await _sync(w)) == ["example.com/other", FINALIZER]
    _change(w, deletionPolicy="Delete")
    assert _finalizers(await _sync(w)) == ["example.com/other"]
