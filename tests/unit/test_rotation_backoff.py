"""Retry back-off and refresh jitter: growing, capped, deterministic, spread."""

from __future__ import annotations

import statistics
from datetime import timedelta

import pytest

from rotor.rotation.backoff import refresh_jitter, retry_delay

BASE = timedelta(seconds=30)
CAP = timedelta(hours=1)


def test_no_failure_no_delay():
    assert retry_delay(0, seed="ns/a") == timedelta(0)


@pytest.mark.parametrize("seed", ["ns/a", "ns/b", "team-x/db-password"])
def test_retry_delay_grows_and_is_capped(seed):
    delays = [retry_delay(n, seed=seed) for n in (*range(1, 40), 100, 10_000)]
    assert delays == sorted(delays)  # never shrinks from one attempt to the next
    assert delays[0] <= BASE
    assert delays[5] > delays[0] * 8
    assert all(d <= CAP for d in delays)
    assert delays[-1] >= CAP / 2


def test_retry_delay_respects_custom_base_and_cap():
    delays = [
        retry_delay(n, base=timedelta(seconds=1), cap=timedelta(seconds=10), seed="s") for n in range(1, 20)
    ]
    assert delays[0] <= timedelta(seconds=1)
    assert max(delays) <= timedelta(seconds=10)


def test_retry_delay_is_deterministic_and_differs_between_objects():
    assert retry_delay(4, seed="ns/a") == retry_delay(4, seed="ns/a")
    assert len({retry_delay(4, seed=f"ns/{i}") for i in range(100)}) > 90


def test_refresh_jitter_is_deterministic_bounded_and_spread():
    interval = timedelta(hours=1)
    offsets = [refresh_jitter(f"ns/secret-{i}", interval) for i in range(1000)]
    assert offsets == [refresh_jitter(f"ns/secret-{i}", interval) for i in range(1000)]
    assert all(timedelta(0) <= o < interval * 0.1 for o in offsets)
    seconds = [o.total_seconds() for o in offsets]
    assert statistics.pstdev(seconds) > 0
    # spread over the whole range: every tenth of it gets some objects
    buckets = {int(s // 36) for s in seconds}
    assert buckets == set(range(10))


def test_refresh_jitter_fraction():
    assert refresh_jitter("a", timedelta(hours=1), fraction=0) == timedelta(0)
    with pytest.raises(ValueError, match="fraction"):
        refresh_jitter("a", timedelta(hours=1), fraction=2)
