"""The crash-safe rotation phase machines, and the grace-period keys.

Each phase is recorded in ``status.rotation.phase`` before the next step starts, and every step is
idempotent, so an operator killed at any point resumes where it stopped:

- Vault: Pending -> Written -> Synced -> Completed
- AWS:   Pending -> Staged -> Verified -> Promoted -> Synced -> Completed
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

VAULT_PHASES = ("Pending", "Written", "Synced", "Completed")
AWS_PHASES = ("Pending", "Staged", "Verified", "Promoted", "Synced", "Completed")
PHASES: Mapping[str, tuple[str, ...]] = {"vault": VAULT_PHASES, "aws": AWS_PHASES}
COMPLETED = "Completed"


def _phases(backend: str) -> tuple[str, ...]:
    try:
        return PHASES[backend.lower()]
    except KeyError:
        raise ValueError(f"unknown backend {backend!r}; known: {', '.join(PHASES)}") from None


def next_phase(backend: str, phase: str | None) -> str | None:
    """The phase after ``phase`` for ``backend`` (``vault`` or ``aws``): ``Pending`` when none has
    started, ``None`` after ``Completed``. ``ValueError`` for a phase the backend does not have."""
    phases = _phases(backend)
    if phase is None or phase == COMPLETED:
        return phases[0] if phase is None else None
    if phase not in phases:
        raise ValueError(f"phase {phase!r} is not a {backend} rotation phase: {', '.join(phases)}")
    return phases[phases.index(phase) + 1]


def in_progress(phase: str | None) -> bool:
    """Whether a rotation has started and not completed."""
    return bool(phase) and phase != COMPLETED


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

    A key with no previous value, or whose previous value equals the current one, gets no
    ``<key><suffix>`` entry.
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
