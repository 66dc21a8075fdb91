"""Lease timing of dynamic credentials (pure; the clock is a parameter).

A lease as recorded in ``status.lease`` says when its credentials were issued, how long Vault
granted them for (``duration``), when they end (``expiresAt``) and whether renewing can extend
them (``renewable``). From it and ``renewPercent``:

- the *lead* is the part of the duration left at ``renewPercent``: ``duration * (1 - p/100)``;
- the lease is renewed ``lead`` before it ends (after a renewal that granted the full duration,
  that is ``renewPercent`` of the way through it);
- a lease that cannot be extended (issued non-renewable, a renewal refused, or capped at the
  role's max TTL) is replaced instead, at the same point: new credentials ``lead`` before the old
  ones end, which stay under ``<key><previousKeySuffix>`` until then.

The rule itself (``rotor.leasing``) is the one the Vault stores' own tokens are renewed by.
``next_step`` is the ordered chain of checks; ``renewed``, ``refused`` and ``issued`` are the
records after each action; ``wake`` is when to look again.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from rotor.clock import format_time, parse_time
from rotor.leasing import extendable, renewal_lead


@dataclass(frozen=True)
class Previous:
    id: str
    expires_at: dt.datetime | None
    keys: tuple[str, ...]


@dataclass(frozen=True)
class Lease:
    id: str
    path: str
    issued_at: dt.datetime
    duration: int  # seconds granted at issue; 0 = no expiry
    renewable: bool
    expires_at: dt.datetime | None
    keys: tuple[str, ...]
    previous: Previous | None = None

    def status(self) -> dict[str, Any]:
        """The ``status.lease`` form (camelCase, RFC 3339 times)."""
        out: dict[str, Any] = {
            "id": self.id,
            "path": self.path,
            "issuedAt": format_time(self.issued_at),
            "duration": self.duration,
            "renewable": self.renewable,
            "expiresAt": format_time(self.expires_at) if self.expires_at else None,
            "keys": list(self.keys),
            "previous": None,
        }
        if self.previous is not None:
            out["previous"] = {
                "id": self.previous.id,
                "expiresAt": format_time(self.previous.expires_at) if self.previous.expires_at else None,
                "keys": list(self.previous.keys),
            }
        return out


@dataclass(frozen=True)
class LeaseReport:
    """The dynamic source's part of a sync, for the status decision."""

    lease: Lease
    renew_percent: int
    #: new credentials were issued by this sync, and why; None when the lease was kept or renewed
    issued: str | None
    #: previousKeySuffix: the replaced credentials' keys are <key><suffix>
    suffix: str = "_previous"


def lease_of(status: Mapping[str, Any]) -> Lease | None:
    """The lease recorded in a ManagedSecret's status, or None (none, or unreadable)."""
    raw = status.get("lease")
    if not isinstance(raw, Mapping) or not raw.get("id"):
        return None
    issued = parse_time(raw.get("issuedAt"))
    if issued is None:
        return None
    previous = None
    prev = raw.get("previous")
    if isinstance(prev, Mapping) and prev.get("id"):
        previous = Previous(str(prev["id"]), parse_time(prev.get("expiresAt")), tuple(prev.get("keys") or ()))
    return Lease(
        id=str(raw["id"]),
        path=str(raw.get("path") or ""),
        issued_at=issued,
        duration=int(raw.get("duration") or 0),
        renewable=bool(raw.get("renewable")),
        expires_at=parse_time(raw.get("expiresAt")),
        keys=tuple(raw.get("keys") or ()),
        previous=previous,
    )


def lead(lease: Lease, renew_percent: int) -> dt.timedelta:
    """How long before its end a lease is renewed or replaced."""
    return dt.timedelta(seconds=renewal_lead(lease.duration, renew_percent))


def renew_at(lease: Lease, renew_percent: int) -> dt.datetime | None:
    """When to renew (or replace) the lease; None for a lease that never ends."""
    if lease.expires_at is None or lease.duration <= 0:
        return None
    return lease.expires_at - lead(lease, renew_percent)


class Step(enum.StrEnum):
    KEEP = "Keep"
    RENEW = "Renew"
    ISSUE = "Issue"


@dataclass(frozen=True)
class Decision:
    step: Step
    #: why new credentials are issued (for the Event); empty otherwise
    why: str = ""


def next_step(
    lease: Lease | None, *, path: str, now: dt.datetime, renew_percent: int, values_present: bool
) -> Decision:
    """What to do with the recorded lease now, as ordered checks."""
    if lease is None:
        return Decision(Step.ISSUE, "no lease was recorded")
    if lease.path and lease.path != path:
        return Decision(Step.ISSUE, f"the path changed from {lease.path}")
    if not values_present:
        return Decision(Step.ISSUE, "the Secret no longer holds the credentials of the recorded lease")
    if lease.expires_at is not None and now >= lease.expires_at:
        return Decision(Step.ISSUE, f"the lease ended at {format_time(lease.expires_at)}")
    due = renew_at(lease, renew_percent)
    if due is None or now < due:
        return Decision(Step.KEEP)
    if lease.renewable:
        return Decision(Step.RENEW)
    return Decision(
        Step.ISSUE,
        f"the lease cannot be renewed past {format_time(lease.expires_at)}"
        if lease.expires_at
        else "the lease cannot be renewed",
    )


def renewed(lease: Lease, *, granted: int, renewable: bool, now: dt.datetime) -> Lease:
    """The record after a renewal that granted ``granted`` seconds: the same lease id, a later
    end; a grant shorter than asked (capped at the max TTL) means it cannot be extended again."""
    return replace(
        lease,
        expires_at=now + dt.timedelta(seconds=granted) if granted > 0 else lease.expires_at,
        renewable=renewable and extendable(granted, lease.duration),
    )


def refused(lease: Lease) -> Lease:
    """The record after Vault refused to renew: replaced now."""
    return replace(lease, renewable=False)


def issued(
    *,
    lease_id: str,
    path: str,
    duration: int,
    renewable: bool,
    now: dt.datetime,
    keys: tuple[str, ...],
    replacing: Lease | None,
    kept_previous: bool,
) -> Lease:
    """The record of new credentials; ``replacing`` is the lease they replace, kept as previous
    until it ends when its credentials are kept in the Secret (``kept_previous``)."""
    previous = None
    if replacing is not None and kept_previous and replacing.id != lease_id:
        previous = Previous(replacing.id, replacing.expires_at, replacing.keys)
    return Lease(
        id=lease_id,
        path=path,
        issued_at=now,
        duration=max(0, duration),
        renewable=renewable,
        expires_at=now + dt.timedelta(seconds=duration) if duration > 0 else None,
        keys=keys,
        previous=previous,
    )


def previous_kept(lease: Lease, now: dt.datetime) -> bool:
    """Whether the previous credentials stay in the Secret now (until their lease ends)."""
    prev = lease.previous
    return prev is not None and (prev.expires_at is None or now < prev.expires_at)


def without_ended_previous(lease: Lease, now: dt.datetime) -> Lease:
    return lease if lease.previous is None or previous_kept(lease, now) else replace(lease, previous=None)


def wake(lease: Lease, renew_percent: int, now: dt.datetime) -> dt.datetime | None:
    """The next time the lease needs a look: its renewal (or replacement), or the end of the
    previous credentials (their keys leave the Secret)."""
    times = [renew_at(lease, renew_percent)]
    if lease.previous is not None and lease.previous.expires_at is not None:
        times.append(lease.previous.expires_at)
    future = [t for t in times if t is not None and t > now]
    return min(future, default=None)


__all__ = [
    "Decision",
    "Lease",
    "LeaseReport",
    "Previous",
    "Step",
    "issued",
    "lead",
    "lease_of",
    "next_step",
    "previous_kept",
    "refused",
    "renew_at",
    "renewed",
    "wake",
    "without_ended_previous",
]
