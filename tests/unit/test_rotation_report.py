"""rotor.rotation.report: the rotation part of the status after a successful sync, for every
situation the rotation step can leave (completed, failed, waiting for its Secret, in progress,
a failure whose cause is gone, or not), with the Events of the transitions and the next wake."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from rotor.api.status import FailureCause, Reason, RotationStatus
from rotor.conditions import get_condition, set_condition
from rotor.rotation.presets import effective_policy
from rotor.rotation.report import BLOCKED_RECHECK, RotationDone, RotationSeen, report

NOW = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
POLICY = effective_policy({"preset": "database-password", "gracePeriod": "1h"})
OBSERVE = effective_policy({"strategy": "Observe", "maxAge": "240h"})
DATA = {"password": b"new-value", "password_previous": b"old-value"}


def _rotating(status: str, reason: str, message: str = "m") -> dict[str, Any]:
    return {"conditions": set_condition([], "Rotating", status == "True", reason, message, 1, NOW)}


def seen(status: dict[str, Any] | None = None, *, writable: bool = True, data: Any = None) -> RotationSeen:
    return RotationSeen(
        now=NOW,
        generation=1,
        status=status or {},
        data=DATA if data is None else data,
        created=NOW - dt.timedelta(days=1),
        observed=None,
        store_writable=writable,
        seed="ns/app",
    )


CASES: list[tuple[str, RotationDone, RotationSeen, dict[str, Any]]] = [
    (
        "the source actions ran: the rotation completes, with a Rotated Event",
        RotationDone(
            rotation={
                "phase": "Synced",
                "trigger": "Manual",
                "startedAt": "2024-05-01T11:59:00Z",
                "token": "t",
            },
            policy=POLICY,
            advanced=True,
        ),
        seen(),
        {
            "phase": "Completed",
            "rotating": ("False", Reason.SUCCEEDED),
            "events": ["Rotated"],
            "completed": ("Generate", 60.0),
            "retained": "2024-05-01T13:00:00Z",
            "gone": ["token"],
        },
    ),
    (
        "a step failed: Rotating=False Failed, a RotationFailed Event",
        RotationDone(
            rotation={"phase": "Written", "failedAttempts": 2}, policy=POLICY, error="vault refused the write"
        ),
        seen(),
        {
            "phase": "Written",
            "rotating": ("False", Reason.FAILED),
            "events": ["RotationFailed"],
            "wake": [10, 20],
        },
    ),
    (
        "the same failure again is not announced again",
        RotationDone(rotation={"phase": "Written"}, policy=POLICY, error="vault refused the write"),
        seen(_rotating("False", Reason.FAILED, "vault refused the write")),
        {"rotating": ("False", Reason.FAILED), "events": []},
    ),
    (
        "the Secret cannot be written: Rotating=False SecretConflict, and a look again in 5 s",
        RotationDone(
            rotation={"phase": "Pending"},
            policy=POLICY,
            error="the Secret cannot be written",
            cause=FailureCause.SECRET_CONFLICT,
            blocked="label removed",
        ),
        seen(),
        {"rotating": ("False", Reason.SECRET_CONFLICT), "events": ["RotationFailed"], "wake": [5, 5]},
    ),
    (
        "a rotation in progress is Rotating=True with its trigger",
        RotationDone(rotation={"phase": "Staged", "trigger": "Scheduled"}, policy=POLICY),
        seen(),
        {"phase": "Staged", "rotating": ("True", "Scheduled"), "events": []},
    ),
    (
        "a rotation in progress does not hide a failure already reported",
        RotationDone(rotation={"phase": "Staged", "trigger": "Scheduled"}, policy=POLICY),
        seen(_rotating("False", Reason.FAILED)),
        {"rotating": ("False", Reason.FAILED)},
    ),
    (
        "a policy failure whose policy resolves now is cleared",
        RotationDone(rotation={"phase": "Failed", "failureCause": "Policy"}, policy=POLICY),
        seen(_rotating("False", Reason.FAILED)),
        {"rotating": ("False", Reason.SCHEDULED), "gone": ["failureCause"]},
    ),
    (
        "a read-only store failure stays while the store still cannot write",
        RotationDone(rotation={"phase": "Failed", "failureCause": "ReadOnlyStore"}, policy=POLICY),
        seen(_rotating("False", Reason.FAILED), writable=False),
        {"rotating": ("False", Reason.FAILED), "kept": {"failureCause": "ReadOnlyStore"}},
    ),
    (
        "a read-only store failure is cleared once the store can write",
        RotationDone(rotation={"phase": "Failed", "failureCause": "ReadOnlyStore"}, policy=POLICY),
        seen(_rotating("False", Reason.FAILED), writable=True),
        {"rotating": ("False", Reason.SCHEDULED)},
    ),
    (
        "the first report of an object that has rotated before says Succeeded",
        RotationDone(
            rotation={"phase": "Completed", "lastRotationTime": "2024-04-30T12:00:00Z"}, policy=POLICY
        ),
        seen(),
        {"rotating": ("False", Reason.SUCCEEDED)},
    ),
    (
        "the replaced version is kept through the grace period, the wake is its end",
        RotationDone(
            rotation={
                "phase": "Completed",
                "lastRotationTime": "2024-05-01T11:30:00Z",
                "previousRetainedUntil": "2024-05-01T12:30:00Z",
                "baseVersions": {"apps/db": "3"},
            },
            policy=POLICY,
        ),
        seen(),
        {"kept": {"baseVersions": {"apps/db": "3"}}, "wake": [1800, 1800]},
    ),
    (
        "after the grace period the replaced version is forgotten and the grace key goes soon",
        RotationDone(
            rotation={
                "phase": "Completed",
                "lastRotationTime": "2024-05-01T10:00:00Z",
                "previousRetainedUntil": "2024-05-01T11:00:00Z",
                "baseVersions": {"apps/db": "3"},
            },
            policy=POLICY,
        ),
        seen({"rotation": {"baseVersions": {"apps/db": "3"}}}),
        {"gone": ["baseVersions"], "wake": [1, 1]},
    ),
    (
        "Observe has no next rotation and reports the age as expiry",
        RotationDone(rotation={}, policy=OBSERVE),
        seen(data={"password": b"v"}),
        {"kept": {"nextRotationTime": None}, "expiry": "Policy"},
    ),
    (
        "without a usable policy there is no expiry",
        RotationDone(rotation={"phase": "Failed", "failureCause": "Policy"}, policy=None, error="no policy"),
        seen(),
        {"rotating": ("False", Reason.FAILED), "has_expiry": False},
    ),
]


@pytest.mark.parametrize(("name", "done", "seen_", "want"), CASES, ids=[c[0] for c in CASES])
def test_report(name: str, done: RotationDone, seen_: RotationSeen, want: dict[str, Any]) -> None:
    # the conditions the sync built from those read (readiness_conditions keeps the others)
    rep = report(done, seen_, list(seen_.status.get("conditions") or []))
    if "phase" in want:
        assert rep.rotation.get("phase") == want["phase"]
    if "rotating" in want:
        cond = get_condition(rep.conditions, "Rotating")
        assert cond is not None and (cond["status"], cond["reason"]) == want["rotating"]
        assert cond["reason"] in set(Reason) | {"Scheduled", "Manual"}
    if "events" in want:
        assert [e.reason for e in rep.events if e.reason != "Expiring"] == want["events"]
    assert rep.completed == want.get("completed")
    if "retained" in want:
        assert rep.rotation["previousRetainedUntil"] == want["retained"]
    for key in want.get("gone", []):
        # removed from what is stored: absent, or None where status had it (the merge patch)
        assert rep.rotation.get(key) is None
    for key, value in (want.get("kept") or {}).items():
        assert rep.rotation.get(key) == value
    if "wake" in want:
        low, high = want["wake"]
        assert rep.wake is not None and low <= (rep.wake - NOW).total_seconds() <= high
    if "expiry" in want:
        assert rep.expiry is not None and rep.expiry["source"] == want["expiry"]
    assert rep.has_expiry is want.get("has_expiry", True)
    RotationStatus.model_validate({k: v for k, v in rep.rotation.items() if v is not None})


def test_a_blocked_rotation_looks_again_soon() -> None:
    done = RotationDone(rotation={}, policy=POLICY, blocked="label removed")
    rep = report(done, seen(), [])
    assert rep.wake == NOW + BLOCKED_RECHECK
