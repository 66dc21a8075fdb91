"""Backend over the fake provider: shared reads, batching by capability, capability errors and
the per-path write check."""

from __future__ import annotations

import asyncio

import pytest

from rotor.providers.base import RemoteRef, Unsupported, WriteDenied
from rotor.providers.fake import BatchingFakeProvider, FakeProvider
from rotor.services.backend import Backend


def _backend(provider: FakeProvider, **kwargs) -> Backend:
    return Backend(provider, store="SecretStore/ns/fake", qps=1000, burst=1000, **kwargs)


async def test_concurrent_and_recent_reads_are_shared() -> None:
    fake = FakeProvider()
    fake.put("app/db", {"password": "p"})
    backend = _backend(fake)
    results = await asyncio.gather(*(backend.read(RemoteRef("app/db")) for _ in range(10)))
    assert {r.version for r in results} == {"1"}
    assert fake.calls["read"] == 1
    await backend.read(RemoteRef("app/db"))  # within the share window
    assert fake.calls["read"] == 1
    backend.forget([RemoteRef("app/db")])
    await backend.read(RemoteRef("app/db"))
    assert fake.calls["read"] == 2


async def test_failures_are_not_shared_after_they_settle() -> None:
    from rotor.providers.base import Unreachable

    fake = FakeProvider()
    fake.put("k", "v")
    fake.fail(Unreachable("down"), key="k", times=1)
    backend = _backend(fake)
    with pytest.raises(Unreachable):
        await backend.read(RemoteRef("k"))
    assert (await backend.read(RemoteRef("k"))).raw == b"v"


async def test_no_batching_without_the_capability() -> None:
    fake = FakeProvider()
    for i in range(5):
        fake.put(f"k{i}", "v")
    backend = _backend(fake)
    assert not backend.batches and not backend.self_counting
    await asyncio.gather(*(backend.read(RemoteRef(f"k{i}")) for i in range(5)))
    assert fake.calls["read"] == 5


async def test_batching_with_the_capability() -> None:
    fake = BatchingFakeProvider()
    for i in range(5):
        fake.put(f"k{i}", "v")
    backend = _backend(fake, batch_delay=0.01)
    assert backend.batches and backend.self_counting
    assert fake.observer is not None  # the backend handed it its request metrics
    results = await asyncio.gather(*(backend.read(RemoteRef(f"k{i}")) for i in range(5)))
    assert [r.key for r in results] == [f"k{i}" for i in range(5)]
    assert len(fake.batches) == 1 and sorted(r.key for r in fake.batches[0]) == [f"k{i}" for i in range(5)]
    # a pinned version is not batched
    await backend.read(RemoteRef("k1", "1"))
    assert len(fake.batches) == 1


@pytest.mark.parametrize(
    ("call", "what"),
    [
        (lambda b: b.issue_certificate("pki", "web", "x.example", [], None), "issue certificates"),
        (lambda b: b.database_credentials("db", "app"), "read database credentials"),
        (lambda b: b.rotate("k"), "rotate by itself"),
        (lambda b: b.read_path("/apps/"), "read a whole path"),
    ],
)
async def test_missing_capability_is_unsupported_with_an_actionable_message(call, what: str) -> None:
    fake = FakeProvider()
    with pytest.raises(Unsupported) as info:
        await call(_backend(fake))
    assert info.value.reason == "InvalidConfig"
    message = info.value.message
    assert f"cannot {what}" in message and "SecretStore/ns/fake" in message and "fake provider" in message
    assert "use a store whose provider can" in message
    assert sum(fake.calls.values()) == 0  # nothing was called


async def test_capabilities_it_has_go_through() -> None:
    fake = FakeProvider()
    fake.put("k", {"v": "1"})
    backend = _backend(fake)
    assert backend.stages_writes
    token = "9b3c1a52-0000-4000-8000-000000000002"
    assert await backend.stage("k", {"v": "2"}, token) == token
    assert await backend.verify("k", token, {"v": "2"})
    await backend.promote("k", token)
    assert fake.value("k") == {"v": "2"}
    rolled = await backend.rollback("k")
    assert (rolled.before, rolled.restored) == (token, "1")


async def test_write_check_names_the_path_and_capability() -> None:
    fake = FakeProvider()
    backend = _backend(fake)
    assert backend.checks_writes
    assert await backend.missing_write(["app/db", "app/cache"]) == {}
    await backend.check_write(["app/db"])  # writable: no error
    fake.write_denied["app/db"] = ["update"]
    assert await backend.missing_write(["app/db", "app/cache"]) == {"app/db": ["update"]}
    with pytest.raises(WriteDenied) as info:
        await backend.check_write(["app/cache", "app/db"])
    assert info.value.reason == "Forbidden"
    assert info.value.missing == {"app/db": ["update"]}
    assert "update" in info.value.message and "app/db" in info.value.message
    assert "app/cache" not in info.value.message


async def test_write_check_is_a_no_op_for_providers_that_do_not_judge_per_path() -> None:
    class NoChecker(FakeProvider):
        missing_write = None  # type: ignore[assignment]

    fake = NoChecker()
    backend = _backend(fake)
    assert not backend.checks_writes
    assert await backend.missing_write(["k"]) == {}


class _GatedProvider(FakeProvider):
    """Reads wait for the test to open the gate (a read on the wire while the source changes)."""

    def __init__(self) -> None:
        super().__init__()
        import threading

        self.gate = threading.Event()
        self.entered = threading.Event()

    def read(self, ref: RemoteRef):  # type: ignore[no-untyped-def]
        if not self.gate.is_set():
            self.entered.set()
            value = super().read(ref)  # the value as it is when the read starts
            self.gate.wait(10)
            return value
        return super().read(ref)


async def test_forget_drops_a_read_on_the_wire_so_the_next_read_sees_the_change() -> None:
    fake = _GatedProvider()
    fake.put("app/db", {"password": "old"})
    backend = _backend(fake)
    ref = RemoteRef("app/db")
    in_flight = asyncio.create_task(backend.read(ref))
    await asyncio.to_thread(fake.entered.wait, 10)
    fake.put("app/db", {"password": "new"})  # the source changes while the read is on the wire
    backend.forget([ref])  # a notification of the change
    fake.gate.set()
    fresh = await backend.read(ref)
    assert fresh.version == "2"
    assert (await in_flight).version == "1"  # answers its own caller
    # the stale read, settling after, is shared with no one
    assert (await backend.read(ref)).version == "2"
    assert fake.calls["read"] == 2
