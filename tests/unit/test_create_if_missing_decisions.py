"""createIfMissing, the pure parts: the RotationPolicy field and its rule, the Missing trigger in
the due-date chain, the rotation decision for a missing key, and the report of a created value (no
previous value, no grace period)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest
from pydantic import ValidationError

from rotor.api.rotationpolicy import RotationPolicySpec
from rotor.api.status import FailureCause, Reason
from rotor.providers.base import RemoteRef
from rotor.rotation.checks import RotationInputs, rotation_due
from rotor.rotation.decide import Action, RotationObserved, decide
from rotor.rotation.presets import effective_policy
from rotor.rotation.report import RotationDone, RotationSeen, report
from rotor.services.rotation import RotationContext
from rotor.services.state import Fetched
from rotor.services.sync import SyncService

NOW = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
CREATE = {"preset": "database-password", "createIfMissing": True, "gracePeriod": "1h"}


def observed(policy: dict[str, Any] | None = None, **changes: Any) -> RotationObserved:
    base = RotationObserved(
        now=NOW,
        policy=effective_policy(policy or CREATE),
        policy_problem=None,
        policy_id="RotationPolicy/policy",
        phase=None,
        # rotated yesterday: nothing is due by the schedule
        last_rotation=NOW - dt.timedelta(days=1),
        last_rotate_request=None,
        rotate_annotation=None,
        due_at_in_progress=None,
        failed_attempts=0,
        last_failure_time=None,
        created=NOW - dt.timedelta(days=1),
        expiry=None,
        seed="ns/app",
        store_id="SecretStore/ns/vault",
        read_only_store=False,
        targets_problem=None,
        secret_blocked=None,
        missing=("ns/app",),
    )
    return replace(base, **changes)


# ------------------------------------------------------------------ the decision, as a table
WINDOW_CLOSED = {**CREATE, "window": {"cron": "0 2 * * *", "duration": "1h"}}

CASES: list[tuple[str, RotationObserved, dict[str, Any]]] = [
    (
        "a missing key starts a create at once, though nothing is due",
        observed(),
        {"action": Action.START, "trigger": Reason.MISSING, "counts_as_failure": False},
    ),
    (
        "without createIfMissing a missing key starts nothing",
        observed({"preset": "database-password"}),
        {"action": Action.NOTHING},
    ),
    ("nothing missing: nothing due", observed(missing=()), {"action": Action.NOTHING}),
    (
        "a closed rotation window does not hold a create",
        observed(WINDOW_CLOSED),
        {"action": Action.START, "trigger": Reason.MISSING},
    ),
    (
        "a past failure's back-off holds a create",
        observed(failed_attempts=1, last_failure_time=NOW - dt.timedelta(seconds=1), phase="Failed"),
        {"action": Action.NOTHING},
    ),
    (
        "after the back-off it is tried again",
        observed(failed_attempts=1, last_failure_time=NOW - dt.timedelta(hours=1), phase="Failed"),
        {"action": Action.START, "trigger": Reason.MISSING},
    ),
    (
        "a create in progress resumes (never a second one)",
        observed(phase="Pending", due_at_in_progress=NOW - dt.timedelta(minutes=1)),
        {"action": Action.RESUME},
    ),
    (
        "read-only credentials refuse the create (Forbidden for the sync)",
        observed(read_only_store=True),
        {"action": Action.REFUSE, "cause": FailureCause.READ_ONLY_STORE, "counts_as_failure": True},
    ),
    (
        "a path the credentials cannot write refuses it, naming the capability",
        observed(write_denied="Vault token lacks 'create' on secret/data/ns/app"),
        {"action": Action.REFUSE, "cause": FailureCause.READ_ONLY_STORE, "message": "lacks 'create'"},
    ),
    (
        "a store that cannot create without overwriting refuses it",
        observed(create_problem="the store cannot create a missing key"),
        {"action": Action.REFUSE, "cause": FailureCause.SPEC, "message": "cannot create"},
    ),
    (
        "a Secret that cannot be written holds the create back: nothing at the source",
        observed(secret_blocked="Secret 'app' is not managed by Rotor"),
        {"action": Action.WAIT_FOR_SECRET, "cause": FailureCause.SECRET_CONFLICT},
    ),
    (
        "a manual request beside a missing key is answered by the create",
        observed(rotate_annotation="r1"),
        {"action": Action.START, "trigger": Reason.MISSING, "answers_request": True},
    ),
]


@pytest.mark.parametrize(("name", "seen_", "want"), CASES, ids=[c[0] for c in CASES])
def test_decide_for_a_missing_key(name: str, seen_: RotationObserved, want: dict[str, Any]) -> None:
    plan = decide(seen_)
    message = want.pop("message", None)
    for field, value in want.items():
        assert getattr(plan, field) == value, f"{name}: {field} is {getattr(plan, field)!r}"
    if message is not None:
        assert plan.message is not None and message in plan.message, plan.message


def test_the_create_problem_matters_only_for_a_create() -> None:
    """A store that cannot create still rotates an existing value on schedule."""
    due = observed(missing=(), create_problem="cannot create", last_rotation=NOW - dt.timedelta(days=60))
    plan = decide(due)
    assert plan.action == Action.START and plan.trigger == Reason.SCHEDULED


def test_missing_comes_first_in_the_chain() -> None:
    """A schedule that is also due does not make the create a Scheduled rotation."""
    inputs = RotationInputs(
        policy=effective_policy(CREATE),
        now=NOW,
        last_rotation=NOW - dt.timedelta(days=60),
        created=NOW - dt.timedelta(days=60),
        missing=("ns/app",),
    )
    decision = rotation_due(inputs)
    assert decision.trigger == Reason.MISSING and decision.due_at == NOW and decision.act_now


# ------------------------------------------------------------------ the model
def test_create_if_missing_needs_strategy_generate() -> None:
    RotationPolicySpec.model_validate(CREATE)
    RotationPolicySpec.model_validate({"strategy": "Observe", "maxAge": "240h", "createIfMissing": False})
    with pytest.raises(ValidationError, match="createIfMissing needs strategy Generate"):
        RotationPolicySpec.model_validate({"strategy": "Observe", "maxAge": "240h", "createIfMissing": True})


def test_the_crd_carries_the_rule() -> None:
    schema = RotationPolicySpec.model_json_schema(by_alias=True)
    rules = [r["rule"] for r in schema.get("x-kubernetes-validations", [])]
    assert any("createIfMissing" in r and "Generate" in r for r in rules), rules
    assert "createIfMissing" in schema["properties"]


def test_the_effective_policy_creates_only_under_generate() -> None:
    assert effective_policy(CREATE).create_if_missing
    assert not effective_policy({"preset": "database-password"}).create_if_missing


# ------------------------------------------------------------------ the report
def test_a_created_value_completes_without_a_grace_period() -> None:
    done = RotationDone(
        rotation={"phase": "Synced", "trigger": "Missing", "startedAt": "2024-05-01T11:59:00Z", "token": "t"},
        policy=effective_policy(CREATE),
        advanced=True,
    )
    seen = RotationSeen(
        now=NOW,
        generation=1,
        status={},
        data={"password": b"created"},
        created=NOW,
        observed=None,
        store_writable=True,
        seed="ns/app",
    )
    out = report(done, seen, [])
    assert out.rotation["phase"] == "Completed"
    assert out.rotation.get("previousRetainedUntil") is None, "nothing was replaced: no grace period"
    rotating = next(c for c in out.conditions if c["type"] == "Rotating")
    assert rotating["reason"] == Reason.SUCCEEDED and "Missing" in rotating["message"]
    # the control: the same rotation with another trigger keeps the previous value for 1h
    manual = report(replace(done, rotation={**done.rotation, "trigger": "Manual"}), seen, [])
    assert manual.rotation["previousRetainedUntil"] == "2024-05-01T13:00:00Z"


# ------------------------------------------------------------------ what the sync reports
def _fetched_missing() -> Fetched:
    return Fetched(missing={RemoteRef("ns/app")})


def test_a_denied_create_is_forbidden_and_says_what_to_grant() -> None:
    denied = RotationContext(
        rotation={}, error="grant secretsmanager:CreateSecret to the store's credentials", forbidden=True
    )
    failure = SyncService._not_created({"status": {}}, _fetched_missing(), denied)
    assert failure.reason == "Forbidden"
    assert "'ns/app' does not exist" in failure.message and "secretsmanager:CreateSecret" in failure.message


def test_a_create_not_done_yet_is_key_not_found_with_why() -> None:
    kv1 = RotationContext(rotation={}, error="KV v1 has no check-and-set")
    failure = SyncService._not_created({"status": {}}, _fetched_missing(), kv1)
    assert failure.reason == "KeyNotFound" and "KV v1 has no check-and-set" in failure.message
    # waiting out the back-off of a denied create: still Forbidden, with the message people saw
    status = {
        "conditions": [{"type": "Ready", "status": "False", "reason": "Forbidden", "message": "grant create"}]
    }
    waiting = SyncService._not_created({"status": status}, _fetched_missing(), RotationContext(rotation={}))
    assert (waiting.reason, waiting.message) == ("Forbidden", "grant create")
    fresh = SyncService._not_created({"status": {}}, _fetched_missing(), RotationContext(rotation={}))
    assert fresh.reason == "KeyNotFound" and "retried with back-off" in fresh.message
