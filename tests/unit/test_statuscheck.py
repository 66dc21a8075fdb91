"""The status check used at the end of the integration suite finds what it must."""

from __future__ import annotations

from support.statuscheck import status_problems

GOOD = {
    "metadata": {"name": "app", "namespace": "ns"},
    "status": {
        "observedGeneration": 1,
        "conditions": [{"type": "Ready", "status": "True", "reason": "Synced", "message": "ok"}],
        "rotation": {"phase": "Completed", "baseVersions": {"a": "1"}, "failureCause": "Policy"},
        "sourceVersions": {"password": "3"},
    },
}


def test_a_good_status_passes() -> None:
    assert status_problems("managedsecrets", GOOD) == []


def test_an_unknown_phase_field_or_reason_is_found() -> None:
    bad = {
        "metadata": GOOD["metadata"],
        "status": {
            "conditions": [{"type": "Ready", "status": "False", "reason": "Oops"}],
            "rotation": {"phase": "Exploded", "surprise": 1},
            "extra": True,
        },
    }
    problems = "\n".join(status_problems("managedsecrets", bad))
    assert "invalid field" in problems and "('rotation', 'phase')" in problems
    assert "status.rotation.surprise" in problems and "status.extra" in problems
    assert "'Oops'" in problems
