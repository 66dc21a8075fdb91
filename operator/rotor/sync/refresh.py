"""When to refresh next (pure). Deterministic slots: an object refreshes at
``phase + k * interval`` where ``phase`` comes from a hash of its seed, so thousands of objects
spread over the interval, a restart keeps every object on its own slot, and objects reading the
same source can share a slot (and so a read)."""

from __future__ import annotations

import datetime as dt
import hashlib


def phase_fraction(seed: str) -> float:
    digest = hashlib.sha256(seed.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def next_refresh(seed: str, interval: dt.timedelta, now: dt.datetime) -> dt.datetime:
    period = interval.total_seconds()
    if period <= 0:
        raise ValueError("refresh interval must be positive")
    phase = phase_fraction(seed) * period
    ts = now.timestamp()
    k = (ts - phase) // period + 1
    slot = dt.datetime.fromtimestamp(phase + k * period, dt.UTC)
    # at a slot itself, microsecond rounding can land on that same slot: always strictly later
    return slot if slot > now else dt.datetime.fromtimestamp(phase + (k + 1) * period, dt.UTC)
