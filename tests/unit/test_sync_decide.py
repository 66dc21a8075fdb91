"""rotor.sync.decide from the golden table tests/unit/golden/sync_decide.yaml: what a sync reports
(status patch, Events, the next wake) after a sync that reached the Secret and after a failure."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from rotor.api.status import ManagedSecretStatus, Reason
from rotor.conditions import get_condition
from rotor.rotation.generators import generate
from rotor.sync.decide import Failed, StatusPlan, Synced, decide_failed, decide_synced, request_waits

GOLDEN = yaml.safe_load((Path(__file__).parent / "golden" / "sync_decide.yaml").read_text())
NOW = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
GENERATION = 3


def _data(spec: dict[str, Any]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for key, value in spec.items():
        if isinstance(value, dict):
            hours = int(value["certificate"])
            issued = NOW - dt.timedelta(hours=48)
            params = {"commonName": "a.example", "duration": f"{48 + hours}h"}
            out.update(generate("selfSignedCertificate", params, key=key, now=issued))
        else:
            out[key] = str(value).encode()
    return out


def synced(case: dict[str, Any], status: dict[str, Any]) -> Synced:
    c = {**GOLDEN["synced_defaults"], **case}
    nxt = c["next_refresh_in"]
    return Synced(
        now=NOW,
        generation=GENERATION,
        status=status,
        force=c["force"],
        secret_name=c["secret_name"],
        data=_data(c["data"]),
        data_hash="hash-1",
        source_versions={"password": "4"},
        written=c["written"],
        restored=c["restored"],
        next_refresh=NOW + dt.timedelta(seconds=nxt) if nxt is not None else None,
        rotation=None,
        has_rotation_spec=c["has_rotation_spec"],
    )


def failed(case: dict[str, Any], status: dict[str, Any]) -> Failed:
    c = {**GOLDEN["failed_defaults"], **case}
    return Failed(
        now=NOW,
        generation=GENERATION,
        status=status,
        force=c["force"],
        reason=c["reason"],
        message=c["message"],
        retry=c["retry"],
        attempts=c["attempts"],
        seed="ns/app",
        rotation_blocked=c["rotation_blocked"],
        request_waits=c["request_waits"],
    )


def _merged(old: dict[str, Any], patch: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in {**old, **(patch or {})}.items() if v is not None}


def states() -> dict[str, dict[str, Any]]:
    """The statuses the table starts from: what these functions write in those states."""
    ready = _merged({}, decide_synced(synced({}, {})).status)
    expired = _merged(ready, decide_synced(synced({"data": {"tls.crt": {"certificate": -1}}}, ready)).status)
    failing = _merged(ready, decide_failed(failed({}, ready)).status)
    blocked_case = next(c for c in GOLDEN["failed"] if c.get("rotation_blocked"))
    blocked = _merged(ready, decide_failed(failed(blocked_case, ready)).status)
    return {"READY": ready, "FAILING": failing, "EXPIRED": expired, "BLOCKED": blocked}


STATES = states()


def _status(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return dict(STATES[value])
    value = dict(value)
    base = value.pop("base", None)
    return {**(STATES[base] if base else {}), **value}


def check(case: dict[str, Any], plan: StatusPlan) -> None:
    expect, name = case["expect"], case["name"]
    if "status" in expect:
        if expect["status"] is None:
            assert plan.status is None, f"{name}: wrote {plan.status}"
        else:
            assert plan.status is not None, f"{name}: wrote nothing"
            for field, want in expect["status"].items():
                assert field in plan.status, f"{name}: {field} missing"
                if want != "*":
                    assert plan.status[field] == want, f"{name}: {field} is {plan.status[field]!r}"
    for field in expect.get("absent", []):
        assert plan.status is None or field not in plan.status, f"{name}: {field} written"
    for type_, (want_status, want_reason) in (expect.get("conditions") or {}).items():
        assert plan.status is not None, name
        got = get_condition(plan.status["conditions"], type_)
        assert got is not None, f"{name}: no {type_} condition"
        assert got["status"] == want_status, f"{name}: {type_} is {got['status']}"
        if want_reason != "*":
            assert got["reason"] == want_reason, f"{name}: {type_} reason is {got['reason']}"
    if "events" in expect:
        assert [e.reason for e in plan.events] == expect["events"], name
    if "note" in expect:
        assert any(expect["note"] in e.note for e in plan.events), f"{name}: {plan.events}"
    for field in ("ready", "reason", "transition"):
        if field in expect:
            assert getattr(plan, field) == expect[field], f"{name}: {field} is {getattr(plan, field)!r}"
    if "next_in" in expect:
        want = expect["next_in"]
        got = None if plan.next_at is None else (plan.next_at - NOW).total_seconds()
        if isinstance(want, list):
            assert got is not None and want[0] <= got <= want[1], f"{name}: next in {got}"
        else:
            assert got == want, f"{name}: next in {got}"
    if plan.status is not None:
        # what is written validates against the status models, and every reason is documented
        ManagedSecretStatus.model_validate(plan.status)
        assert {c["reason"] for c in plan.status["conditions"]} <= set(Reason) | {"*"}


@pytest.mark.parametrize("case", GOLDEN["synced"], ids=[c["name"] for c in GOLDEN["synced"]])
def test_decide_synced(case: dict[str, Any]) -> None:
    check(case, decide_synced(synced(case, _status(case.get("status", {})))))


@pytest.mark.parametrize("case", GOLDEN["failed"], ids=[c["name"] for c in GOLDEN["failed"]])
def test_decide_failed(case: dict[str, Any]) -> None:
    check(case, decide_failed(failed(case, _status(case.get("status", "READY")))))


@pytest.mark.parametrize("row", GOLDEN["request_waits"])
def test_request_waits(row: list[Any]) -> None:
    reason, has_spec, annotation, rotation, advanced, blocked, want = row
    got = request_waits(
        reason=reason,
        has_rotation_spec=has_spec,
        rotate_annotation=annotation,
        rotation=rotation,
        advanced=advanced,
        blocked=blocked,
    )
    assert got is want, row


def test_no_event_note_or_status_holds_a_value() -> None:
    value = "s3cret-value"
    for case in GOLDEN["synced"]:
        plan = decide_synced(synced(case, _status(case.get("status", {}))))
        assert value not in repr(plan)
    for case in GOLDEN["failed"]:
        assert value not in repr(decide_failed(failed(case, _status(case.get("status", "READY")))))
