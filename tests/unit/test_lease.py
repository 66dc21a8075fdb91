"""Leader election (rotor.kube.lease) against a scripted Lease API and a fake clock: no servers."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from rotor.kube.gateway import KubeError
from rotor.kube.lease import LeaderElector, LeaseConfig

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class Clock:
    """Wall and monotonic time that move only when told."""

    def __init__(self) -> None:
        self.offset = 0.0

    def wall(self) -> dt.datetime:
        return T0 + dt.timedelta(seconds=self.offset)

    def monotonic(self) -> float:
        return 1000.0 + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class FakeLeases:
    """An apiserver's Lease storage with optimistic concurrency, and switchable failures."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.down = False
        self.writes: list[str] = []  # holder written by each successful write

    def _check(self) -> None:
        if self.down:
            raise KubeError(503, "apiserver unavailable")

    def _store(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        stored = copy.deepcopy(body)
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.lease = stored
        self.writes.append(stored["spec"].get("holderIdentity") or "")
        return copy.deepcopy(stored)

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._check()
        return copy.deepcopy(self.lease)

    async def create_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        self._check()
        if self.lease is not None:
            raise KubeError(409, "already exists")
        return self._store(body)

    async def replace_lease(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self._check()
        assert self.lease is not None
        if body["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
            raise KubeError(409, "the object has been modified")
        return self._store(body)

    @property
    def spec(self) -> dict[str, Any]:
        assert self.lease is not None
        return dict(self.lease["spec"])


def elector(api: FakeLeases, clock: Clock, identity: str) -> LeaderElector:
    config = LeaseConfig(name="rotor", namespace="rotor-system", identity=identity)
    return LeaderElector(api, config, wall=clock.wall, monotonic=clock.monotonic)


async def test_the_first_candidate_creates_the_lease_and_leads() -> None:
    api, clock = FakeLeases(), Clock()
    a = elector(api, clock, "a")
    seen: list[bool] = []
    a.on_change.append(seen.append)
    await a.step()
    assert a.leading and seen == [True] and a.may_write()
    assert api.spec["holderIdentity"] == "a"
    assert api.spec["leaseDurationSeconds"] == 15 and api.spec["leaseTransitions"] == 0


async def test_a_standby_waits_while_the_holder_renews_and_never_writes() -> None:
    api, clock = FakeLeases(), Clock()
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    await a.step()
    for _ in range(30):  # a minute of rounds, every 2 s
        clock.advance(2)
        await a.step()
        await b.step()
        assert a.leading and not b.leading and not b.may_write()
    assert set(api.writes) == {"a"}
    assert b.holder == "a"


async def test_a_standby_takes_over_only_after_renew_time_plus_duration() -> None:
    api, clock = FakeLeases(), Clock()
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    await a.step()
    acquired = api.spec["renewTime"]
    # a dies (no more renewals); b tries every 2 s
    clock.advance(14.9)
    await b.step()
    assert not b.leading, "took over before renewTime + leaseDurationSeconds"
    clock.advance(0.2)
    await b.step()
    assert b.leading
    spec = api.spec
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1
    assert spec["acquireTime"] == spec["renewTime"] != acquired


async def test_two_candidates_racing_for_a_free_lease_cannot_both_win() -> None:
    api, clock = FakeLeases(), Clock()
    a = elector(api, clock, "a")
    await a.step()
    clock.advance(20)  # a's lease expired
    # both read the same expired lease, then both write it
    stale_a = await api.get_lease("rotor-system", "rotor")
    stale_b = await api.get_lease("rotor-system", "rotor")

    async def read_once_a(namespace: str, name: str) -> dict[str, Any] | None:
        return stale_a

    async def read_once_b(namespace: str, name: str) -> dict[str, Any] | None:
        return stale_b

    c, d = elector(api, clock, "c"), elector(api, clock, "d")
    c.api = type("A", (), {"get_lease": staticmethod(read_once_a), "replace_lease": api.replace_lease})()
    d.api = type("B", (), {"get_lease": staticmethod(read_once_b), "replace_lease": api.replace_lease})()
    assert await c.attempt() is True
    assert await d.attempt() is False  # 409: the resourceVersion moved
    assert api.spec["holderIdentity"] == "c"


async def test_create_conflict_means_someone_else_created_it() -> None:
    api, clock = FakeLeases(), Clock()
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    real_get = api.get_lease

    async def missing(namespace: str, name: str) -> dict[str, Any] | None:
        return None

    await a.step()
    api.get_lease = missing  # type: ignore[method-assign]
    await b.step()  # b thinks there is none and tries to create it
    api.get_lease = real_get  # type: ignore[method-assign]
    assert not b.leading and api.spec["holderIdentity"] == "a"


async def test_the_leader_steps_down_when_it_cannot_renew_before_the_deadline() -> None:
    api, clock = FakeLeases(), Clock()
    a = elector(api, clock, "a")
    seen: list[bool] = []
    a.on_change.append(seen.append)
    await a.step()
    api.down = True
    for _ in range(4):  # 8 s of failed renewals: still within the 10 s deadline
        clock.advance(2)
        await a.step()
        assert a.leading
    clock.advance(2)  # 10 s since the last renewal
    await a.step()
    assert not a.leading and seen == [True, False]
    # writes in flight get a grace, shorter than the lease: nobody else can lead yet
    assert a.may_write()
    clock.advance(3)  # 13 s
    assert not a.may_write()


async def test_the_stepped_down_leader_does_not_write_while_another_holds_it() -> None:
    api, clock = FakeLeases(), Clock()
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    await a.step()
    api.down = True
    clock.advance(10)
    await a.step()  # a steps down
    api.down = False
    clock.advance(5.1)  # a's lease has expired
    await b.step()
    assert b.leading
    clock.advance(2)
    await a.step()
    assert not a.leading and not a.may_write() and a.holder == "b"


async def test_a_leader_that_finds_another_holder_steps_down_at_once() -> None:
    api, clock = FakeLeases(), Clock()
    a = elector(api, clock, "a")
    await a.step()
    # someone (an admin, a skewed clock) hands the Lease to b
    assert api.lease is not None
    api.lease["spec"]["holderIdentity"] = "b"
    api.version += 1
    api.lease["metadata"]["resourceVersion"] = str(api.version)
    clock.advance(2)
    await a.step()  # the renewal conflicts; a reads the lease afresh next time
    clock.advance(2)
    await a.step()
    assert not a.leading and not a.may_write()


async def test_release_hands_over_without_waiting_for_expiry() -> None:
    api, clock = FakeLeases(), Clock()
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    await a.step()
    await b.step()
    assert not b.leading
    await a.release()
    assert not a.leading and not a.may_write()
    assert not api.spec.get("holderIdentity")
    clock.advance(0.5)
    await b.step()
    assert b.leading and api.spec["leaseTransitions"] == 1


async def test_release_by_a_standby_writes_nothing() -> None:
    api, clock = FakeLeases(), Clock()
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    await a.step()
    await b.step()
    writes = len(api.writes)
    await b.release()
    assert len(api.writes) == writes and api.spec["holderIdentity"] == "a"


def test_timings_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="retry-period < renew-deadline < lease-duration"):
        LeaseConfig(name="r", namespace="n", identity="i", lease_duration=10, renew_deadline=10)
    with pytest.raises(ValueError):
        LeaseConfig(name="r", namespace="n", identity="i", retry_period=0)


async def test_the_gateway_refuses_writes_while_the_fence_is_down() -> None:
    from kubernetes_asyncio import client

    from rotor.kube.gateway import KubeGateway, NotLeader

    gateway = KubeGateway(client.ApiClient(client.Configuration(host="http://127.0.0.1:9")))
    try:
        gateway.write_fence = lambda: False
        with pytest.raises(NotLeader):
            await gateway.patch_secret("ns", "s", {"data": {}})
        with pytest.raises(NotLeader):
            await gateway.patch_status("ManagedSecret", "a", "ns", {"phase": "x"})
        with pytest.raises(NotLeader):
            await gateway.patch_workload("ns", "Deployment", "d", {})
        # Events are best effort: none is posted, nothing is raised
        await gateway.post_event(
            {"metadata": {"name": "a"}}, type_="Normal", reason="R", note="n", action="a"
        )
        assert gateway.writes == {}
    finally:
        await gateway.close()


# ---------------------------------------------------------------------------------------------- rotor run
@pytest.mark.parametrize("argv", [["--standalone"], ["--peering", "rotor"], ["--priority", "5"]])
def test_rotor_run_refuses_the_peering_flags_with_the_way_forward(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from rotor.cli.main import main

    assert main(["run", *argv]) == 2
    err = capsys.readouterr().err
    assert f"{argv[0]} was removed" in err and "--no-leader-elect" in err


def test_rotor_run_elects_a_leader_by_default_with_client_go_timings() -> None:
    from rotor.cli.main import build_parser

    args = build_parser().parse_args(["run"])
    assert args.leader_elect is True and args.lease_name == "rotor"
    assert (args.lease_duration, args.renew_deadline, args.retry_period) == ("15s", "10s", "2s")
    assert build_parser().parse_args(["run", "--no-leader-elect"]).leader_elect is False


def test_rotor_run_refuses_timings_out_of_order(capsys: pytest.CaptureFixture[str]) -> None:
    from rotor.cli.main import main

    assert main(["run", "--renew-deadline", "20s"]) == 2
    assert "retry-period < renew-deadline < lease-duration" in capsys.readouterr().err
