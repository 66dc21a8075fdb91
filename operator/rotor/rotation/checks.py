"""Should a rotation start now, and is the value expiring? Small pure checks chained in order, in
the style of cert-manager's ``policies.Chain``; gathering their inputs is someone else's job.

The rotation chain, first match wins:

0. MissingAtSource: createIfMissing, strategy Generate, and a remote key the policy generates does
   not exist at the source -> Missing (the value is created, never overwriting)
1. ManualRequested: ``rotor.dev/rotate`` differs from ``status.rotation.lastRotateRequest`` -> Manual
2. ScheduleDue: ``now >= `` the schedule's due date -> Scheduled
3. ExpiringSoon: Generate/Provider strategy and ``now >= renewalTime`` -> Expiring

(With the default ``maxAge`` (the schedule's period) and no ``rotateBefore``, the renewal time of
a value equals its scheduled due date: such a rotation is reported as Scheduled. Expiring is for
renewals that come before the schedule: certificates, or a shorter ``maxAge``/``rotateBefore``.)

then gated: outside the policy's window, Scheduled and Expiring wait for the next window start, and
after failures they wait for their back-off; Manual waits for neither. A rotation in progress
resumes after its back-off.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from rotor.api.status import Reason, RotationPhase
from rotor.rotation.backoff import retry_delay
from rotor.rotation.expiry import Expiry
from rotor.rotation.phases import in_progress
from rotor.rotation.presets import EffectivePolicy
from rotor.rotation.schedule import in_window, scheduled_due

# triggers (the Rotating reason while a rotation runs) and Expiring reasons, from the one enum
MANUAL = Reason.MANUAL.value
EXPIRING = Reason.EXPIRING.value
MISSING = Reason.MISSING.value
SCHEDULED = Reason.SCHEDULED.value

EXPIRES_SOON = Reason.EXPIRES_SOON.value
EXPIRED = Reason.EXPIRED.value
ROTATION_OVERDUE = Reason.ROTATION_OVERDUE.value
ROTATION_STALLED = Reason.ROTATION_STALLED.value
VALID = Reason.VALID.value

#: An AWSPENDING version older than this is a stalled rotation, not one in progress.
PENDING_STALLED_AFTER = timedelta(hours=1)
#: A backend's next rotation date this far in the past means its rotation is not running
#: (AWS rotates within a window of up to a day after the date).
SCHEDULE_STALLED_AFTER = timedelta(hours=24)


@dataclass(frozen=True)
class RotationInputs:
    """What the rotation checks look at. ``due_at_in_progress`` is the due date served by the
    rotation recorded in status (in progress, or completed when ``phase`` is Completed)."""

    policy: EffectivePolicy
    now: datetime
    last_rotation: datetime | None
    created: datetime
    expiry: Expiry | None = None
    rotate_annotation: str | None = None
    last_rotate_request: str | None = None
    phase: str | None = None
    due_at_in_progress: datetime | None = None
    failed_attempts: int = 0
    last_failure_time: datetime | None = None
    backoff_seed: str = ""
    #: remote keys the rotation writes that do not exist at the source (read as KeyNotFound)
    missing: tuple[str, ...] = ()


@dataclass(frozen=True)
class Trigger:
    reason: str
    due_at: datetime


@dataclass(frozen=True)
class Decision:
    """``trigger`` is the Rotating reason of a rotation to start (``None``: nothing to start);
    ``resume`` means one is in progress and must be carried on; ``due_at`` is the due date being
    served (record it in status); ``defer_until``, when set, is when to look again instead of
    acting now (a closed window or a back-off)."""

    trigger: str | None
    due_at: datetime | None
    defer_until: datetime | None
    resume: bool = False

    @property
    def act_now(self) -> bool:
        return (self.trigger is not None or self.resume) and self.defer_until is None


Check = Callable[[RotationInputs], Trigger | None]


def missing_at_source(inputs: RotationInputs) -> Trigger | None:
    """createIfMissing: a remote key the policy generates does not exist. Nothing is there to
    rotate and consumers have no value at all: it is created at once (no window holds it; a
    past failure's back-off does)."""
    policy = inputs.policy
    if inputs.missing and policy.create_if_missing and policy.strategy == "Generate":
        return Trigger(MISSING, inputs.now)
    return None


def manual_requested(inputs: RotationInputs) -> Trigger | None:
    requested = inputs.rotate_annotation
    if inputs.policy.strategy != "Observe" and requested and requested != inputs.last_rotate_request:
        return Trigger(MANUAL, inputs.now)
    return None


def expiring_soon(inputs: RotationInputs) -> Trigger | None:
    expiry = inputs.expiry
    if inputs.policy.strategy in ("Generate", "Provider") and expiry and inputs.now >= expiry.renewal_time:
        return Trigger(EXPIRING, expiry.renewal_time)
    return None


def schedule_due(inputs: RotationInputs) -> Trigger | None:
    if inputs.policy.strategy == "Observe":
        return None
    due = scheduled_due(inputs.policy, last_rotation=inputs.last_rotation, created=inputs.created)
    if due is not None and inputs.now >= due:
        return Trigger(SCHEDULED, due)
    return None


CHECKS: tuple[Check, ...] = (missing_at_source, manual_requested, schedule_due, expiring_soon)


def _already_served(inputs: RotationInputs, trigger: Trigger) -> bool:
    """A completed rotation served every due date up to its own: never rotate twice for one."""
    served = inputs.due_at_in_progress
    return (
        trigger.reason != MANUAL
        and inputs.phase == RotationPhase.COMPLETED
        and served is not None
        and trigger.due_at <= served
    )


def _backoff_until(inputs: RotationInputs) -> datetime | None:
    if inputs.failed_attempts <= 0 or inputs.last_failure_time is None:
        return None
    until = inputs.last_failure_time + retry_delay(inputs.failed_attempts, seed=inputs.backoff_seed)
    return until if until > inputs.now else None


def _window_until(inputs: RotationInputs, trigger: Trigger) -> datetime | None:
    if trigger.reason in (MANUAL, MISSING):
        return None
    start = in_window(inputs.policy, inputs.now)
    return start if start > inputs.now else None


def rotation_due(inputs: RotationInputs) -> Decision:
    """Run the chain. A rotation in progress is resumed (after its back-off), never restarted, and
    no new one starts beside it. ``PolicyError`` if the policy's window never opens."""
    backoff = _backoff_until(inputs)
    if in_progress(inputs.phase):
        return Decision(None, inputs.due_at_in_progress, backoff, resume=True)
    for check in CHECKS:
        trigger = check(inputs)
        if trigger is None or _already_served(inputs, trigger):
            continue
        # a person asking is served at once: neither the window nor a past failure's back-off holds it
        manual = trigger.reason == MANUAL
        waits = [t for t in (_window_until(inputs, trigger), None if manual else backoff) if t is not None]
        return Decision(trigger.reason, trigger.due_at, max(waits, default=None))
    return Decision(None, None, None)


# --------------------------------------------------------------------------- Expiring condition


@dataclass(frozen=True)
class ObservedState:
    """What the backend reports about the current value (Observe strategy and AWS stages).

    ``version_stages`` is AWS ``VersionIdsToStages``; ``pending_since`` the creation time of the
    AWSPENDING version when known."""

    created_time: datetime | None = None
    updated_time: datetime | None = None
    last_rotated: datetime | None = None
    rotation_enabled: bool = False
    next_rotation: datetime | None = None
    version_stages: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    pending_since: datetime | None = None

    @property
    def last_changed(self) -> datetime | None:
        times = [t for t in (self.last_rotated, self.updated_time, self.created_time) if t is not None]
        return max(times, default=None)

    @property
    def stray_pending(self) -> bool:
        """An AWSPENDING label on a version that is not AWSCURRENT."""
        return any("AWSPENDING" in s and "AWSCURRENT" not in s for s in self.version_stages.values())


def _ts(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stalled(observed: ObservedState | None, now: datetime) -> str | None:
    if observed is None:
        return None
    if observed.stray_pending and (
        observed.pending_since is None or now - observed.pending_since >= PENDING_STALLED_AFTER
    ):
        return (
            "a version is labelled AWSPENDING but is not AWSCURRENT: a rotation is stalled or failed half-way"
        )
    next_rotation = observed.next_rotation
    if (
        observed.rotation_enabled
        and next_rotation is not None
        and now - next_rotation >= SCHEDULE_STALLED_AFTER
    ):
        return (
            f"rotation is enabled in the backend but its next rotation date {_ts(next_rotation)} has passed"
        )
    return None


def _overdue(
    strategy: str,
    expiry: Expiry | None,
    now: datetime,
    observed: ObservedState | None,
    max_age: timedelta | None,
) -> str | None:
    if strategy != "Observe":
        return None
    if expiry is not None and expiry.source == "Policy" and now >= expiry.not_after:
        return (
            f"the value is older than the policy allows: it was due for rotation by {_ts(expiry.not_after)}"
        )
    changed = observed.last_changed if observed else None
    if changed is not None and max_age is not None and now - changed > max_age:
        return f"the backend last changed the value at {_ts(changed)}, longer ago than maxAge"
    return None


def expiring_condition(
    *,
    strategy: str,
    expiry: Expiry | None,
    now: datetime,
    observed: ObservedState | None,
    max_age: timedelta | None = None,
) -> tuple[bool, str, str]:
    """The ``Expiring`` condition as (status, reason, message). In order: Expired, RotationOverdue
    (Observe only), RotationStalled, ExpiresSoon; ``(False, "Valid", ...)`` otherwise. Messages
    depend on the inputs only through dates, so they stay stable between reconciles."""
    observe_policy = strategy == "Observe" and expiry is not None and expiry.source == "Policy"
    if expiry is not None and now >= expiry.not_after and not observe_policy:
        return True, EXPIRED, f"the value expired at {_ts(expiry.not_after)} (source: {expiry.source})"
    overdue = _overdue(strategy, expiry, now, observed, max_age)
    if overdue is not None:
        return True, ROTATION_OVERDUE, overdue
    stalled = _stalled(observed, now)
    if stalled is not None:
        return True, ROTATION_STALLED, stalled
    if expiry is not None and now >= expiry.renewal_time:
        return (
            True,
            EXPIRES_SOON,
            f"the value expires at {_ts(expiry.not_after)} (source: {expiry.source}); "
            f"renewal was due at {_ts(expiry.renewal_time)}",
        )
    if expiry is None:
        return False, VALID, "no expiry is known for this value"
    return (
        False,
        VALID,
        f"the value is valid until {_ts(expiry.not_after)} (source: {expiry.source}); "
        f"renewal at {_ts(expiry.renewal_time)}",
    )
