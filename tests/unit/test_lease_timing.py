"""rotor.sync.lease: when dynamic credentials are kept, renewed or replaced (pure, clock given),
and what decide_synced reports for them (status.lease, expiry, wake, the CredentialsIssued Event)."""

from __future__ import annotations

import datetime as dt

import pytest

from rotor.api.status import ManagedSecretStatus
from rotor.sync import lease as L
from rotor.sync.decide import Synced, decide_synced

T0 = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
PATH = "database/creds/app"


def s(n: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=n)


def lease(
    *, duration: int = 100, expires: float | None = 100, renewable: bool = True, **kw: object
) -> L.Lease:
    return L.Lease(
        id="database/creds/app/abc",
        path=PATH,
        issued_at=T0,
        duration=duration,
        renewable=renewable,
        expires_at=s(expires) if expires is not None else None,
        keys=("password", "username"),
        **kw,  # type: ignore[arg-type]
    )


# (name, lease, now, renewPercent, values present) -> step, why contains
CASES = [
    ("nothing recorded", None, 0, 67, False, L.Step.ISSUE, "no lease"),
    ("fresh", lease(), 10, 67, True, L.Step.KEEP, ""),
    ("just before renewPercent", lease(), 66.9, 67, True, L.Step.KEEP, ""),
    ("at renewPercent", lease(), 67, 67, True, L.Step.RENEW, ""),
    ("renewPercent 50", lease(), 50, 50, True, L.Step.RENEW, ""),
    (
        "not renewable: replaced at the same point",
        lease(renewable=False),
        67,
        67,
        True,
        L.Step.ISSUE,
        "cannot be renewed",
    ),
    ("not renewable, before the point", lease(renewable=False), 60, 67, True, L.Step.KEEP, ""),
    ("ended", lease(), 100, 67, True, L.Step.ISSUE, "ended"),
    ("the Secret lost the values", lease(), 10, 67, False, L.Step.ISSUE, "no longer holds"),
    ("a lease that never ends", lease(duration=0, expires=None), 10_000, 67, True, L.Step.KEEP, ""),
]


@pytest.mark.parametrize(
    ("name", "recorded", "now", "pct", "present", "step", "why"), CASES, ids=[c[0] for c in CASES]
)
def test_next_step(
    name: str, recorded: L.Lease | None, now: float, pct: int, present: bool, step: L.Step, why: str
) -> None:
    got = L.next_step(recorded, path=PATH, now=s(now), renew_percent=pct, values_present=present)
    assert got.step is step
    assert why in got.why


def test_a_changed_path_issues_new_credentials() -> None:
    got = L.next_step(lease(), path="database/creds/other", now=s(1), renew_percent=67, values_present=True)
    assert got.step is L.Step.ISSUE and "path changed" in got.why


def test_a_full_renewal_moves_the_end_and_keeps_the_id() -> None:
    after = L.renewed(lease(), granted=100, renewable=True, now=s(67))
    assert after.id == lease().id and after.expires_at == s(167) and after.renewable
    assert L.renew_at(after, 67) == s(134)  # 67 % through the renewed duration
    assert (
        L.next_step(after, path=PATH, now=s(100), renew_percent=67, values_present=True).step is L.Step.KEEP
    )


def test_a_renewal_capped_at_the_max_ttl_is_final_and_replaced_lead_before_the_end() -> None:
    # max TTL 150 s: renewed at 67 s, Vault grants 83 s instead of 100
    after = L.renewed(lease(), granted=83, renewable=True, now=s(67))
    assert after.expires_at == s(150) and not after.renewable
    # replaced 33 s (the lead) before the end, not 67 % into the short remainder
    assert L.renew_at(after, 67) == s(117)
    assert (
        L.next_step(after, path=PATH, now=s(116), renew_percent=67, values_present=True).step is L.Step.KEEP
    )
    got = L.next_step(after, path=PATH, now=s(117), renew_percent=67, values_present=True)
    assert got.step is L.Step.ISSUE and "cannot be renewed past" in got.why


def test_a_cap_closer_than_the_lead_replaces_at_once() -> None:
    after = L.renewed(lease(), granted=20, renewable=True, now=s(67))
    assert (
        L.next_step(after, path=PATH, now=s(67), renew_percent=67, values_present=True).step is L.Step.ISSUE
    )


def test_refused_renewal_replaces_now() -> None:
    assert not L.refused(lease()).renewable


def test_issued_keeps_the_replaced_lease_as_previous_until_it_ends() -> None:
    old = L.refused(lease())
    new = L.issued(
        lease_id="database/creds/app/new",
        path=PATH,
        duration=100,
        renewable=True,
        now=s(67),
        keys=("password", "username"),
        replacing=old,
        kept_previous=True,
    )
    assert new.expires_at == s(167) and new.previous == L.Previous(old.id, s(100), old.keys)
    assert L.previous_kept(new, s(99)) and not L.previous_kept(new, s(100))
    assert L.without_ended_previous(new, s(100)).previous is None
    # the next wake: the previous credentials leaving (100) before the renewal (134)
    assert L.wake(new, 67, s(68)) == s(100)
    assert L.wake(L.without_ended_previous(new, s(100)), 67, s(100)) == s(134)
    # not kept (the Secret did not hold them): no previous
    alone = L.issued(
        lease_id="x",
        path=PATH,
        duration=100,
        renewable=True,
        now=s(67),
        keys=("a",),
        replacing=old,
        kept_previous=False,
    )
    assert alone.previous is None


def test_status_round_trip_and_model() -> None:
    new = L.issued(
        lease_id="database/creds/app/new",
        path=PATH,
        duration=100,
        renewable=True,
        now=s(67),
        keys=("password", "username"),
        replacing=lease(),
        kept_previous=True,
    )
    status = {"lease": new.status()}
    ManagedSecretStatus.model_validate(status)
    assert L.lease_of(status) == new
    assert L.lease_of({}) is None and L.lease_of({"lease": {"id": "x"}}) is None


def _synced(
    report: L.LeaseReport | None, old: dict | None = None, now: float = 0, written: bool = True
) -> Synced:
    return Synced(
        now=s(now),
        generation=1,
        status=old or {},
        force=None,
        secret_name="app",
        data={"username": b"u", "password": b"p"},
        data_hash="hmac-sha256:1",
        source_versions={},
        written=written,
        restored=False,
        next_refresh=s(3600),
        rotation=None,
        has_rotation_spec=False,
        lease=report,
    )


def test_decide_synced_records_the_lease_its_expiry_and_wakes_for_the_renewal() -> None:
    first = L.issued(
        lease_id="database/creds/app/1",
        path=PATH,
        duration=100,
        renewable=True,
        now=s(0),
        keys=("password", "username"),
        replacing=None,
        kept_previous=False,
    )
    plan = decide_synced(_synced(L.LeaseReport(first, 67, "no lease was recorded")))
    assert plan.status is not None
    assert plan.status["lease"]["id"] == "database/creds/app/1"
    assert plan.status["lease"]["expiresAt"] == "2024-05-01T12:01:40Z"
    assert plan.status["expiry"] == {
        "notAfter": "2024-05-01T12:01:40Z",
        "source": "Provider",
        "renewalTime": "2024-05-01T12:01:07Z",
    }
    assert plan.next_at == s(67)  # before the hourly refresh
    assert [e.reason for e in plan.events] == ["Synced", "CredentialsIssued"]
    issued = plan.events[1].note
    assert "database/creds/app/1" in issued and "no lease was recorded" in issued
    expiring = next(c for c in plan.status["conditions"] if c["type"] == "Expiring")
    assert expiring["status"] == "False"
    ManagedSecretStatus.model_validate(plan.status)


def test_decide_synced_a_renewal_writes_status_without_an_event() -> None:
    first = L.issued(
        lease_id="database/creds/app/1",
        path=PATH,
        duration=100,
        renewable=True,
        now=s(0),
        keys=("password", "username"),
        replacing=None,
        kept_previous=False,
    )
    old = decide_synced(_synced(L.LeaseReport(first, 67, "x"))).status
    assert old is not None
    again = decide_synced(_synced(L.LeaseReport(first, 67, None), old=old, now=10, written=False))
    assert again.status is None and again.events == ()  # nothing changed: no write
    renewed = L.renewed(first, granted=100, renewable=True, now=s(67))
    plan = decide_synced(_synced(L.LeaseReport(renewed, 67, None), old=old, now=67, written=False))
    assert plan.status is not None and plan.status["lease"]["expiresAt"] == "2024-05-01T12:02:47Z"
    assert plan.events == ()


def test_decide_synced_clears_a_lease_the_spec_no_longer_has() -> None:
    plan = decide_synced(_synced(None, old={"lease": {"id": "x"}}))
    assert plan.status is not None and plan.status["lease"] is None
