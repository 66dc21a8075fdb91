"""RotationPolicy status (pure parts): validity, bound ManagedSecrets, the earliest next rotation,
and writing only on change. Also what ``rotor rollback`` restores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rotor.api.managedsecret import ManagedSecretSpec
from rotor.cli.rollback import rollback_keys
from rotor.rotation.presets import effective_policy
from rotor.rotation.schedule import next_rotation, runnable_at
from rotor.services.policies import PolicyStatusService, bound_to, status_patch, summarize, validity
from support.memindex import MemoryIndex

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


class _Gateway:
    """Records status patches and returns the stored object, as the apiserver does."""

    def __init__(self, index: MemoryIndex) -> None:
        self.index = index
        self.patches: list[tuple[str, str, str | None, dict]] = []

    async def patch_status(self, kind: str, name: str, namespace: str | None, patch: dict) -> dict | None:
        self.patches.append((kind, name, namespace, patch))
        body = self.index.policy((kind, namespace or "", name)) or {}
        meta = {**body.get("metadata", {}), "resourceVersion": str(len(self.patches) + 100)}
        return {**body, "metadata": meta, "status": patch}


class _Clock:
    def now(self) -> datetime:
        return NOW


def _status_service(leading: bool = True) -> tuple[PolicyStatusService, _Gateway, MemoryIndex]:
    index = MemoryIndex()
    gateway = _Gateway(index)
    service = PolicyStatusService(gateway, _Clock(), index, leading=lambda: leading)  # type: ignore[arg-type]
    return service, gateway, index


async def test_an_unused_cluster_policy_gets_its_conditions_but_no_usage_counts():
    """kubectl wait --for=condition=Ready (and kstatus) need a status on a ClusterRotationPolicy
    that no ManagedSecret uses yet; the usage counts are left to the shard that serves its users."""
    service, gateway, index = _status_service()
    for name, spec in (("good", {"preset": "api-key"}), ("bad", {"preset": "ssh-key"})):
        meta = {"name": name, "generation": 1, "resourceVersion": "1"}
        index.put({"kind": "ClusterRotationPolicy", "metadata": meta, "spec": spec})
    assert await service.update() == 2
    written = {name: patch for _, name, _, patch in gateway.patches}
    assert set(written) == {"good", "bad"}
    for patch in written.values():
        assert "boundManagedSecrets" not in patch and "earliestNextRotation" not in patch
    ready = {n: next(c for c in p["conditions"] if c["type"] == "Ready") for n, p in written.items()}
    stalled = {n: next(c for c in p["conditions"] if c["type"] == "Stalled") for n, p in written.items()}
    assert ready["good"]["status"] == "True" and stalled["good"]["status"] == "False"
    assert ready["bad"]["status"] == "False" and ready["bad"]["reason"] == "InvalidSpec"
    assert stalled["bad"]["status"] == "True", "an invalid policy needs a person"
    assert await service.update() == 0, "unchanged: written once"


async def test_a_used_cluster_policy_gets_its_usage_counts():
    service, gateway, index = _status_service()
    index.put(
        {
            "kind": "ClusterRotationPolicy",
            "metadata": {"name": "p", "generation": 1},
            "spec": {"preset": "api-key"},
        }
    )
    index.put({"kind": "ManagedSecret", **_ms("a", "one", "p", kind="ClusterRotationPolicy")})
    assert await service.update() == 1
    assert gateway.patches[0][3]["boundManagedSecrets"] == 1


async def test_a_standby_writes_no_policy_status():
    service, gateway, index = _status_service(leading=False)
    index.put(
        {
            "kind": "RotationPolicy",
            "metadata": {"name": "p", "namespace": "a", "generation": 1},
            "spec": {"preset": "api-key"},
        }
    )
    assert await service.update() == 0
    assert gateway.patches == []
