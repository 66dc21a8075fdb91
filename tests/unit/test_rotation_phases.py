"""The rotation state machine and grace-period keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rotor.api.status import RotationPhase
from rotor.rotation.phases import (
    STAGED,
    WRITTEN_IN_PLACE,
    grace_keys,
    in_progress,
    next_phase,
    parse_phase,
    retained_until,
)

NOW = datetime(2024, 5, 1, tzinfo=UTC)


@pytest.mark.parametrize(("staged", "phases"), [(False, WRITTEN_IN_PLACE), (True, STAGED)])
def test_phases_walk_in_order_to_completed(staged, phases):
    walked = []
    phase = next_phase(staged, None)
    while phase is not None:
        walked.append(phase)
        phase = next_phase(staged, phase)
    assert tuple(walked) == phases
    assert walked[0] == "Pending" and walked[-1] == "Completed"
    assert next_phase(staged, RotationPhase.FAILED) == RotationPhase.PENDING  # a new rotation starts afresh


def test_documented_phases():
    assert WRITTEN_IN_PLACE == ("Pending", "Written", "Synced", "Completed")
    assert STAGED == ("Pending", "Staged", "Verified", "Promoted", "Synced", "Completed")
    assert set(WRITTEN_IN_PLACE) | set(STAGED) | {"Failed"} == {p.value for p in RotationPhase}


def test_a_phase_of_the_other_flow_is_refused():
    with pytest.raises(ValueError, match="Staged"):
        next_phase(False, RotationPhase.STAGED)
    with pytest.raises(ValueError, match="Written"):
        next_phase(True, RotationPhase.WRITTEN)


def test_unknown_phases_parse_to_none():
    assert parse_phase("Promoted") is RotationPhase.PROMOTED
    assert parse_phase("Exploded") is None and parse_phase("") is None and parse_phase(None) is None


@pytest.mark.parametrize(
    ("phase", "running"),
    [
        (None, False),
        ("", False),
        ("Completed", False),
        ("Failed", False),
        ("Pending", True),
        ("Promoted", True),
        ("Synced", True),
    ],
)
def test_in_progress(phase, running):
    assert in_progress(phase) is running


def test_grace_keeps_the_previous_value_beside_the_new_one_then_drops_it():
    data = {"password": b"new", "username": b"app"}
    previous = {"password": b"old", "username": b"app"}
    until = retained_until(NOW, timedelta(hours=24))
    assert until == NOW + timedelta(hours=24)
    during = grace_keys(data, ["password"], previous, "_previous", until, NOW + timedelta(hours=1))
    assert during == {"password": b"new", "password_previous": b"old", "username": b"app"}
    after = grace_keys(during, ["password"], previous, "_previous", until, until)
    assert after == {"password": b"new", "username": b"app"}


def test_grace_adds_nothing_when_the_value_did_not_change_or_there_is_no_grace():
    data = {"password": b"same"}
    assert (
        grace_keys(data, ["password"], {"password": b"same"}, "_previous", NOW + timedelta(hours=1), NOW)
        == data
    )
    assert grace_keys(data, ["password"], {}, "_previous", NOW + timedelta(hours=1), NOW) == data
    assert retained_until(NOW, timedelta(0)) is None
    assert grace_keys(data, ["password"], {"password": b"old"}, "_previous", None, NOW) == data


def test_grace_keeps_unrotated_keys_untouched():
    data = {"tls.crt": b"c2", "tls.key": b"k2", "ca.crt": b"ca"}
    previous = {"tls.crt": b"c1", "tls.key": b"k1", "ca.crt": b"ca"}
    out = grace_keys(data, ["tls.crt", "tls.key"], previous, ".previous", NOW + timedelta(hours=1), NOW)
    assert out == {**data, "tls.crt.previous": b"c1", "tls.key.previous": b"k1"}
    assert data == {"tls.crt": b"c2", "tls.key": b"k2", "ca.crt": b"ca"}  # input not modified
