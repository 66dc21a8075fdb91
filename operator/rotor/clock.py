"""The one clock. Tests and `rotor demo` move time through an offset file instead of sleeping."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path


class Clock:
    """Wall-clock time, optionally shifted by the number of seconds in ``offset_file``.

    The offset file is a development and test aid (``ROTOR_CLOCK_OFFSET_FILE``): integration tests
    write e.g. ``2592000`` into it to make the operator live 30 days ahead.
    """

    def __init__(self, offset_file: str | None = None) -> None:
        self._offset_file = Path(offset_file) if offset_file else None
        self._cached: tuple[float, float] = (0.0, 0.0)  # (checked_at monotonic, offset)

    @classmethod
    def from_env(cls) -> Clock:
        return cls(os.environ.get("ROTOR_CLOCK_OFFSET_FILE") or None)

    def offset(self) -> float:
        if self._offset_file is None:
            return 0.0
        checked_at, value = self._cached
        mono = time.monotonic()
        if mono - checked_at < 0.5:
            return value
        try:
            value = float(self._offset_file.read_text().strip() or 0)
        except (OSError, ValueError):
            value = 0.0
        self._cached = (mono, value)
        return value

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(time.time() + self.offset(), dt.UTC)

    def timestamp(self) -> float:
        return time.time() + self.offset()


def parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def format_time(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
