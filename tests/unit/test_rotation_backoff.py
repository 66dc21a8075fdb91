"""Retry back-off: growing, capped, deterministic, spread."""

from __future__ import annotations

from datetime import timedelta

import pytest

from rotor.rotation.backoff import retry_delay

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
