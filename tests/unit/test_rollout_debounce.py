"""A burst of writes becomes one rollout, of the last write, with a cap on the wait."""

from __future__ import annotations

from rotor.rollout.debounce import Write, coalesce
from rotor.rollout.decisions import WriteInfo


def write(value: bytes, created: bool = False) -> Write:
    return Write(
        namespace="ns",
        secret="app-db",
        strategy="Auto",
        targets=(),
        data={"password": value},
        info=WriteInfo(created, None),
        owner={},
    )


def test_a_single_write_rolls_out_after_the_debounce() -> None:
    pending = coalesce(None, write(b"a"), now=100.0, debounce=30.0, max_delay=300.0)
    assert (pending.due, pending.writes, pending.write.data) == (130.0, 1, {"password": b"a"})


def test_each_write_of_a_burst_pushes_the_rollout_and_the_last_data_wins() -> None:
    pending = None
    for i, now in enumerate([100.0, 110.0, 125.0, 150.0]):
        pending = coalesce(pending, write(str(i).encode()), now=now, debounce=30.0, max_delay=300.0)
    assert pending is not None
    assert (pending.due, pending.writes, pending.write.data) == (180.0, 4, {"password": b"3"})


def test_a_source_that_never_settles_still_rolls_out_at_the_cap() -> None:
    pending = None
    for now in range(100, 1000, 10):
        pending = coalesce(pending, write(b"x"), now=float(now), debounce=30.0, max_delay=300.0)
    assert pending is not None and pending.due == 400.0


def test_a_creation_followed_by_updates_is_not_a_creation() -> None:
    pending = coalesce(None, write(b"a", created=True), now=0.0, debounce=1.0, max_delay=10.0)
    assert pending.write.info.created
    pending = coalesce(pending, write(b"b"), now=0.5, debounce=1.0, max_delay=10.0)
    assert not pending.write.info.created
