"""The rotation decision chain and the Expiring condition, with a moved clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from rotor.rotation.checks import Decision, ObservedState, RotationInputs, expiring_condition, rotation_due
from rotor.rotation.errors import PolicyError
from rotor.rotation.expiry import Expiry
from rotor.rotation.presets import EffectivePolicy, effective_policy

CREATED = datetime(2024, 5, 1, 10, tzinfo=UTC)  # a Wednesday
DAY = timedelta(days=1)
POLICY = effective_policy({"preset": "api-key", "schedule": {"every": "240h"}})
WINDOWED = effective_policy(
    {"preset": "api-key", "schedule": {"every": "240h"}, "window": {"cron": "0 2 * * 1-5", "duration": "3h"}}
)


def inputs(now: datetime, policy: EffectivePolicy = POLICY, **kw: object) -> RotationInputs:
    kw = {"last_rotation": None, "created": CREATED, **kw}
    return RotationInputs(policy=policy, now=now, **kw)  # type: ignore[arg-type]


def expiry(renewal: datetime, not_after: datetime | None = None, source: str = "Certificate") -> Expiry:
    return Expiry(not_after or renewal + 5 * DAY, source, renewal)  # type: ignore[arg-type]


def test_nothing_due_before_the_schedule():
    assert rotation_due(inputs(CREATED + 9 * DAY)) == Decision(None, None, None)


def test_schedule_due_once_the_clock_reaches_it():
    decision = rotation_due(inputs(CREATED + 10 * DAY))
    assert decision == Decision("Scheduled", CREATED + 10 * DAY, None)
    assert decision.act_now


@pytest.mark.parametrize(
    ("annotation", "expiring", "schedule", "reason"),
    [
        (True, True, True, "Manual"),
        (False, True, True, "Scheduled"),
        (False, False, True, "Scheduled"),
        (True, False, False, "Manual"),
        (False, True, False, "Expiring"),
        (False, False, False, None),
    ],
)
def test_chain_precedence(annotation, expiring, schedule, reason):
    now = CREATED + (11 if schedule else 3) * DAY
    decision = rotation_due(
        inputs(
            now,
            rotate_annotation="2024-05-02" if annotation else None,
            last_rotate_request="2024-04-01",
            expiry=expiry(now - DAY if expiring else now + DAY),
        )
    )
    assert decision.trigger == reason


def test_manual_request_is_served_once():
    assert rotation_due(inputs(CREATED, rotate_annotation="a", last_rotate_request="a")).trigger is None
    assert rotation_due(inputs(CREATED, rotate_annotation="b", last_rotate_request="a")).trigger == "Manual"


def test_expiring_uses_the_renewal_time_as_due_date():
    renewal = CREATED + 2 * DAY
    decision = rotation_due(inputs(CREATED + 3 * DAY, expiry=expiry(renewal)))
    assert (decision.trigger, decision.due_at) == ("Expiring", renewal)


def test_observe_never_rotates():
    observe = effective_policy({"strategy": "Observe", "maxAge": "240h"})
    now = CREATED + 20 * DAY
    decision = rotation_due(inputs(now, observe, rotate_annotation="x", expiry=expiry(now - DAY)))
    assert decision.trigger is None


def test_a_completed_rotation_is_not_repeated_for_the_same_due_date():
    """A restarted operator sees the completed rotation for due date X and does not rotate again,
    even when the data it looks at has not moved on (e.g. a provider expiry not yet refreshed)."""
    renewal = CREATED + 2 * DAY
    now = CREATED + 3 * DAY
    before = inputs(now, expiry=expiry(renewal))
    first = rotation_due(before)
    assert first.trigger == "Expiring"
    after = replace(before, phase="Completed", due_at_in_progress=first.due_at)
    assert rotation_due(after).trigger is None
    later = replace(
        after, expiry=expiry(renewal + 30 * DAY), now=renewal + 31 * DAY, last_rotation=renewal + 25 * DAY
    )
    assert rotation_due(later).trigger == "Expiring"  # a new due date is served


def test_a_rotation_in_progress_is_resumed_not_restarted():
    due = CREATED + 10 * DAY
    decision = rotation_due(
        inputs(CREATED + 11 * DAY, phase="Written", due_at_in_progress=due, rotate_annotation="new")
    )
    assert decision == Decision(None, due, None, resume=True)
    assert decision.act_now


def test_window_defers_scheduled_and_expiring_but_not_manual():
    saturday = datetime(2024, 5, 11, 12, tzinfo=UTC)  # due Saturday 10:00; window weekdays 02:00-05:00
    monday_2am = datetime(2024, 5, 13, 2, tzinfo=UTC)
    scheduled = rotation_due(inputs(saturday, WINDOWED))
    assert scheduled == Decision("Scheduled", CREATED + 10 * DAY, monday_2am)
    assert not scheduled.act_now
    expiring = rotation_due(inputs(CREATED + 3 * DAY, WINDOWED, expiry=expiry(CREATED + 2 * DAY)))
    assert expiring.defer_until == datetime(2024, 5, 6, 2, tzinfo=UTC)
    manual = rotation_due(inputs(saturday, WINDOWED, rotate_annotation="now"))
    assert (manual.trigger, manual.defer_until) == ("Manual", None)
    inside = rotation_due(inputs(monday_2am + timedelta(minutes=1), WINDOWED))
    assert (inside.trigger, inside.defer_until) == ("Scheduled", None)


def test_a_window_that_never_opens_is_an_error():
    policy = replace(POLICY, window_cron="0 0 29 2 *", window_duration=timedelta(hours=1))
    with pytest.raises(PolicyError, match="window never opens"):
        rotation_due(
            inputs(datetime(2024, 3, 1, tzinfo=UTC), policy, created=datetime(2024, 1, 1, tzinfo=UTC))
        )


def test_failures_back_off_before_the_next_attempt():
    failed_at = CREATED + 10 * DAY
    base = inputs(
        failed_at + timedelta(seconds=1), failed_attempts=3, last_failure_time=failed_at, backoff_seed="ns/a"
    )
    waiting = rotation_due(base)
    assert waiting.trigger == "Scheduled"
    assert waiting.defer_until is not None and failed_at + timedelta(seconds=60) <= waiting.defer_until
    assert rotation_due(replace(base, now=failed_at + timedelta(hours=1))).act_now
    resume = rotation_due(replace(base, phase="Staged"))
    assert resume.resume and resume.defer_until == waiting.defer_until
    # a person asking again is served at once; a rotation in progress still waits for its back-off
    manual = rotation_due(replace(base, rotate_annotation="again", last_rotate_request="first"))
    assert (manual.trigger, manual.act_now) == ("Manual", True)
    assert not rotation_due(replace(base, phase="Pending", rotate_annotation="again")).act_now


# --------------------------------------------------------------------------- Expiring condition

NOW = datetime(2024, 5, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("strategy", "exp", "observed", "max_age", "status", "reason"),
    [
        ("Generate", None, None, None, False, "Valid"),
        ("Generate", expiry(NOW + DAY), None, None, False, "Valid"),
        ("Generate", expiry(NOW - DAY, NOW + DAY), None, None, True, "ExpiresSoon"),
        ("Generate", expiry(NOW - 2 * DAY, NOW - DAY), None, None, True, "Expired"),
        ("Observe", expiry(NOW - 2 * DAY, NOW - DAY, "Policy"), None, None, True, "RotationOverdue"),
        ("Observe", expiry(NOW - 2 * DAY, NOW - DAY, "Certificate"), None, None, True, "Expired"),
        ("Observe", None, ObservedState(updated_time=NOW - 40 * DAY), 30 * DAY, True, "RotationOverdue"),
        ("Observe", None, ObservedState(updated_time=NOW - 20 * DAY), 30 * DAY, False, "Valid"),
        (
            "Observe",
            None,
            ObservedState(created_time=NOW - 40 * DAY, last_rotated=NOW - DAY),
            30 * DAY,
            False,
            "Valid",
        ),
        (
            "Observe",
            None,
            ObservedState(version_stages={"v1": ("AWSCURRENT",), "v2": ("AWSPENDING",)}),
            None,
            True,
            "RotationStalled",
        ),
        (
            "Observe",
            None,
            ObservedState(version_stages={"v1": ("AWSCURRENT", "AWSPENDING"), "v0": ("AWSPREVIOUS",)}),
            None,
            False,
            "Valid",
        ),
        (
            "Observe",
            None,
            ObservedState(
                version_stages={"v1": ("AWSCURRENT",), "v2": ("AWSPENDING",)},
                pending_since=NOW - timedelta(minutes=1),
            ),
            None,
            False,
            "Valid",
        ),
        (
            "Provider",
            None,
            ObservedState(rotation_enabled=True, next_rotation=NOW - 3 * DAY),
            None,
            True,
            "RotationStalled",
        ),
        (
            "Provider",
            None,
            ObservedState(rotation_enabled=True, next_rotation=NOW - timedelta(minutes=1)),
            None,
            False,
            "Valid",
        ),
        (
            "Provider",
            None,
            ObservedState(rotation_enabled=False, next_rotation=NOW - 3 * DAY),
            None,
            False,
            "Valid",
        ),
    ],
)
def test_expiring_condition(strategy, exp, observed, max_age, status, reason):
    got = expiring_condition(strategy=strategy, expiry=exp, now=NOW, observed=observed, max_age=max_age)
    assert got[:2] == (status, reason)
    assert got[2]


def test_expiring_messages_are_stable_while_the_clock_moves():
    exp = expiry(NOW - DAY, NOW + DAY)
    a = expiring_condition(strategy="Generate", expiry=exp, now=NOW, observed=None)
    b = expiring_condition(strategy="Generate", expiry=exp, now=NOW + timedelta(hours=3), observed=None)
    assert a == b
    assert "2024-05-02T00:00:00Z" in a[2]
