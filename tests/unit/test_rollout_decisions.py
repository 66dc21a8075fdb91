"""Restart only when the data a workload reads has changed; record what it reads otherwise."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from rotor.rollout.decisions import (
    RESTARTED_AT,
    WriteInfo,
    decide,
    digest_annotation,
    is_fresh,
    record_patch,
    recorded_digest,
    restart_patch,
    restart_time,
    write_info,
)
from rotor.values.hashing import consumer_digest

KEY = b"operator-hash-key"
T0 = dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)
OLD = {"username": b"app", "password": b"first-password", "url": b"postgres://db"}


def digest(data: dict[str, bytes], *keys: str) -> str:
    return consumer_digest(data, keys or data.keys(), key=KEY)


def test_a_change_to_keys_the_workload_does_not_read_restarts_nothing() -> None:
    new = {**OLD, "url": b"postgres://db-2"}
    assert decide(digest(OLD, "password"), digest(new, "password"), fresh=False).action == "none"
    assert decide(digest(OLD), digest(new), fresh=False).action == "restart"  # envFrom reads url too


def test_a_change_to_a_key_it_reads_restarts_it() -> None:
    new = {**OLD, "password": b"second-password"}
    decision = decide(digest(OLD, "password"), digest(new, "password"), fresh=False)
    assert decision.action == "restart"
    assert decision.reason == "the keys it reads changed"


def test_a_key_it_reads_disappearing_restarts_it() -> None:
    new = {k: v for k, v in OLD.items() if k != "password"}
    assert decide(digest(OLD, "password"), digest(new, "password"), fresh=False).action == "restart"


def test_first_sight_when_the_secret_was_just_created_records_only() -> None:
    assert decide(None, digest(OLD), fresh=True).action == "record"


def test_first_sight_of_a_workload_started_before_the_change_restarts_it() -> None:
    # it was never recorded, and it has been running since before this write: it reads old data
    assert decide(None, digest(OLD), fresh=False).action == "restart"


def test_a_workload_created_after_the_write_is_recorded_even_with_a_stale_digest() -> None:
    assert decide("hmac-sha256:stale", digest(OLD), fresh=True).action == "record"


def secret(created: str, *times: str) -> dict[str, Any]:
    return {
        "metadata": {
            "creationTimestamp": created,
            "managedFields": [{"manager": "rotor", "operation": "Update", "time": t} for t in times],
        }
    }


def test_resume_without_a_write_restarts_only_a_recorded_workload_reading_older_data() -> None:
    """The first sync of a Secret by a new operator process writes nothing: a restart an earlier
    process decided (and did not do) happens; nothing else starts."""
    assert decide("hmac-sha256:older", digest(OLD), fresh=False, resume=True).action == "restart"
    assert decide(digest(OLD), digest(OLD), fresh=False, resume=True).action == "none"
    assert decide(None, digest(OLD), fresh=False, resume=True).action == "none"  # never tracked
    assert decide(None, digest(OLD), fresh=True, resume=True).action == "record"


def test_write_info_tells_a_creation_from_an_update() -> None:
    created = write_info(secret("2024-05-01T10:00:00Z", "2024-05-01T10:00:00Z"))
    assert created == WriteInfo(created=True, at=T0)
    updated = write_info(secret("2024-05-01T10:00:00Z", "2024-05-01T10:00:00Z", "2024-05-01T11:00:00+00:00"))
    assert updated == WriteInfo(created=False, at=T0 + dt.timedelta(hours=1))
    assert write_info(None) == WriteInfo(created=False, at=None)
    assert write_info({"metadata": {"creationTimestamp": "2024-05-01T10:00:00Z"}}) == WriteInfo(False, None)


@pytest.mark.parametrize(
    ("info", "workload_created", "fresh"),
    [
        (WriteInfo(True, T0), "2024-05-01T09:00:00Z", True),
        (WriteInfo(False, T0), "2024-05-01T09:00:00Z", False),
        (WriteInfo(False, T0), "2024-05-01T10:00:00Z", False),  # same second: cannot tell, restart
        (WriteInfo(False, T0), "2024-05-01T10:00:01Z", True),
        (WriteInfo(False, None), "2024-05-01T10:00:01Z", False),
        (WriteInfo(False, T0), None, False),
    ],
)
def test_freshness(info: WriteInfo, workload_created: str | None, fresh: bool) -> None:
    meta = {"creationTimestamp": workload_created} if workload_created else {}
    assert is_fresh({"metadata": meta}, info) is fresh


def test_digest_annotation_keys_are_valid_annotation_names() -> None:
    assert digest_annotation("app-db") == "rotor.dev/secret-digest.app-db"
    long_a, long_b = "a" * 60 + "-x", "a" * 60 + "-y"
    for name in (long_a, long_b, "a" * 49, "b" * 50, "c." * 100 + "d", "x" * 253):
        key = digest_annotation(name)
        prefix, _, part = key.partition("/")
        assert prefix == "rotor.dev"
        assert len(part) <= 63
        assert part[0].isalnum() and part[-1].isalnum()
    assert digest_annotation(long_a) != digest_annotation(long_b)
    assert digest_annotation("a" * 49) == "rotor.dev/secret-digest." + "a" * 49


def test_record_patch_touches_only_the_workload_metadata() -> None:
    patch = record_patch({"app-db": "hmac-sha256:1"})
    assert patch == {"metadata": {"annotations": {"rotor.dev/secret-digest.app-db": "hmac-sha256:1"}}}


def test_restart_patch_restarts_and_records_in_one_patch() -> None:
    now = T0 + dt.timedelta(microseconds=123456)
    patch = restart_patch({"app-db": "hmac-sha256:1", "tls": "hmac-sha256:2"}, now)
    assert patch["metadata"]["annotations"] == {
        "rotor.dev/secret-digest.app-db": "hmac-sha256:1",
        "rotor.dev/secret-digest.tls": "hmac-sha256:2",
    }
    assert patch["spec"] == {
        "template": {"metadata": {"annotations": {RESTARTED_AT: "2024-05-01T10:00:00.123Z"}}}
    }
    assert recorded_digest(patch, "app-db") == "hmac-sha256:1"
    assert recorded_digest(patch, "other") is None


def test_digests_never_contain_the_value() -> None:
    d = digest(OLD, "password")
    assert d.startswith("hmac-sha256:")
    assert b"first-password".decode() not in d


def test_restart_time_is_rfc3339_with_milliseconds() -> None:
    assert restart_time(dt.datetime(2024, 5, 1, 10, 0, 0, 5000, tzinfo=dt.UTC)) == "2024-05-01T10:00:00.005Z"
