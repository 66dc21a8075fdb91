"""The one rotation state machine (pure): the phases of ``status.rotation.phase``, in order.

Each phase is recorded in status before the step that follows it runs, and every step is
idempotent, so an operator killed at any point resumes where it stopped:

- written in place (Vault KV, Parameter Store, Vault database static roles, AWS RotateSecret):
  ``Pending -> Written -> Synced -> Completed``
- staged (AWS Secrets Manager, Generate): ``Pending -> Staged -> Verified -> Promoted -> Synced -> Completed``

``Pending``: the rotation started; what is about to be written is recorded (its digest), nothing
is at the source yet, or the write is being retried. ``Written``/``Promoted``: the source holds
the new value as its current one. ``Synced``: the Kubernetes Secret holds it too (recorded right
after the Secret write). ``Completed``: finished, with ``lastRotationTime`` and the grace period.
``Failed``: a rotation that could not start or was given up before anything was written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from rotor.api.status import RotationPhase

P = RotationPhase
WRITTEN_IN_PLACE: tuple[RotationPhase, ...] = (P.PENDING, P.WRITTEN, P.SYNCED, P.COMPLETED)
STAGED: tuple[RotationPhase, ...] = (P.PENDING, P.STAGED, P.VERIFIED, P.PROMOTED, P.SYNCED, P.COMPLETED)
#: phases after which the source holds the new value as its current one
SOURCE_DONE = frozenset({P.WRITTEN, P.PROMOTED, P.SYNCED})


def flow(staged: bool) -> tuple[RotationPhase, ...]:
    return STAGED if staged else WRITTEN_IN_PLACE


def parse_phase(value: str | None) -> RotationPhase | None:
    """A phase from status; None for none or for a value this version does not know."""
    try:
        return RotationPhase(value) if value else None
    except ValueError:
        return None


def next_phase(staged: bool, phase: RotationPhase | None) -> RotationPhase | None:
    """The phase after ``phase``: ``Pending`` when none has started (or the last one ended),
    None after ``Completed``. ValueError for a phase the flow does not have."""
    phases = flow(staged)
    if phase is None or phase == P.FAILED:
        return P.PENDING
    if phase == P.COMPLETED:
        return None
    if phase not in phases:
        names = ", ".join(phases)
        raise ValueError(f"phase {phase.value!r} is not a {'staged' if staged else 'written'} phase: {names}")
    return phases[phases.index(phase) + 1]


def in_progress(phase: RotationPhase | str | None) -> bool:
    """Whether a rotation has started and not ended (Completed or Failed)."""
    parsed = parse_phase(phase) if isinstance(phase, str) else phase
    return parsed is not None and parsed not in (P.COMPLETED, P.FAILED)


def retained_until(rotated_at: datetime, grace_period: timedelta) -> datetime | None:
    """Until when the previous value is kept (``status.rotation.previousRetainedUntil``)."""
    return rotated_at + grace_period if grace_period > timedelta(0) else None


def grace_keys(
    data: Mapping[str, bytes],
    rotated_keys: Iterable[str],
    previous: Mapping[str, bytes],
    suffix: str,
    retained_until: datetime | None,
    now: datetime,
) -> dict[str, bytes]:
    """``data`` plus ``<key><suffix>`` = the previous value of each rotated key while
    ``now < retained_until``; once the grace period is over, those keys are dropped.

    ``previous`` is the value each key had before the rotation replaced it (never what the
    Secret happens to hold). A key with no previous value, or whose previous value equals the
    current one, gets no ``<key><suffix>`` entry.
    """
    rotated = list(rotated_keys)
    result = {k: v for k, v in data.items() if k not in {f"{r}{suffix}" for r in rotated}}
    if retained_until is None or now >= retained_until:
        return result
    for key in rotated:
        old = previous.get(key)
        if old is not None and old != data.get(key):
            result[f"{key}{suffix}"] = old
    return result
