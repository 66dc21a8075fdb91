"""rotor.rotation.decide from the golden table tests/unit/golden/rotation_decide.yaml: every
situation a reconcile can meet, and the one action it must take."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from rotor.api.status import FailureCause, Reason
from rotor.rotation.decide import Action, RotationObserved, decide
from rotor.rotation.errors import RotationError
from rotor.rotation.presets import effective_policy

GOLDEN = yaml.safe_load((Path(__file__).parent / "golden" / "rotation_decide.yaml").read_text())
NOW = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)


def _time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def observed(case: dict[str, Any]) -> RotationObserved:
    merged = {**GOLDEN["defaults"], **case}
    spec = merged["policy"]
    policy, problem = None, "RotationPolicy 'policy' does not exist in namespace ns"
    if spec is not None:
        try:
            policy, problem = effective_policy(spec), None
        except RotationError as err:
            problem = err.message
    return RotationObserved(
        now=NOW,
        policy=policy,
        policy_problem=problem,
        policy_id="RotationPolicy/policy",
        phase=merged["phase"],
        last_rotation=_time(merged["last_rotation"]),
        last_rotate_request=merged["last_rotate_request"],
        rotate_annotation=merged["rotate_annotation"],
        due_at_in_progress=_time(merged["due_at_in_progress"]),
        failed_attempts=merged["failed_attempts"],
        last_failure_time=_time(merged["last_failure_time"]),
        created=_time(merged["created"]) or NOW,
        expiry=None,
        seed="ns/app",
        store_id="SecretStore/ns/vault",
        read_only_store=merged["read_only_store"],
        targets_problem=merged["targets_problem"],
        secret_blocked=merged["secret_blocked"],
        write_denied=merged.get("write_denied"),
    )


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=[c["name"] for c in GOLDEN["cases"]])
def test_decide(case: dict[str, Any]) -> None:
    plan = decide(observed(case))
    expect = dict(case["expect"])
    deferred = expect.pop("deferred", None)
    for field, want in expect.items():
        got = getattr(plan, field)
        assert got == want, f"{case['name']}: {field} is {got!r}, expected {want!r}"
    if deferred is not None:
        assert (plan.defer_until is not None and plan.defer_until > NOW) is deferred
    if "message" in case:
        assert plan.message is not None and case["message"] in plan.message
    if plan.action in (Action.REFUSE, Action.WAIT_FOR_SECRET):
        assert plan.cause in set(FailureCause) and plan.message
    else:
        assert plan.message is None


def test_the_table_covers_every_action_and_cause() -> None:
    plans = [decide(observed(c)) for c in GOLDEN["cases"]]
    assert {p.action for p in plans} == set(Action)
    assert {p.cause for p in plans if p.cause is not None} == set(FailureCause) - {FailureCause.SOURCE}


def test_start_triggers_are_rotating_reasons() -> None:
    for case in GOLDEN["cases"]:
        plan = decide(observed(case))
        if plan.trigger is not None:
            assert plan.trigger in {r.value for r in Reason}
