"""Coalescing a burst of Secret writes into one rollout (trailing debounce, with a cap).

Each write pushes the rollout to ``debounce`` seconds after it, so a flapping source yields one
restart, for its last state. So that a source that never settles still rolls out, the rollout
never waits more than ``max_delay`` after the first write of the burst. Times are plain seconds
(the service passes the event loop's monotonic clock).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from rotor.rollout.decisions import WriteInfo


@dataclass(frozen=True)
class Write:
    """One write of a Secret, and what rolling it out needs."""

    namespace: str
    secret: str
    strategy: str  # Auto | Explicit
    targets: tuple[tuple[str, str], ...]  # (kind, name) under Explicit
    data: Mapping[str, bytes]
    info: WriteInfo
    owner: Mapping[str, Any]  # the ManagedSecret: apiVersion, kind, metadata (for status and Events)
    resume: bool = False  # no write: the first sync of this Secret by this process (decisions.decide)


@dataclass(frozen=True)
class Pending:
    write: Write  # the latest write of the burst
    first_at: float
    due: float
    writes: int


def coalesce(
    pending: Pending | None, write: Write, *, now: float, debounce: float, max_delay: float
) -> Pending:
    if pending is None:
        return Pending(write, first_at=now, due=now + debounce, writes=1)
    due = max(pending.due, min(now + debounce, pending.first_at + max_delay))
    # the burst began before this write: older data existed, whatever this write says
    latest = replace(
        write,
        info=WriteInfo(created=False, at=write.info.at),
        resume=write.resume and pending.write.resume,  # a real write in the burst is one
    )
    return Pending(latest, first_at=pending.first_at, due=due, writes=pending.writes + 1)
