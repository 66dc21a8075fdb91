"""RotationPolicy status (pure parts): validity, bound ManagedSecrets, the earliest next rotation,
and writing only on change. Also what ``rotor rollback`` restores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rotor.api.managedsecret import ManagedSecretSpec
from rotor.cli.rollback import rollback_keys
from rotor.rotation.presets import effective_policy
from rotor.rotation.schedule import next_rotation, runnable_at
from rotor.services.policies import bound_to, status_patch, summarize, validity

NOW = datetime(2024, 5, 1, 10, tzinfo=UTC)


def _ms(ns: str, name: str, policy: str | None, kind: str = "RotationPolicy", nxt: str | None = None) -> dict:
    spec: dict = {"storeRef": {"name": "s"}, "dataFrom": [{"extract": {"key": "k"}}]}
    if policy:
        spec["rotation"] = {"policyRef": {"name": policy, "kind": kind}, "keys": ["password"]}
    status = {"rotation": {"nextRotationTime": nxt}} if nxt else {}
    return {"metadata": {"namespace": ns, "name": name}, "spec": spec, "status": status}


def _policy(spec: dict, status: dict | None = None) -> dict:
    return {"metadata": {"name": "p", "generation": 2}, "spec": spec, "status": status or {}}


def test_bound_to_names_namespaced_and_cluster_policies():
    assert bound_to(_ms("a", "x", "p")) == ("RotationPolicy", "a", "p")
    assert bound_to(_ms("a", "x", "p", "ClusterRotationPolicy")) == ("ClusterRotationPolicy", "", "p")
    assert bound_to(_ms("a", "x", None)) is None


def test_summary_counts_and_finds_the_earliest():
    policies = {
        ("RotationPolicy", "a", "p"): _policy({"preset": "api-key"}),
        ("ClusterRotationPolicy", "", "p"): _policy({"preset": "api-key"}),
    }
    secrets = [
        _ms("a", "x", "p", nxt="2024-06-01T00:00:00Z"),
        _ms("a", "y", "p", nxt="2024-05-20T00:00:00Z"),
        _ms("b", "z", "p"),  # namespace b has no RotationPolicy p
        _ms("b", "w", "p", "ClusterRotationPolicy"),
    ]
    out = summarize(policies, secrets)
    local = out[("RotationPolicy", "a", "p")]
    assert (local.bound, local.earliest) == (2, datetime(2024, 5, 20, tzinfo=UTC))
    cluster = out[("ClusterRotationPolicy", "", "p")]
    assert (cluster.bound, cluster.earliest) == (1, None)


def test_validity_names_the_field():
    assert validity({"preset": "database-password"})[:2] == (True, "Valid")
    ok, reason, message = validity(
        {
            "schedule": {"every": "1h"},
            "window": {"cron": "0 0 30 2 *", "duration": "1h"},
            "generator": {"fernetKey": {}},
        }
    )
    assert (ok, reason) == (False, "InvalidSpec") and "window never opens" in message
    ok, _, message = validity({"schedule": {"cron": "61 * * * *"}, "generator": {"fernetKey": {}}})
    assert not ok and "spec.schedule.cron" in message


def test_status_is_written_only_when_it_changes():
    body = _policy({"preset": "api-key"})
    summary = summarize(
        {("RotationPolicy", "a", "p"): body}, [_ms("a", "x", "p", nxt="2024-06-01T00:00:00Z")]
    )[("RotationPolicy", "a", "p")]
    patch = status_patch(body, summary, NOW)
    assert patch is not None
    assert patch["boundManagedSecrets"] == 1 and patch["earliestNextRotation"] == "2024-06-01T00:00:00Z"
    assert patch["observedGeneration"] == 2
    stored = {**body, "status": patch}
    assert status_patch(stored, summary, NOW + timedelta(hours=1)) is None, "same summary: no write"


def test_renewals_wait_for_the_window_too():
    policy = effective_policy({"preset": "api-key", "window": {"cron": "0 2 * * *", "duration": "1h"}})
    due = datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert runnable_at(policy, due, NOW) == datetime(2024, 5, 2, 2, tzinfo=UTC)
    inside = datetime(2024, 5, 2, 2, 30, tzinfo=UTC)
    assert runnable_at(policy, due, inside) == due, "overdue and the window is open: run now"


def test_a_window_reads_its_own_time_zone():
    policy = effective_policy(
        {
            "schedule": {"every": "24h", "timeZone": "UTC"},
            "generator": {"fernetKey": {}},
            "window": {"cron": "0 2 * * *", "duration": "1h", "timeZone": "America/New_York"},
        }
    )
    created = datetime(2024, 7, 1, 12, tzinfo=UTC)
    # due 2024-07-02 12:00 UTC; the window opens at 02:00 New York = 06:00 UTC on the 3rd
    assert next_rotation(policy, last_rotation=None, created=created, now=created) == datetime(
        2024, 7, 3, 6, tzinfo=UTC
    )


def test_rollback_keys():
    spec = ManagedSecretSpec.model_validate(
        {
            "storeRef": {"name": "s"},
            "data": [
                {"secretKey": "password", "remoteRef": {"key": "db", "property": "pw"}},
                {"secretKey": "old", "remoteRef": {"key": "pinned", "version": "3"}},
            ],
            "dataFrom": [{"extract": {"key": "app"}}],
        }
    )
    assert rollback_keys(spec) == ["db", "app"]
    rotated = ManagedSecretSpec.model_validate(
        {
            "storeRef": {"name": "s"},
            "dataFrom": [{"extract": {"key": "app"}}],
            "rotation": {"policyRef": {"name": "p"}, "keys": ["password"]},
        }
    )
    assert rollback_keys(rotated) == ["app"]
