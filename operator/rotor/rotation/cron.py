"""Cron expressions in a time zone: validation, next/previous occurrence and period.

Standard five-field expressions (and the ``@daily``-style macros) are evaluated in an IANA time
zone. On the night clocks go back, a wall-clock time that happens twice fires once (the first
time); on the night clocks go forward, a skipped time fires at the first valid instant after it.
Results are timezone-aware UTC datetimes.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from rotor.rotation.errors import INVALID_SPEC, PolicyError

MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
#: A reference instant independent of ``now``, used to measure a cron expression's period.
_REFERENCE = datetime(2001, 1, 1, tzinfo=UTC)
_PERIOD_SPAN = timedelta(days=366)
_PERIOD_STEPS = 1000


def zone(name: str, *, field: str = "spec.schedule.timeZone") -> ZoneInfo:
    """The IANA time zone ``name``; ``PolicyError`` if unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise PolicyError(
            INVALID_SPEC, f"unknown time zone {name!r}: use an IANA name such as 'Europe/Paris'", field=field
        ) from None


def validate_cron(expr: object, *, field: str) -> str:
    """Check that ``expr`` is a five-field cron expression or a macro; return it."""
    if not isinstance(expr, str) or not expr.strip():
        raise PolicyError(INVALID_SPEC, "cron expression must be a non-empty string", field=field)
    text = expr.strip()
    if text.startswith("@"):
        if text not in MACROS:
            raise PolicyError(
                INVALID_SPEC,
                f"invalid cron expression {expr!r}: known macros are {', '.join(MACROS)}",
                field=field,
            )
        return text
    if len(text.split()) != 5:
        raise PolicyError(
            INVALID_SPEC,
            f"invalid cron expression {expr!r}: expected 5 fields (minute hour day month weekday)",
            field=field,
        )
    if not croniter.is_valid(text):
        raise PolicyError(INVALID_SPEC, f"invalid cron expression {expr!r}", field=field)
    return text


def _is_repeat(local: datetime) -> bool:
    """Whether ``local`` is the second pass of a wall-clock time on the night clocks go back."""
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()


def next_after(expr: str, t: datetime, tz: ZoneInfo, *, within: timedelta) -> datetime | None:
    """The first occurrence strictly after ``t``, or ``None`` if there is none within ``within``."""
    years = max(1, within.days // 365 + 1)
    try:
        it = croniter(expr, t.astimezone(tz), max_years_between_matches=years)
        while True:
            local: datetime = it.get_next(datetime)
            if local.astimezone(UTC) - t > within:
                return None
            if not _is_repeat(local):
                return local.astimezone(UTC)
    except CroniterError:
        return None


def latest_at_or_before(expr: str, t: datetime, tz: ZoneInfo, *, within: timedelta) -> datetime | None:
    """The most recent occurrence at or before ``t``, or ``None`` if none within ``within``."""
    minute = t.astimezone(tz).replace(second=0, microsecond=0)
    if croniter.match(expr, minute) and not _is_repeat(minute):
        return minute.astimezone(UTC)
    years = max(1, within.days // 365 + 1)
    try:
        it = croniter(expr, minute, max_years_between_matches=years)
        while True:
            local: datetime = it.get_prev(datetime)
            if t - local.astimezone(UTC) > within:
                return None
            if not _is_repeat(local):
                return local.astimezone(UTC)
    except CroniterError:
        return None


@functools.lru_cache(maxsize=256)
def period(expr: str, tz_name: str) -> timedelta:
    """The longest gap between consecutive occurrences over a year (at most 1000 occurrences),
    measured from a fixed reference so the answer does not depend on the clock. For ``0 3 * * 1-5``
    that is the weekend gap (3 days), not one day. ``PolicyError`` if the expression never fires."""
    tz = zone(tz_name)
    first = next_after(expr, _REFERENCE, tz, within=timedelta(days=366 * 8))
    if first is None:
        raise PolicyError(INVALID_SPEC, f"cron expression {expr!r} never fires", field="spec.schedule.cron")
    longest = timedelta(0)
    previous = first
    for _ in range(_PERIOD_STEPS):
        following = next_after(expr, previous, tz, within=timedelta(days=366 * 8))
        if following is None:
            break
        longest = max(longest, following - previous)
        previous = following
        if previous - first >= _PERIOD_SPAN:
            break
    if longest == timedelta(0):
        raise PolicyError(
            INVALID_SPEC, f"cron expression {expr!r} fires only once", field="spec.schedule.cron"
        )
    return longest
