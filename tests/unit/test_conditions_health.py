"""The health rule (conditions.py): which reasons need a person (Stalled) and which are transient
(Reconciling), the same for every kind; docs/gitops.md's table states the same rule."""

from __future__ import annotations

import datetime as dt
import pathlib
import re

from rotor.clock import format_time
from rotor.conditions import STALLED_AFTER, STALLED_REASONS, get_condition, is_stalled, readiness_conditions

NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def status_of(conds: list[dict[str, object]]) -> dict[str, object]:
    return {c["type"]: (c["status"], c["reason"]) for c in conds}


def test_reasons_that_need_a_person_stall_at_once() -> None:
    for reason in ("InvalidSpec", "AuthFailed", "Forbidden", "SecretConflict", "ValidationFailed", "Expired"):
        assert reason in STALLED_REASONS
        conds = readiness_conditions([], ready=False, reason=reason, message="m", generation=3, now=NOW)
        assert status_of(conds) == {
            "Ready": ("False", reason),
            "Stalled": ("True", reason),
            "Reconciling": ("False", reason),
        }


def test_transient_reasons_are_reconciling() -> None:
    for reason in (
        "Unreachable",
        "ProviderError",
        "StoreNotReady",
        "StoreNotFound",
        "KeyNotFound",
        "Conflict",
    ):
        conds = readiness_conditions([], ready=False, reason=reason, message="m", generation=1, now=NOW)
        assert status_of(conds)["Stalled"][0] == "False", reason
        assert status_of(conds)["Reconciling"] == ("True", reason), reason


def test_a_missing_key_stalls_once_it_has_been_missing_past_the_bound() -> None:
    bound = STALLED_AFTER["KeyNotFound"]
    first = readiness_conditions([], ready=False, reason="KeyNotFound", message="m", generation=1, now=NOW)
    later = readiness_conditions(
        first, ready=False, reason="KeyNotFound", message="m", generation=1, now=NOW + bound / 2
    )
    assert status_of(later)["Reconciling"][0] == "True"
    past = readiness_conditions(
        later, ready=False, reason="KeyNotFound", message="m", generation=1, now=NOW + bound
    )
    assert status_of(past)["Stalled"] == ("True", "KeyNotFound")
    assert status_of(past)["Reconciling"][0] == "False"
    # not Ready since NOW: lastTransitionTime of Ready did not move
    assert (get_condition(past, "Ready") or {})["lastTransitionTime"] == format_time(NOW)
    # once the key is there, Ready again and nothing stalls
    healed = readiness_conditions(
        past, ready=True, reason="Synced", message="ok", generation=1, now=NOW + bound
    )
    assert status_of(healed) == {
        "Ready": ("True", "Synced"),
        "Stalled": ("False", "Synced"),
        "Reconciling": ("False", "Synced"),
    }
    # and a new failure starts a new count
    again = readiness_conditions(
        healed, ready=False, reason="KeyNotFound", message="m", generation=1, now=NOW + 2 * bound
    )
    assert status_of(again)["Reconciling"][0] == "True"


def test_is_stalled_without_a_start_never_stalls_a_bounded_reason() -> None:
    assert not is_stalled("KeyNotFound", failing_since=None, now=NOW)
    assert is_stalled("KeyNotFound", failing_since=NOW - dt.timedelta(hours=1), now=NOW)
    assert is_stalled("AuthFailed", failing_since=None, now=NOW)
    assert not is_stalled("Unreachable", failing_since=NOW - dt.timedelta(days=1), now=NOW)


def test_the_docs_rule_lists_the_reasons_conditions_py_uses() -> None:
    text = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "gitops.md").read_text()
    m = re.search(r"<!-- stalled-reasons -->(.*?)<!-- /stalled-reasons -->", text, re.S)
    assert m, "docs/gitops.md has no <!-- stalled-reasons --> list"
    assert set(re.findall(r"`(\w+)`", m.group(1))) == set(STALLED_REASONS)
    m = re.search(r"<!-- key-not-found-bound -->(\d+) minutes<!-- /key-not-found-bound -->", text)
    assert m and dt.timedelta(minutes=int(m.group(1))) == STALLED_AFTER["KeyNotFound"]
