"""Status conditions (pure). ``lastTransitionTime`` changes only when ``status`` changes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from rotor.api.status import Reason
from rotor.clock import format_time

# kstatus: Ready=False with these reasons needs a person; Rotor reports Stalled=True for them.
STALLED_REASONS = frozenset({"InvalidSpec", "Forbidden", "SecretConflict"})


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
    """Ready plus the kstatus pair Reconciling/Stalled, consistent with each other."""
    out = set_condition(conditions, "Ready", ready, reason, message, generation, now)
    stalled = (not ready) and reason in STALLED_REASONS
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
