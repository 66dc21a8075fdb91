"""NotificationService and the receiver over the in-memory index and the fake provider: exactly
the readers of the notified keys are queued, their shared reads forgotten, bursts coalesce to one
refresh per share window (the last one never lost), and the receiver answers each bad request
with its status and refreshes nothing."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from rotor.api.names import NOTIFY_PATH, NOTIFY_SIGNATURE_HEADER
from rotor.clock import Clock
from rotor.controller.index import Index
from rotor.notify.message import MAX_BODY_BYTES
from rotor.notify.signature import sign
from rotor.providers.base import RemoteRef
from rotor.providers.fake import FakeProvider
from rotor.services.backend import Backend
from rotor.services.notifications import NotificationService, NotifyKey
from rotor.services.notify_receiver import NotifyReceiver
from rotor.services.stores import StoreHandle, StoreService

STORE = ("SecretStore", "team", "vault")
HMAC = b"0123456789abcdef0123456789abcdef"


class Scheduler:
    def __init__(self) -> None:
        self.queued: list[tuple[tuple[str, str], bool]] = []
        self.leading = True

    def requeue(self, key: tuple[str, str], *, urgent: bool) -> None:
        self.queued.append((key, urgent))


class Gateway:
    def __init__(self, key: bytes | None = HMAC) -> None:
        self.key = key
        self.reads = 0

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads += 1
        if self.key is None:
            return None
        return {"data": {"hmac-key": base64.b64encode(self.key).decode()}}


def _ms(name: str, *keys: str) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "team", "name": name, "resourceVersion": "1"},
        "spec": {
            "storeRef": {"name": "vault"},
            "data": [{"secretKey": f"k{i}", "remoteRef": {"key": k}} for i, k in enumerate(keys)],
        },
    }


class World:
    def __init__(self, window: float = 5.0) -> None:
        self.now = 100.0
        self.index = Index()
        self.scheduler = Scheduler()
        self.stores = StoreService(Gateway(), Clock())  # type: ignore[arg-type]
        self.provider = FakeProvider()
        self.backend = Backend(self.provider, store="SecretStore/team/vault", share_window=window)
        self.stores.bodies[STORE] = {"metadata": {"namespace": "team", "name": "vault"}}
        self.stores.handles[STORE] = StoreHandle(STORE, 1, "f", spec=None, backend=self.backend)  # type: ignore[arg-type]
        self.reads: dict[tuple[str, str], tuple[Any, tuple[RemoteRef, ...]]] = {}
        self.service = NotificationService(
            self.index,
            self.scheduler,
            self.stores,
            self.reads,
            rate=1000,
            burst=1000,
            monotonic=lambda: self.now,
        )

    def add(self, name: str, *keys: str, synced: bool = True) -> None:
        self.index.put_managed(("team", name), _ms(name, *keys))
        if synced:
            self.reads[("team", name)] = (STORE, tuple(RemoteRef(k) for k in keys))

    def queued(self) -> list[str]:
        names = [key[1] for key, _ in self.scheduler.queued]
        self.scheduler.queued.clear()
        return sorted(names)


async def test_exactly_the_readers_of_the_notified_key_are_queued_urgently() -> None:
    w = World()
    w.add("a", "app/db")
    w.add("b", "app/db", "app/cache")
    w.add("c", "app/cache")
    w.add("d", "app/db", synced=False)  # not synced by this replica yet: judged by its spec
    w.index.put_managed(
        ("other", "e"), {**_ms("e", "app/db"), "metadata": {"namespace": "other", "name": "e"}}
    )
    outcome = w.service.refresh(STORE, ["app/db"])
    assert outcome.queued == 3 and outcome.result == "queued"
    assert all(urgent for _, urgent in w.scheduler.queued)
    assert w.queued() == ["a", "b", "d"]
    assert w.service.refresh(STORE, ["nobody/reads/this"]).result == "no_readers"
    assert w.queued() == []


async def test_the_shared_read_is_forgotten_so_the_sync_reads_the_source() -> None:
    w = World()
    w.add("a", "app/db")
    w.provider.put("app/db", {"v": "one"})
    assert (await w.backend.read(RemoteRef("app/db"))).version is not None
    w.provider.put("app/db", {"v": "two"})
    assert w.provider.calls["read"] == 1
    await w.backend.read(RemoteRef("app/db"))
    assert w.provider.calls["read"] == 1  # shared within the window: the old value
    w.service.refresh(STORE, ["app/db"])
    fresh = await w.backend.read(RemoteRef("app/db"))
    assert w.provider.calls["read"] == 2
    assert fresh.version == w.provider.describe("app/db").current_version


async def test_a_burst_coalesces_to_one_refresh_per_window_and_the_last_is_not_lost() -> None:
    w = World(window=0.2)
    w.add("a", "app/db")
    first = w.service.refresh(STORE, ["app/db"])
    assert first.queued == 1 and w.queued() == ["a"]
    for _ in range(999):
        w.now += 0.0001
        outcome = w.service.refresh(STORE, ["app/db"])
        assert outcome.result == "coalesced"
    assert w.queued() == []  # nothing more until the window ends
    await asyncio.sleep(0.35)  # the trailing refresh (the loop's own timer)
    assert w.queued() == ["a"]
    await asyncio.sleep(0.3)
    assert w.queued() == []  # one trailing refresh, not one per notification
    w.now += 10
    assert w.service.refresh(STORE, ["app/db"]).queued == 1


def _body(store: dict[str, Any] | None = None, keys: list[str] | None = None) -> bytes:
    return json.dumps(
        {"store": store or {"namespace": "team", "name": "vault"}, "keys": keys or ["app/db"]}
    ).encode()


async def _client(w: World, gateway: Gateway | None = None) -> TestClient:
    key = NotifyKey(gateway or Gateway(), "rotor", "notify", monotonic=lambda: w.now)  # type: ignore[arg-type]
    receiver = NotifyReceiver("127.0.0.1:0", w.service, key)
    client = TestClient(TestServer(receiver.app()))
    await client.start_server()
    return client


async def test_the_receiver_refreshes_on_a_signed_notification() -> None:
    w = World()
    w.add("a", "app/db")
    client = await _client(w)
    try:
        body = _body()
        resp = await client.post(NOTIFY_PATH, data=body, headers={NOTIFY_SIGNATURE_HEADER: sign(HMAC, body)})
        assert resp.status == 202, await resp.text()
        assert (await resp.json())["queued"] == 1
        assert w.queued() == ["a"]
    finally:
        await client.close()


async def test_the_receiver_answers_each_bad_request_and_refreshes_nothing(caplog: Any) -> None:
    caplog.set_level(logging.INFO)
    w = World()
    w.add("a", "app/db")
    client = await _client(w)
    try:
        body = _body()
        cases = [
            (body, None, 401),
            (body, sign(b"wrong key", body), 401),
            (body + b" ", sign(HMAC, body), 401),
            (b"x" * (MAX_BODY_BYTES + 1), None, 413),
            (b"{}", sign(HMAC, b"{}"), 400),
            (_body({"namespace": "team", "name": "nope"}), None, 404),
        ]
        for data, header, status in cases:
            if status == 404:
                header = sign(HMAC, data)
            resp = await client.post(
                NOTIFY_PATH, data=data, headers={NOTIFY_SIGNATURE_HEADER: header} if header else {}
            )
            assert resp.status == status, (status, await resp.text())
        assert w.queued() == []
        assert any(
            getattr(r, "result", None) == "unauthorized" and getattr(r, "audit", False)
            for r in caplog.records
        )
        assert HMAC.decode() not in caplog.text
    finally:
        await client.close()


async def test_a_large_or_chunked_body_is_read_whole() -> None:
    w = World()
    w.add("a", "app/db")
    client = await _client(w)
    try:
        body = _body(keys=["app/db", *(f"padding/{i:03d}/{'p' * 300}" for i in range(99))])
        assert 30_000 < len(body) < MAX_BODY_BYTES

        async def chunks(data: bytes, size: int):  # type: ignore[no-untyped-def]
            for i in range(0, len(data), size):
                yield data[i : i + size]

        headers = {NOTIFY_SIGNATURE_HEADER: sign(HMAC, body)}
        resp = await client.post(NOTIFY_PATH, data=chunks(body, 1000), headers=headers)
        assert resp.status == 202, await resp.text()
        assert w.queued() == ["a"]
        big = b'{"keys": ["' + b"x" * MAX_BODY_BYTES + b'"]}'
        resp = await client.post(NOTIFY_PATH, data=chunks(big, 4096), headers=headers)
        assert resp.status == 413
    finally:
        await client.close()


async def test_the_receiver_rate_limits_per_store_and_waits_for_the_leader() -> None:
    w = World()
    w.service.rate, w.service.burst = 0.001, 2
    w.add("a", "app/db")
    client = await _client(w)
    try:
        body = _body()
        headers = {NOTIFY_SIGNATURE_HEADER: sign(HMAC, body)}
        statuses = [(await client.post(NOTIFY_PATH, data=body, headers=headers)).status for _ in range(3)]
        assert statuses == [202, 202, 429]
        w.scheduler.leading = False
        resp = await client.post(NOTIFY_PATH, data=body, headers=headers)
        assert resp.status == 503 and resp.headers["Retry-After"]
    finally:
        await client.close()


async def test_without_the_notify_secret_notifications_are_refused() -> None:
    w = World()
    w.add("a", "app/db")
    client = await _client(w, Gateway(key=None))
    try:
        body = _body()
        resp = await client.post(NOTIFY_PATH, data=body, headers={NOTIFY_SIGNATURE_HEADER: sign(HMAC, body)})
        assert resp.status == 503
        assert "hmac-key" in (await resp.json())["message"]
        assert w.queued() == []
    finally:
        await client.close()


async def test_a_rotated_key_is_read_again_when_a_signature_does_not_verify() -> None:
    w = World()
    w.add("a", "app/db")
    gateway = Gateway()
    client = await _client(w, gateway)
    try:
        body = _body()
        assert (
            await client.post(NOTIFY_PATH, data=body, headers={NOTIFY_SIGNATURE_HEADER: sign(HMAC, body)})
        ).status == 202
        assert gateway.reads == 1
        new = b"the new key, after rotation....."
        gateway.key = new
        headers = {NOTIFY_SIGNATURE_HEADER: sign(new, body)}
        # the cached key is used for 30 s, but a signature that does not verify re-reads it, at
        # most once per 5 s (so unsigned floods cannot hammer the apiserver)
        assert (await client.post(NOTIFY_PATH, data=body, headers=headers)).status == 401
        assert gateway.reads == 1
        w.now += 6
        assert (await client.post(NOTIFY_PATH, data=body, headers=headers)).status == 202
        assert gateway.reads == 2
        # and the old key no longer works
        w.now += 6
        old = {NOTIFY_SIGNATURE_HEADER: sign(HMAC, body)}
        assert (await client.post(NOTIFY_PATH, data=body, headers=old)).status == 401
    finally:
        await client.close()
