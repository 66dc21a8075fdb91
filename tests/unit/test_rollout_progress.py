"""When a restarted workload's rollout counts as finished (and frees its restart slot)."""

from __future__ import annotations

from typing import Any

import pytest

from rotor.rollout.progress import finished


def w(kind: str, generation: int, spec: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"generation": generation}, "spec": spec, "status": status}


DONE = {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}


@pytest.mark.parametrize(
    ("workload", "done"),
    [
        (w("Deployment", 2, {"replicas": 3}, DONE), True),
        (w("Deployment", 2, {"replicas": 3}, {**DONE, "observedGeneration": 1}), False),
        (w("Deployment", 2, {"replicas": 3}, {}), False),
        (w("Deployment", 2, {"replicas": 3}, {**DONE, "updatedReplicas": 2}), False),
        (w("Deployment", 2, {"replicas": 3}, {**DONE, "replicas": 4}), False),  # old pods still there
        (w("Deployment", 2, {"replicas": 3}, {**DONE, "availableReplicas": 1}), False),
        (
            w(
                "Deployment",
                2,
                {},
                {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1},
            ),
            True,
        ),  # replicas default to 1
        (w("Deployment", 2, {"replicas": 0}, {"observedGeneration": 2}), True),
        (
            w(
                "Deployment",
                2,
                {"replicas": 3},
                {
                    "observedGeneration": 2,
                    "conditions": [
                        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
                    ],
                },
            ),
            True,
        ),
        (
            w(
                "StatefulSet",
                2,
                {"replicas": 2},
                {
                    "observedGeneration": 2,
                    "updatedReplicas": 2,
                    "readyReplicas": 2,
                    "currentRevision": "r2",
                    "updateRevision": "r2",
                },
            ),
            True,
        ),
        (
            w(
                "StatefulSet",
                2,
                {"replicas": 2},
                {
                    "observedGeneration": 2,
                    "updatedReplicas": 2,
                    "readyReplicas": 2,
                    "currentRevision": "r1",
                    "updateRevision": "r2",
                },
            ),
            False,
        ),
        (
            w(
                "StatefulSet",
                2,
                {"replicas": 2},
                {"observedGeneration": 2, "updatedReplicas": 1, "readyReplicas": 2},
            ),
            False,
        ),
        (
            w(
                "StatefulSet",
                2,
                {"replicas": 3, "updateStrategy": {"rollingUpdate": {"partition": 2}}},
                {"observedGeneration": 2, "updatedReplicas": 1, "readyReplicas": 3},
            ),
            True,
        ),
        (
            w(
                "StatefulSet",
                2,
                {"replicas": 3, "updateStrategy": {"type": "OnDelete"}},
                {"observedGeneration": 2},
            ),
            True,
        ),
        (
            w(
                "DaemonSet",
                2,
                {},
                {
                    "observedGeneration": 2,
                    "desiredNumberScheduled": 4,
                    "updatedNumberScheduled": 4,
                    "numberAvailable": 4,
                },
            ),
            True,
        ),
        (
            w(
                "DaemonSet",
                2,
                {},
                {
                    "observedGeneration": 2,
                    "desiredNumberScheduled": 4,
                    "updatedNumberScheduled": 3,
                    "numberAvailable": 4,
                },
            ),
            False,
        ),
        (w("DaemonSet", 2, {"updateStrategy": {"type": "OnDelete"}}, {"observedGeneration": 1}), False),
    ],
)
def test_finished(workload: dict[str, Any], done: bool) -> None:
    assert finished(workload) is done
