"""What a sync reports (pure): from what was gathered and what the Secret write did, to the status
patch (or none), the Events of the transitions and when to come back.

``decide_synced`` after a sync that reached the Secret:

- status: observedGeneration, secretName, sourceVersions, dataHash, lastForceSync (a force-sync
  request answered), lastSyncTime (only when the data changed, or never set), nextRefreshTime,
  the rotation report's fields (a rotation spec) or the expiry of a certificate found in the data
  or of a lease (none), ``lease`` for dynamic credentials (cleared when the spec has none any
  more), and the conditions: Ready=True Synced, or Ready=False Expired for a certificate past
  notAfter;
- no status write when nothing but the refresh times would change and the object was Ready;
- Events: ``Synced`` when the Secret was written (or restored after a change outside Rotor), or
  when the object becomes Ready without a write; ``CredentialsIssued`` when a lease's credentials
  were replaced (or first issued); then the rotation's and the expiry's Events.

``decide_failed`` after a sync that failed (the last good Secret is kept):

- Ready=False with the failure's reason and message; Rotating=False SecretConflict when a
  rotation waits for its Secret, or Rotating=False with the sync's reason when a new rotate
  request cannot proceed (``request_waits``);
- Events: ``RotationFailed`` (the Secret conflict is new), ``RotationWaiting`` (new), and
  ``SyncFailed`` on a transition of Ready (a repeated failure is not re-announced);
- the next attempt after the back-off, or none for a failure retrying cannot fix.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rotor.api.status import PlannedEvent, Reason
from rotor.clock import format_time, parse_time
from rotor.conditions import STALLED_REASONS, get_condition, readiness_conditions, set_condition
from rotor.rotation.backoff import retry_delay
from rotor.rotation.checks import expiring_condition
from rotor.rotation.expiry import compute_expiry
from rotor.rotation.phases import in_progress
from rotor.rotation.report import RotationDone, RotationReport, RotationSeen, report
from rotor.sync.lease import LeaseReport, lead
from rotor.sync.lease import wake as lease_wake

#: back-off of a failed sync: from about 2 s, doubling, at most 2 minutes
SYNC_RETRY_BASE = dt.timedelta(seconds=2)
SYNC_RETRY_CAP = dt.timedelta(seconds=120)

#: sync failures that a rotate request cannot wait out: the store is missing or not Ready, or the
#: failure needs a person (conditions.STALLED_REASONS). A transient backend failure (Unreachable,
#: ProviderError, a key not there yet) keeps the request: the rotation runs when the source answers.
REFUSING_REASONS = frozenset({Reason.STORE_NOT_READY, Reason.STORE_NOT_FOUND}) | STALLED_REASONS


@dataclass(frozen=True)
class Synced:
    """A sync that reached the Secret: what was gathered and what the write did."""

    now: dt.datetime
    generation: int
    #: status as read
    status: Mapping[str, Any]
    #: the rotor.dev/force-sync annotation, if any
    force: str | None
    secret_name: str
    #: the Secret's data as written (certificate expiry is read from it)
    data: Mapping[str, bytes]
    data_hash: str
    source_versions: Mapping[str, str]
    written: bool
    restored: bool
    next_refresh: dt.datetime | None
    #: the rotation step's outcome and what it looks at, when the spec has a rotation
    rotation: tuple[RotationDone, RotationSeen] | None
    has_rotation_spec: bool
    #: the dynamic source's lease after this sync (dataFrom.vaultDynamic), if the spec has one
    lease: LeaseReport | None = None


@dataclass(frozen=True)
class Failed:
    """A sync that failed, and the rotation step's state when it failed."""

    now: dt.datetime
    generation: int
    status: Mapping[str, Any]
    force: str | None
    reason: str
    message: str
    #: whether retrying can help (an invalid spec waits for a new generation)
    retry: bool
    #: consecutive failures, this one included (the back-off grows with it)
    attempts: int
    seed: str
    #: a rotation that would have written the source waits for its Secret: why (never a value)
    rotation_blocked: str | None = None
    #: a new rotate request is held up by this failure (see ``request_waits``)
    request_waits: bool = False


@dataclass(frozen=True)
class StatusPlan:
    #: the status merge patch; None writes nothing
    status: dict[str, Any] | None
    events: tuple[PlannedEvent, ...]
    next_at: dt.datetime | None
    ready: bool
    reason: str
    #: the object just became failing with this reason (log it once)
    transition: bool = False
    #: the rotation part of a successful sync (its completion is counted by the service)
    rotation: RotationReport | None = None


def decide_synced(s: Synced) -> StatusPlan:
    now, generation = s.now, s.generation
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "secretName": s.secret_name,
        "sourceVersions": dict(s.source_versions),
        "dataHash": s.data_hash,
    }
    if s.force:
        status["lastForceSync"] = s.force
    if s.written or s.status.get("dataHash") != s.data_hash or not s.status.get("lastSyncTime"):
        status["lastSyncTime"] = format_time(now)
    next_at = s.next_refresh
    status["nextRefreshTime"] = format_time(next_at) if next_at else None
    conditions = readiness_conditions(
        s.status.get("conditions") or [],
        ready=True,
        reason=Reason.SYNCED,
        message=f"Secret {s.secret_name} matches the source",
        generation=generation,
        now=now,
    )
    later: list[PlannedEvent] = []
    rotated: RotationReport | None = None
    if s.lease is not None:
        leased = s.lease.lease
        status["lease"] = leased.status()
        next_at = _earliest(next_at, lease_wake(leased, s.lease.renew_percent, now))
        if s.lease.issued is not None:
            kept = (
                f"; the previous credentials stay in the Secret as <key>{s.lease.suffix} until "
                f"{format_time(leased.previous.expires_at)}"
                if leased.previous is not None and leased.previous.expires_at is not None
                else ""
            )
            later.append(
                PlannedEvent(
                    "Normal",
                    "CredentialsIssued",
                    f"new credentials from {leased.path} (lease {leased.id}): {s.lease.issued}{kept}",
                    "Lease",
                )
            )
    elif s.status.get("lease"):
        status["lease"] = None
    if s.rotation is not None:
        rotated = report(*s.rotation, conditions)
        conditions = rotated.conditions
        status["rotation"] = rotated.rotation
        if rotated.has_expiry:
            status["expiry"] = rotated.expiry
        later += rotated.events
        next_at = _earliest(next_at, rotated.wake)
    elif not s.has_rotation_spec:
        expiry, conditions, wake, event = certificate_expiry(s, conditions)
        status["expiry"] = expiry
        if event is not None:
            later.append(event)
        next_at = _earliest(next_at, wake)
    conditions = expired_certificate(status, conditions, generation, now, s.secret_name)
    status["conditions"] = conditions
    ready = get_condition(conditions, "Ready") or {}
    is_ready = ready.get("status") == "True"
    was_ready = (get_condition(s.status.get("conditions"), "Ready") or {}).get("status") == "True"
    outcome = str(ready.get("reason") or Reason.SYNCED)
    if not s.written and same(s.status, status, ignore=("nextRefreshTime", "lastSyncTime")):
        # only what a user needs: an unchanged refresh writes nothing (nor does a certificate that
        # stays expired announce itself again)
        return StatusPlan(None, (), next_at, is_ready, outcome, rotation=rotated)
    events: list[PlannedEvent] = []
    if s.written:
        note = (
            f"Secret {s.secret_name} restored: it had been changed outside Rotor"
            if s.restored
            else f"Secret {s.secret_name} written ({len(s.data)} keys)"
        )
        events.append(PlannedEvent("Normal", "Synced", note, "Sync"))
    elif is_ready and not was_ready:
        events.append(PlannedEvent("Normal", "Synced", f"Secret {s.secret_name} matches the source", "Sync"))
    return StatusPlan(status, (*events, *later), next_at, is_ready, outcome, rotation=rotated)


def decide_failed(f: Failed) -> StatusPlan:
    now, generation = f.now, f.generation
    old = f.status.get("conditions")
    conditions = readiness_conditions(
        old or [], ready=False, reason=f.reason, message=f.message, generation=generation, now=now
    )
    old_rotating = get_condition(old, "Rotating") or {}
    events: list[PlannedEvent] = []
    if f.rotation_blocked is not None:
        conditions = set_condition(
            conditions, "Rotating", False, Reason.SECRET_CONFLICT, f.rotation_blocked, generation, now
        )
        if old_rotating.get("reason") != Reason.SECRET_CONFLICT:
            events.append(PlannedEvent("Warning", "RotationFailed", f.rotation_blocked, "Rotate"))
    if f.request_waits:
        # told now (Rotating=False with the sync's reason), not left silent until the cause is
        # fixed; the request stays pending (kubectl annotate and `rotor rotate --no-wait` are
        # fire-and-forget), and `rotor rotate` withdraws its own
        conditions = set_condition(
            conditions,
            "Rotating",
            False,
            f.reason,
            f"the rotate request waits: the ManagedSecret cannot sync ({f.reason}: {f.message}). "
            "Nothing was written to the source; it rotates once the sync succeeds (remove the "
            "rotor.dev/rotate annotation to cancel it)",
            generation,
            now,
        )
        if old_rotating.get("reason") != f.reason:
            events.append(
                PlannedEvent(
                    "Warning",
                    "RotationWaiting",
                    f"the rotate request waits: {f.reason}: {f.message}",
                    "Rotate",
                )
            )
    status: dict[str, Any] = {"observedGeneration": generation, "conditions": conditions}
    if f.force:
        status["lastForceSync"] = f.force
    old_ready = get_condition(old, "Ready") or {}
    transition = old_ready.get("status") != "False" or old_ready.get("reason") != f.reason
    if transition:
        events.append(PlannedEvent("Warning", "SyncFailed", f"{f.reason}: {f.message}", "Sync"))
    next_at = (
        now + retry_delay(f.attempts, base=SYNC_RETRY_BASE, cap=SYNC_RETRY_CAP, seed=f.seed)
        if f.retry
        else None
    )
    return StatusPlan(
        None if same(f.status, status) else status,
        tuple(events),
        next_at,
        False,
        f.reason,
        transition=transition,
    )


def request_waits(
    *,
    reason: str,
    has_rotation_spec: bool,
    rotate_annotation: str | None,
    rotation: Mapping[str, Any],
    advanced: bool,
    blocked: bool,
) -> bool:
    """Whether a new rotate request is held up by a sync failure it cannot wait out quickly
    (``REFUSING_REASONS``), before the rotation acted: not a transient failure, not a rotation in
    progress (it resumes), not one that waits for its Secret (SecretConflict, said by the rotation).
    ``rotation`` is status.rotation as the rotation step left it (or as read)."""
    if reason not in REFUSING_REASONS or not has_rotation_spec:
        return False
    if (
        not rotate_annotation
        or rotate_annotation == rotation.get("lastRotateRequest")
        or in_progress(rotation.get("phase"))
    ):
        return False
    return not (advanced or blocked)


def certificate_expiry(
    s: Synced, conditions: list[dict[str, Any]]
) -> tuple[dict[str, str | None] | None, list[dict[str, Any]], dt.datetime | None, PlannedEvent | None]:
    """Without a rotation policy, expiry still comes from certificates found in the data and from
    the lease of dynamic credentials (renewal due ``lead`` before its end): status.expiry, the
    Expiring condition, when to look again, and the Event of a transition."""
    leased = s.lease.lease if s.lease is not None else None
    expiry = compute_expiry(
        data=s.data,
        last_rotation=None,
        source_created=None,
        max_age=None,
        rotate_before=lead(leased, s.lease.renew_percent) if s.lease is not None and leased else None,
        provider_expiry=leased.expires_at if leased is not None else None,
    )
    if expiry is None:
        return None, [c for c in conditions if c.get("type") != "Expiring"], None, None
    shown = {
        "notAfter": format_time(expiry.not_after),
        "source": expiry.source,
        "renewalTime": format_time(expiry.renewal_time),
    }
    expiring, reason, message = expiring_condition(strategy="Sync", expiry=expiry, now=s.now, observed=None)
    old = get_condition(s.status.get("conditions"), "Expiring") or {}
    conditions = set_condition(conditions, "Expiring", expiring, reason, message, s.generation, s.now)
    event = None
    if expiring and (old.get("status") != "True" or old.get("reason") != reason):
        event = PlannedEvent("Warning", "Expiring", message, "Observe")
    wake = expiry.renewal_time if expiry.renewal_time > s.now else expiry.not_after
    return shown, conditions, wake if wake > s.now else None, event


def expired_certificate(
    status: Mapping[str, Any],
    conditions: list[dict[str, Any]],
    generation: int,
    now: dt.datetime,
    target: str,
) -> list[dict[str, Any]]:
    """A certificate past its notAfter is not usable: Ready=False, reason Expired (the Secret still
    holds what the source holds)."""
    expiry = status.get("expiry") or {}
    not_after = parse_time(expiry.get("notAfter"))
    if expiry.get("source") == "Certificate" and not_after is not None and not_after <= now:
        return readiness_conditions(
            conditions,
            ready=False,
            reason=Reason.EXPIRED,
            message=f"the certificate in Secret {target} expired at {format_time(not_after)}; "
            "renew it at the source",
            generation=generation,
            now=now,
        )
    return conditions


def same(old: Mapping[str, Any], new: Mapping[str, Any], ignore: tuple[str, ...] = ()) -> bool:
    """Whether writing ``new`` would change nothing in ``old`` (condition times aside)."""
    for key, value in new.items():
        if key in ignore:
            continue
        if key == "conditions":
            if _strip_times(old.get("conditions")) != _strip_times(value):
                return False
        elif old.get(key) != value:
            return False
    return True


def _strip_times(conditions: Any) -> list[dict[str, Any]]:
    return [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in conditions or []]


def _earliest(a: dt.datetime | None, b: dt.datetime | None) -> dt.datetime | None:
    if a is None:
        return b
    return a if b is None or a <= b else b


__all__ = [
    "REFUSING_REASONS",
    "Failed",
    "StatusPlan",
    "Synced",
    "decide_failed",
    "decide_synced",
    "request_waits",
    "same",
]
