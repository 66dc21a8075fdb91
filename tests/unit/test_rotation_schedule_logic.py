"""Schedules (every, cron in a time zone) and maintenance windows, with a moved clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from rotor.rotation.errors import PolicyError
from rotor.rotation.presets import EffectivePolicy, effective_policy
from rotor.rotation.schedule import next_rotation, scheduled_due
from rotor.rotation.windows import earliest_open, next_window_start, window_open_at

PARIS = ZoneInfo("Europe/Paris")
CREATED = datetime(2024, 1, 1, tzinfo=UTC)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def cron_policy(cron: str, tz: str = "UTC", **extra: object) -> EffectivePolicy:
    return effective_policy(
        {"schedule": {"cron": cron, "timeZone": tz}, "generator": {"fernetKey": {}}, **extra}
    )


def test_every_counts_from_creation_then_from_the_last_rotation():
    policy = effective_policy({"preset": "database-password"})
    assert next_rotation(policy, last_rotation=None, created=CREATED, now=CREATED) == CREATED + timedelta(
        days=30
    )
    last = utc(2024, 2, 10, 8, 15)
    assert next_rotation(policy, last_rotation=last, created=CREATED, now=last) == last + timedelta(days=30)


def test_no_schedule_means_no_scheduled_rotation():
    policy = effective_policy(
        {"preset": "certificate", "generator": {"selfSignedCertificate": {"commonName": "a"}}}
    )
    assert next_rotation(policy, last_rotation=None, created=CREATED, now=CREATED) is None


@pytest.mark.parametrize(
    ("last_local", "expected_local"),
    [
        # clocks go forward on 31 March 2024: 03:00 is CEST (UTC+2) the week after CET (UTC+1)
        (datetime(2024, 3, 24, 3, 0, tzinfo=PARIS), datetime(2024, 3, 31, 3, 0, tzinfo=PARIS)),
        # clocks go back on 27 October 2024
        (datetime(2024, 10, 20, 3, 0, tzinfo=PARIS), datetime(2024, 10, 27, 3, 0, tzinfo=PARIS)),
        # mid-week rotation: the next Sunday
        (datetime(2024, 3, 27, 12, 0, tzinfo=PARIS), datetime(2024, 3, 31, 3, 0, tzinfo=PARIS)),
    ],
)
def test_weekly_cron_keeps_local_time_across_dst(last_local, expected_local):
    policy = cron_policy("0 3 * * 0", "Europe/Paris")
    due = next_rotation(policy, last_rotation=last_local, created=CREATED, now=last_local)
    assert due == expected_local
    assert due.tzinfo == UTC
    assert due.astimezone(PARIS).hour == 3


def test_cron_dst_utc_offsets_differ_by_an_hour():
    policy = cron_policy("0 3 * * 0", "Europe/Paris")
    winter = scheduled_due(policy, last_rotation=utc(2024, 3, 20), created=CREATED)
    summer = scheduled_due(policy, last_rotation=utc(2024, 3, 28), created=CREATED)
    assert (winter, summer) == (utc(2024, 3, 24, 2), utc(2024, 3, 31, 1))


def test_daily_cron_fires_once_on_the_night_clocks_go_back():
    policy = cron_policy("30 2 * * *", "Europe/Paris")
    first = scheduled_due(policy, last_rotation=utc(2024, 10, 26, 12), created=CREATED)
    assert first == utc(2024, 10, 27, 0, 30)  # 02:30 CEST
    second = scheduled_due(policy, last_rotation=first, created=CREATED)
    assert second == utc(2024, 10, 28, 1, 30)  # not 02:30 CET an hour later


def test_daily_cron_in_a_skipped_hour_fires_at_the_next_valid_time():
    policy = cron_policy("30 2 * * *", "Europe/Paris")
    assert scheduled_due(policy, last_rotation=utc(2024, 3, 30, 12), created=CREATED) == utc(2024, 3, 31, 1)


def test_overdue_rotation_keeps_its_date_when_it_can_run_now():
    policy = effective_policy({"preset": "api-key"})
    now = CREATED + timedelta(days=200)
    for later in (now, now + timedelta(hours=5)):
        assert next_rotation(policy, last_rotation=None, created=CREATED, now=later) == CREATED + timedelta(
            days=90
        )


# --------------------------------------------------------------------------- windows

WEEKDAYS_2AM = "0 2 * * 1-5"


@pytest.mark.parametrize(
    ("t", "is_open"),
    [
        (utc(2024, 5, 6, 1, 59, 59), False),  # Monday, just before
        (utc(2024, 5, 6, 2, 0), True),  # start is inclusive
        (utc(2024, 5, 6, 4, 59, 59), True),
        (utc(2024, 5, 6, 5, 0), False),  # end is exclusive
        (utc(2024, 5, 4, 3, 0), False),  # Saturday
    ],
)
def test_window_open_at(t, is_open):
    assert window_open_at(WEEKDAYS_2AM, timedelta(hours=3), t, "UTC") is is_open


def test_next_window_start_skips_the_weekend():
    assert next_window_start(WEEKDAYS_2AM, timedelta(hours=3), utc(2024, 5, 3, 6), "UTC") == utc(
        2024, 5, 6, 2
    )
    assert next_window_start(WEEKDAYS_2AM, timedelta(hours=3), utc(2024, 5, 6, 2), "UTC") == utc(
        2024, 5, 6, 2
    )


def test_window_in_a_time_zone():
    t = utc(2024, 7, 1, 6, 30)  # 02:30 in New York (EDT, UTC-4)
    assert window_open_at("0 2 * * *", timedelta(hours=1), t, "America/New_York")
    assert not window_open_at("0 2 * * *", timedelta(hours=1), t, "UTC")


def test_window_defers_a_due_rotation_to_the_next_opening():
    policy = effective_policy(
        {
            "preset": "api-key",
            "schedule": {"every": "72h"},
            "window": {"cron": WEEKDAYS_2AM, "duration": "3h"},
        }
    )
    created = utc(2024, 5, 1, 10)  # Wednesday; due Saturday 10:00
    assert next_rotation(policy, last_rotation=None, created=created, now=created) == utc(2024, 5, 6, 2)


def test_window_keeps_a_due_date_that_falls_inside_it():
    policy = effective_policy(
        {
            "preset": "api-key",
            "schedule": {"every": "24h"},
            "window": {"cron": WEEKDAYS_2AM, "duration": "3h"},
        }
    )
    created = utc(2024, 5, 6, 3)
    assert next_rotation(policy, last_rotation=None, created=created, now=created) == utc(2024, 5, 7, 3)


def test_overdue_rotation_waits_for_the_window_after_now():
    policy = effective_policy(
        {
            "preset": "api-key",
            "schedule": {"every": "24h"},
            "window": {"cron": WEEKDAYS_2AM, "duration": "3h"},
        }
    )
    created = utc(2024, 5, 1, 10)  # due Thursday 10:00, outside the window
    now = utc(2024, 5, 7, 12)  # Tuesday noon: a week late, window closed
    assert next_rotation(policy, last_rotation=None, created=created, now=now) == utc(2024, 5, 8, 2)
    inside = utc(2024, 5, 8, 2, 30)  # inside the window the overdue date itself is reported
    assert next_rotation(policy, last_rotation=None, created=created, now=inside) == utc(2024, 5, 2, 10)


def test_window_that_does_not_open_within_two_years_is_refused():
    # 29 February 2028 is more than two years after March 2024
    policy = EffectivePolicy(
        strategy="Generate",
        every=timedelta(days=1),
        window_cron="0 0 29 2 *",
        window_duration=timedelta(hours=1),
    )
    now = utc(2024, 3, 1)
    assert next_window_start("0 0 29 2 *", timedelta(hours=1), now, "UTC") is None
    with pytest.raises(PolicyError, match="window never opens"):
        next_rotation(policy, last_rotation=None, created=now, now=now)
    with pytest.raises(PolicyError, match="window never opens"):
        earliest_open("0 0 29 2 *", timedelta(hours=1), now, "UTC")


def test_window_duration_must_be_positive():
    with pytest.raises(PolicyError, match="duration"):
        window_open_at(WEEKDAYS_2AM, timedelta(0), utc(2024, 5, 6, 2), "UTC")
