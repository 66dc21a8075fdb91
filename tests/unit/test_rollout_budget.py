"""The restart budget's pure decisions: which waiting restart takes a free slot (per namespace and
cluster-wide), and how long a workload waits for its minimum interval."""

from __future__ import annotations

import datetime as dt

import pytest

from rotor.rollout.budget import Budget, last_restart, next_to_start, restart_wait
from rotor.rollout.decisions import RESTARTED_AT, restart_patch

T0 = dt.datetime(2024, 5, 1, 10, 0, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("waiting", "running", "budget", "expected"),
    [
        ([], {}, Budget(2, 3), None),
        (["a"], {}, Budget(2, 3), 0),
        # the namespace at its limit is skipped; the next namespace in line starts
        (["a", "a", "b"], {"a": 2}, Budget(2, 3), 2),
        (["a", "b", "c"], {"a": 1, "b": 1}, Budget(2, 3), 0),
        # the cluster is at its limit: nobody starts, whatever the namespaces have left
        (["c"], {"a": 2, "b": 1}, Budget(2, 3), None),
        (["c"], {"a": 1, "b": 1, "d": 1}, Budget(5, 3), None),
        # 0: no cluster-wide limit
        (["c"], {"a": 2, "b": 2, "d": 2}, Budget(2, 0), 0),
        (["a"], {"a": 2}, Budget(2, 0), None),
        # the longest-waiting first
        (["b", "a"], {}, Budget(1, 1), 0),
    ],
)
def test_next_to_start(
    waiting: list[str], running: dict[str, int], budget: Budget, expected: int | None
) -> None:
    assert next_to_start(waiting, running, budget) == expected


def test_granting_slots_in_turn_never_exceeds_either_limit() -> None:
    budget = Budget(namespace_limit=2, cluster_limit=3)
    waiting = [f"ns-{i % 4}" for i in range(20)]
    running: dict[str, int] = {}
    started = []
    while (i := next_to_start(waiting, running, budget)) is not None:
        ns = waiting.pop(i)
        running[ns] = running.get(ns, 0) + 1
        started.append(ns)
    assert sum(running.values()) == 3 and max(running.values()) <= 2
    assert started == ["ns-0", "ns-1", "ns-2"]


@pytest.mark.parametrize(
    ("last", "now", "interval", "expected"),
    [
        (None, T0, 600.0, 0.0),  # never restarted by Rotor
        (T0, T0 + dt.timedelta(seconds=30), 600.0, 570.0),
        (T0, T0 + dt.timedelta(seconds=600), 600.0, 0.0),
        (T0, T0 + dt.timedelta(hours=1), 600.0, 0.0),
        (T0, T0 + dt.timedelta(seconds=1), 0.0, 0.0),  # no minimum
        # a last restart in the future (the clock went back): wait one interval, never more
        (T0 + dt.timedelta(hours=2), T0, 600.0, 600.0),
    ],
)
def test_restart_wait(last: dt.datetime | None, now: dt.datetime, interval: float, expected: float) -> None:
    assert restart_wait(last, now, Budget(min_interval=interval)) == pytest.approx(expected)


def test_the_last_restart_is_read_from_the_restart_patch_on_the_workload() -> None:
    at = T0 + dt.timedelta(milliseconds=250)
    patch = restart_patch({"app-db": "hmac-sha256:00"}, at)
    workload = {"kind": "Deployment", "spec": {"template": patch["spec"]["template"]}}
    assert workload["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT] == "2024-05-01T10:00:00.250Z"
    assert last_restart(workload) == at
    assert last_restart({"spec": {"template": {}}}) is None
    assert last_restart({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: "junk"}}}}}) is None
