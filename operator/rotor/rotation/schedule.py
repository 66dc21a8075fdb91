"""When the next rotation is due: from ``every`` or a cron expression in the policy's time zone,
then moved into the next maintenance window when the policy has one."""

from __future__ import annotations

from datetime import datetime, timedelta

from rotor.rotation import cron
from rotor.rotation.errors import INVALID_SPEC, PolicyError
from rotor.rotation.presets import EffectivePolicy
from rotor.rotation.windows import earliest_open

#: A valid cron expression fires at least once in this long (29 February is the rarest day).
_CRON_HORIZON = timedelta(days=8 * 366)


def scheduled_due(
    policy: EffectivePolicy, *, last_rotation: datetime | None, created: datetime
) -> datetime | None:
    """The due date the schedule gives, ignoring windows: ``every`` after the last rotation (or
    creation), or the first cron occurrence after it. ``None`` when the policy has no schedule."""
    base = last_rotation or created
    if policy.every is not None:
        return base + policy.every
    if policy.cron is None:
        return None
    due = cron.next_after(policy.cron, base, cron.zone(policy.time_zone), within=_CRON_HORIZON)
    if due is None:
        raise PolicyError(
            INVALID_SPEC, f"cron expression {policy.cron!r} never fires", field="spec.schedule.cron"
        )
    return due


def in_window(policy: EffectivePolicy, t: datetime) -> datetime:
    """``t`` if the policy has no window or its window is open at ``t``; else the next window start.
    ``PolicyError`` when the window never opens."""
    if policy.window_cron is None or policy.window_duration is None:
        return t
    return earliest_open(policy.window_cron, policy.window_duration, t, policy.window_time_zone)


def next_rotation(
    policy: EffectivePolicy, *, last_rotation: datetime | None, created: datetime, now: datetime
) -> datetime | None:
    """When the next scheduled rotation will run (``status.rotation.nextRotationTime``).

    An overdue date is kept as it is when it can run now (so the value is stable between
    reconciles); with a window, a date falling outside it moves to the next window start, counted
    from ``now`` when the date is already past. ``None`` when the policy has no schedule.
    """
    due = scheduled_due(policy, last_rotation=last_rotation, created=created)
    if due is None:
        return None
    return runnable_at(policy, due, now)


def runnable_at(policy: EffectivePolicy, due: datetime, now: datetime) -> datetime:
    """When a rotation due at ``due`` can run: ``due`` itself, or the next window start when it
    falls outside the window (counted from ``now`` when ``due`` is already past)."""
    runnable = in_window(policy, max(due, now))
    return due if due <= now and runnable == now else runnable
