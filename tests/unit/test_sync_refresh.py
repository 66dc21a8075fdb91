"""sync/refresh.next_refresh on its own: slots on a fixed grid per seed, strictly in the future,
shared by equal seeds, spread over the interval by different ones."""

from __future__ import annotations

import datetime as dt

import pytest

from rotor.sync.refresh import next_refresh, phase_fraction

NOW = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


@pytest.mark.parametrize(
    "interval", [dt.timedelta(seconds=5), dt.timedelta(minutes=1), HOUR, dt.timedelta(days=1)]
)
@pytest.mark.parametrize("seed", ["ns/a", "store|key@None", ""])
def test_the_next_slot_is_within_one_interval_and_on_the_seeds_grid(
    seed: str, interval: dt.timedelta
) -> None:
    first = next_refresh(seed, interval, NOW)
    assert NOW < first <= NOW + interval
    # from the slot itself, the next one is exactly one interval later: a fixed grid
    assert next_refresh(seed, interval, first) == first + interval
    # the phase is stable across restarts (a pure function of the seed)
    period = interval.total_seconds()
    assert (
        abs((first.timestamp() % period) - phase_fraction(seed) * period) < 1e-3
        or abs((first.timestamp() % period) - phase_fraction(seed) * period) > period - 1e-3
    )


def test_equal_seeds_share_a_slot_and_different_ones_spread() -> None:
    assert next_refresh("s", HOUR, NOW) == next_refresh("s", HOUR, NOW + dt.timedelta(seconds=1))
    slots = {next_refresh(f"ns/{i}", HOUR, NOW).replace(second=0, microsecond=0) for i in range(600)}
    assert len(slots) > 45, "600 objects should cover most minutes of the hour"


def test_a_non_positive_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        next_refresh("s", dt.timedelta(0), NOW)
