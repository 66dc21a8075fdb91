"""Status conditions (pure). ``lastTransitionTime`` changes only when ``status`` changes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from rotor.api.status import Reason
from rotor.clock import format_time, parse_time

# One rule for every kind (docs/gitops.md, "Health of Rotor's resources"). Ready=False with one
# of these reasons needs a person: Rotor reports Stalled=True (kstatus Failed, Argo CD Degraded).
# Retrying cannot help: the spec, the credentials, a permission, a foreign Secret, a value at the
# source or a certificate must be changed by someone first.
STALLED_REASONS = frozenset(
    {
        "InvalidSpec",  # the spec (or a policy it names) is invalid
        "InvalidConfig",  # the store's settings are refused by the backend
        "TemplateError",  # the template cannot render with these values
        "AuthFailed",  # the store's credentials are refused
        "Forbidden",  # the credentials lack a permission, or tenancy refuses
        "SecretConflict",  # the target Secret belongs to someone else
        "ValidationFailed",  # the source holds a value that fails validation (until it is changed)
        "Expired",  # the certificate at the source has expired
        "InvalidKey",  # a dataFrom rewrite makes an invalid or colliding key (spec or source change)
        "RemoteConflict",  # a PushSecret's remote value was written by someone else (IfNotExists)
        "NameConflict",  # a ManagedSecret Rotor did not generate has the name a fan-out wants
        "NamespacesFailed",  # a ClusterManagedSecret's namespace needs a person (failedNamespaces)
    }
)
# Reasons that are transient at first and need a person once they last: Reconciling=True until
# the object has been not-Ready for this long (counted from the Ready condition's
# lastTransitionTime), then Stalled=True. A key that is still missing after 10 minutes is not a
# replication delay.
STALLED_AFTER: dict[str, dt.timedelta] = {
    "KeyNotFound": dt.timedelta(minutes=10),
    # a template.from ConfigMap (or its key) not there yet: applied after the ManagedSecret
    "TemplateMissing": dt.timedelta(minutes=10),
    # a PushSecret's source Secret (or one of its keys) not there yet: another controller may be
    # about to write it
    "SecretMissing": dt.timedelta(minutes=10),
    "KeyMissing": dt.timedelta(minutes=10),
}
# Every other reason (Unreachable, ProviderError, StoreNotReady, StoreNotFound, Conflict...) is
# transient: Reconciling=True, Rotor retries with back-off.


def is_stalled(reason: str, *, failing_since: dt.datetime | None, now: dt.datetime) -> bool:
    """Whether Ready=False with ``reason``, not Ready since ``failing_since``, needs a person."""
    if reason in STALLED_REASONS:
        return True
    bound = STALLED_AFTER.get(reason)
    return bound is not None and failing_since is not None and now - failing_since >= bound


def _not_ready_since(conditions: Iterable[dict[str, Any]], now: dt.datetime) -> dt.datetime:
    """When the object last turned not-Ready (now, if it is Ready or has no Ready yet)."""
    ready = get_condition(conditions, "Ready")
    if ready is None or ready.get("status") != "False":
        return now
    since = parse_time(ready.get("lastTransitionTime"))
    return since if since is not None and since <= now else now


def set_condition(
    conditions: Iterable[dict[str, Any]],
    type_: str,
    status: bool | str,
    reason: str,
    message: str,
    generation: int,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    value = status if isinstance(status, str) else ("True" if status else "False")
    out: list[dict[str, Any]] = []
    found = False
    for cond in conditions:
        if cond.get("type") != type_:
            out.append(cond)
            continue
        found = True
        transition = cond.get("lastTransitionTime") if cond.get("status") == value else format_time(now)
        out.append(
            {
                "type": type_,
                "status": value,
                "reason": reason,
                "message": message[:1024],
                "observedGeneration": generation,
                "lastTransitionTime": transition or format_time(now),
            }
        )
    if not found:
        out.append(
            {
                "type": type_,
                "status": value,
                "reason": reason,
                "message": message[:1024],
                "observedGeneration": generation,
                "lastTransitionTime": format_time(now),
            }
        )
    order = {"Ready": 0, "Reconciling": 1, "Stalled": 2, "Rotating": 3, "Expiring": 4}
    return sorted(out, key=lambda c: order.get(str(c.get("type")), 9))


def get_condition(conditions: Iterable[dict[str, Any]] | None, type_: str) -> dict[str, Any] | None:
    for cond in conditions or []:
        if cond.get("type") == type_:
            return cond
    return None


def readiness_conditions(
    conditions: Iterable[dict[str, Any]],
    *,
    ready: bool,
    reason: str,
    message: str,
    generation: int,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """Ready plus the kstatus pair Reconciling/Stalled, consistent with each other (the rule is
    ``is_stalled``)."""
    conditions = list(conditions)
    since = _not_ready_since(conditions, now)
    out = set_condition(conditions, "Ready", ready, reason, message, generation, now)
    stalled = (not ready) and is_stalled(reason, failing_since=since, now=now)
    reconciling = (not ready) and not stalled
    out = set_condition(
        out,
        "Stalled",
        stalled,
        reason if stalled else Reason.PROGRESSING if reconciling else Reason.SYNCED,
        message if stalled else "",
        generation,
        now,
    )
    out = set_condition(
        out,
        "Reconciling",
        reconciling,
        reason if reconciling else Reason.SYNCED if ready else reason,
        message if reconciling else "",
        generation,
        now,
    )
    return out
