"""Maintenance windows: a cron expression marks each window's start, and ``duration`` its length.

A window is open at ``t`` when the latest start at or before ``t`` is less than ``duration`` ago.
Times are timezone-aware; results are UTC.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from rotor.rotation.cron import latest_at_or_before, next_after, zone
from rotor.rotation.errors import INVALID_SPEC, PolicyError

#: A window that does not open within this horizon is refused.
HORIZON = timedelta(days=2 * 365)


def _check_duration(duration: timedelta) -> None:
    if duration <= timedelta(0):
        raise PolicyError(
            INVALID_SPEC, "window duration must be longer than 0s", field="spec.window.duration"
        )


def window_open_at(cron: str, duration: timedelta, t: datetime, tz: str) -> bool:
    """Whether the window is open at ``t`` (a start is inclusive, an end exclusive)."""
    _check_duration(duration)
    start = latest_at_or_before(cron, t, zone(tz), within=duration)
    return start is not None and t < start + duration


def next_window_start(cron: str, duration: timedelta, t: datetime, tz: str) -> datetime | None:
    """The first window start at or after ``t``, or ``None`` if none comes within two years."""
    _check_duration(duration)
    tzinfo = zone(tz)
    start = latest_at_or_before(cron, t, tzinfo, within=timedelta(0))
    if start is not None and start == t:
        return start
    return next_after(cron, t, tzinfo, within=HORIZON)


def earliest_open(cron: str, duration: timedelta, t: datetime, tz: str) -> datetime:
    """``t`` if the window is open then, else the next window start. ``PolicyError`` if the window
    never opens within two years."""
    if window_open_at(cron, duration, t, tz):
        return t
    start = next_window_start(cron, duration, t, tz)
    if start is None:
        raise PolicyError(
            INVALID_SPEC,
            f"window never opens: {cron!r} has no start within two years",
            field="spec.window.cron",
        )
    return start
