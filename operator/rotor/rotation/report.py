"""What a reconcile reports about rotation once the Secret holds what the source holds (pure): from
the rotation step's outcome (``RotationDone``: status.rotation as the step left it, the policy, an
error, whether the source actions ran) and what the sync gathered (the data, what the source says
about the value's age, now) to status.rotation, status.expiry, the Rotating and Expiring
conditions, the Events of the transitions and the next wake-up. The service posts the Events and
counts the metrics; nothing here does I/O.

The Rotating condition, in order:

1. a rotation in progress whose source actions ran, without error -> Completed, Rotating=False
   Succeeded, a ``Rotated`` Event
2. an error -> Rotating=False, SecretConflict (the Secret cannot be written) or Failed, and a
   ``RotationFailed`` Event when the reason or message changed
3. a rotation in progress -> Rotating=True with its trigger; a failure already reported stays
   until the rotation completes (it is retrying after a back-off)
4. no condition yet, or, with no rotation in progress, a reported failure whose cause is gone ->
   Rotating=False, Succeeded (a rotation ran before) or Scheduled
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rotor.api.status import FailureCause, PlannedEvent, Reason, RotationPhase
from rotor.clock import format_time, parse_time
from rotor.conditions import get_condition, set_condition
from rotor.rotation.backoff import retry_delay
from rotor.rotation.checks import ObservedState, expiring_condition
from rotor.rotation.errors import RotationError
from rotor.rotation.expiry import compute_expiry
from rotor.rotation.phases import in_progress, retained_until
from rotor.rotation.presets import EffectivePolicy
from rotor.rotation.schedule import next_rotation, runnable_at

FAILED = RotationPhase.FAILED.value
#: a rotation that waited for its Secret to become writable looks again this soon
BLOCKED_RECHECK = dt.timedelta(seconds=5)
#: retrying a rotation step that failed mid-way: from about 10 s, doubling, at most 5 minutes
RESUME_RETRY_BASE = dt.timedelta(seconds=10)
RESUME_RETRY_CAP = dt.timedelta(seconds=300)
#: when a due rotation did not run and nothing says when to look again
DUE_RECHECK = dt.timedelta(seconds=30)


@dataclass(frozen=True)
class RotationDone:
    """What the rotation step of this reconcile left (before the Secret write)."""

    #: status.rotation as the step left it (camelCase keys)
    rotation: Mapping[str, Any]
    policy: EffectivePolicy | None
    #: why the rotation failed or waits (never a value)
    error: str | None = None
    cause: FailureCause | None = None
    #: the source actions of this reconcile ran (the source holds the new value)
    advanced: bool = False
    defer_until: dt.datetime | None = None
    retain_until: dt.datetime | None = None
    #: why the Secret cannot be written; None when it can
    blocked: str | None = None
    #: retiring the versions the rotation replaced failed (``RetiresVersions``): keep
    #: ``baseVersions`` so that the next sync retires them again
    retire_failed: bool = False


@dataclass(frozen=True)
class RotationSeen:
    """What the sync gathered that the report looks at."""

    now: dt.datetime
    generation: int
    #: status as read (its conditions and rotation decide transitions)
    status: Mapping[str, Any]
    #: the Secret's data as written (grace keys included)
    data: Mapping[str, bytes]
    #: where the value's age counts from before its first rotation
    created: dt.datetime
    #: the backend's own view of the value (strategy Observe only)
    observed: ObservedState | None
    #: the store can write now (a ReadOnlyStore failure's cause is gone)
    store_writable: bool
    #: spreads back-off retries (the object's namespace/name)
    seed: str
    #: the earliest expiry the backend gave a value read (Azure ``exp``), if any
    provider_expiry: dt.datetime | None = None


@dataclass(frozen=True)
class RotationReport:
    #: status.rotation to write (a key set to None is removed by the merge patch)
    rotation: dict[str, Any]
    conditions: list[dict[str, Any]]
    #: status.expiry (None clears it), written only when ``has_expiry`` (a policy resolved)
    expiry: dict[str, str | None] | None
    has_expiry: bool
    events: tuple[PlannedEvent, ...]
    wake: dt.datetime | None
    #: the rotation completed in this reconcile: its strategy and duration in seconds
    completed: tuple[str, float | None] | None = None
    #: the source versions a completed rotation replaced, dropped now that its grace period is
    #: over (``baseVersions``): the service retires them before the status forgets them
    released: dict[str, str] = field(default_factory=dict)


def report(done: RotationDone, seen: RotationSeen, conditions: list[dict[str, Any]]) -> RotationReport:
    """The rotation part of the status after a successful sync (see the module docstring)."""
    now, generation = seen.now, seen.generation
    rot = dict(done.rotation)
    policy = done.policy
    error = done.error
    old_rotating = get_condition(seen.status.get("conditions"), "Rotating") or {}
    events: list[PlannedEvent] = []
    wake: list[dt.datetime] = []
    completed: tuple[str, float | None] | None = None
    running = in_progress(rot.get("phase"))
    if running and error is None and policy is not None and done.advanced:
        rot["phase"] = RotationPhase.COMPLETED.value
        rot["lastRotationTime"] = format_time(now)
        rot["failedAttempts"] = 0
        rot["lastFailureTime"] = None
        rot["failureCause"] = None
        # a created value (createIfMissing, trigger Missing) replaced nothing: no grace period
        created = rot.get("trigger") == Reason.MISSING
        until = None if created else done.retain_until or retained_until(now, policy.grace_period)
        rot["previousRetainedUntil"] = format_time(until) if until else None
        started = parse_time(rot.get("startedAt"))
        completed = (policy.strategy, max(0.0, (now - started).total_seconds()) if started else None)
        conditions = set_condition(
            conditions,
            "Rotating",
            False,
            Reason.SUCCEEDED,
            f"rotated ({rot.get('trigger')}); the Secret holds the new value",
            generation,
            now,
        )
        events.append(
            PlannedEvent("Normal", "Rotated", f"rotation ({rot.get('trigger')}) completed", "Rotate")
        )
    elif error is not None:
        reason = Reason.SECRET_CONFLICT if done.cause == FailureCause.SECRET_CONFLICT else Reason.FAILED
        conditions = set_condition(conditions, "Rotating", False, reason, error, generation, now)
        if old_rotating.get("reason") != reason or old_rotating.get("message") != error:
            events.append(PlannedEvent("Warning", "RotationFailed", error, "Rotate"))
    elif running and old_rotating.get("reason") not in (Reason.FAILED, Reason.SECRET_CONFLICT):
        conditions = set_condition(
            conditions,
            "Rotating",
            True,
            rot.get("trigger") or "Scheduled",
            f"rotation in progress (phase {rot.get('phase')})",
            generation,
            now,
        )
    elif not old_rotating or (
        not running
        and old_rotating.get("reason") in (Reason.FAILED, Reason.SECRET_CONFLICT)
        and (rot.get("phase") != FAILED or cause_gone(rot, done, seen.store_writable))
    ):
        rot["failureCause"] = None
        conditions = set_condition(
            conditions,
            "Rotating",
            False,
            Reason.SUCCEEDED if rot.get("lastRotationTime") else Reason.SCHEDULED,
            "no rotation in progress",
            generation,
            now,
        )
    expiry: dict[str, str | None] | None = None
    if policy is not None:
        expiry, conditions, more, expiring_event = _expiry_and_schedule(done, seen, rot, policy, conditions)
        wake += more
        if expiring_event is not None:
            events.append(expiring_event)
    if done.blocked is not None:
        wake.append(now + BLOCKED_RECHECK)
    if error is not None and running and in_progress(rot.get("phase")):
        failed = int(rot.get("failedAttempts") or 1)
        wake.append(now + retry_delay(failed, base=RESUME_RETRY_BASE, cap=RESUME_RETRY_CAP, seed=seen.seed))
    released: dict[str, str] = {}
    if not in_progress(rot.get("phase")):
        rot.pop("token", None)
        retain = parse_time(rot.get("previousRetainedUntil"))
        if retain is None or retain <= now:
            # kept through the grace period: the previous value's source
            bases = rot.pop("baseVersions", None)
            if bases and rot.get("phase") == RotationPhase.COMPLETED:
                if done.retire_failed:
                    rot["baseVersions"] = bases  # retired at the next sync
                else:
                    released = {str(k): str(v) for k, v in bases.items()}
    rot = {k: v for k, v in rot.items() if v is not None}
    for gone in set(seen.status.get("rotation") or {}) - set(rot):
        rot[gone] = None  # removed from what is stored by the merge patch
    future = [w for w in wake if w > now - dt.timedelta(seconds=1)]
    return RotationReport(
        rotation=rot,
        conditions=conditions,
        expiry=expiry,
        has_expiry=policy is not None,
        events=tuple(events),
        wake=min(future) if future else None,
        completed=completed,
        released=released,
    )


def cause_gone(rot: Mapping[str, Any], done: RotationDone, store_writable: bool) -> bool:
    """Whether the recorded cause of the failure that kept a rotation from starting has been fixed
    since: the policy resolves and is valid now, the store can write now, or the Secret can be
    written now."""
    cause = rot.get("failureCause")
    if done.policy is None:
        return False
    if cause == FailureCause.POLICY:
        return True
    if cause == FailureCause.READ_ONLY_STORE:
        # a store that judges per path can only tell at the next attempt (after its back-off)
        return store_writable
    return cause == FailureCause.SECRET_CONFLICT and done.blocked is None


def _expiry_and_schedule(
    done: RotationDone,
    seen: RotationSeen,
    rot: dict[str, Any],
    policy: EffectivePolicy,
    conditions: list[dict[str, Any]],
) -> tuple[dict[str, str | None] | None, list[dict[str, Any]], list[dt.datetime], PlannedEvent | None]:
    """status.expiry, the Expiring condition and nextRotationTime (set in ``rot``); the wake-up
    times and the Expiring Event of a transition."""
    now = seen.now
    wake: list[dt.datetime] = []
    last = parse_time(rot.get("lastRotationTime"))
    observe = policy.strategy == "Observe"
    observed = seen.observed if observe else None
    computed = compute_expiry(
        data={k: v for k, v in seen.data.items() if not k.endswith(policy.previous_key_suffix)},
        last_rotation=last if not observe else None,
        source_created=(observed.last_changed if observed else None) or seen.created,
        max_age=policy.max_age,
        rotate_before=policy.rotate_before,
        provider_expiry=seen.provider_expiry,
    )
    expiry: dict[str, str | None] | None = None
    if computed is not None:
        expiry = {
            "notAfter": format_time(computed.not_after),
            "source": computed.source,
            "renewalTime": format_time(computed.renewal_time),
        }
        if computed.renewal_time > now:
            wake.append(computed.renewal_time)
        elif computed.not_after > now:
            wake.append(computed.not_after)
    expiring, reason, message = expiring_condition(
        strategy=policy.strategy, expiry=computed, now=now, observed=observed, max_age=policy.max_age
    )
    old_expiring = get_condition(seen.status.get("conditions"), "Expiring") or {}
    conditions = set_condition(conditions, "Expiring", expiring, reason, message, seen.generation, now)
    event = None
    if expiring and (old_expiring.get("status") != "True" or old_expiring.get("reason") != reason):
        event = PlannedEvent("Warning", "Expiring", message, "Observe")
    try:
        nxt = next_rotation(policy, last_rotation=last, created=seen.created, now=now)
    except RotationError:
        nxt = None
    if policy.strategy in ("Generate", "Provider") and computed is not None:
        try:
            renewal = runnable_at(policy, computed.renewal_time, now)  # windows gate renewals too
        except RotationError:
            renewal = computed.renewal_time
        nxt = renewal if nxt is None else min(nxt, renewal)
    if observe:
        nxt = None
    rot["nextRotationTime"] = format_time(nxt) if nxt else None
    if nxt is not None and nxt > now:
        wake.append(nxt)
    elif nxt is not None and not done.defer_until and not done.error:
        wake.append(now + DUE_RECHECK)  # due, yet nothing ran: look again soon (never a tight loop)
    retain = parse_time(rot.get("previousRetainedUntil"))
    if retain is not None:
        if retain > now:
            wake.append(retain)
        elif any(k.endswith(policy.previous_key_suffix) for k in seen.data):
            wake.append(now + dt.timedelta(seconds=1))
    if done.defer_until:
        wake.append(done.defer_until)
    return expiry, conditions, wake, event


__all__ = ["RotationDone", "RotationReport", "RotationSeen", "cause_gone", "report"]
