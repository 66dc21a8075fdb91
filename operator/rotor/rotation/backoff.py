"""The one back-off formula: retry delays after failures (of a sync or of a rotation).

The spread derives from a hash of a seed (typically ``namespace/name``), so a restarted
operator computes the same times, and many objects never act in lockstep.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta


def unit_fraction(seed: str, salt: str = "") -> float:
    """A number in [0, 1) derived from ``seed`` (and ``salt``) by SHA-256."""
    digest = hashlib.sha256(f"{salt}\x00{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def retry_delay(
    failed_attempts: int,
    *,
    base: timedelta = timedelta(seconds=30),
    cap: timedelta = timedelta(hours=1),
    seed: str,
) -> timedelta:
    """How long to wait before the next attempt after ``failed_attempts`` failures.

    The ceiling doubles with every failure from ``base``; the delay is drawn from its upper half
    (``ceiling/2 .. ceiling``) and then capped at ``cap``. So it never shrinks from one attempt to
    the next, and once the cap is reached it stays there; the spread between objects made by the
    earlier draws carries on. Zero failures means no delay.
    """
    if failed_attempts <= 0:
        return timedelta(0)
    ceiling = base.total_seconds() * 2.0 ** min(failed_attempts - 1, 64)
    drawn = ceiling * (0.5 + 0.5 * unit_fraction(seed, f"retry-{failed_attempts}"))
    return timedelta(seconds=min(cap.total_seconds(), drawn))
