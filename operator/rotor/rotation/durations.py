"""Go-style durations as written in the CRDs: ``720h``, ``90m``, ``1h30m``, ``30s``, ``1.5h`` and,
as an extension, days (``30d``)."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS: dict[str, timedelta] = {
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
    "ms": timedelta(milliseconds=1),
}
_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|d|h|m|s)")
_WHOLE = re.compile(rf"(?:{_PART.pattern})+")


def parse_duration(text: str | timedelta) -> timedelta:
    """Parse a duration; a ``timedelta`` passes through. Raises ``ValueError`` quoting the text.

    Negative durations are refused; ``"0"`` is zero.
    """
    if isinstance(text, timedelta):
        return text
    if not isinstance(text, str):
        raise ValueError(f"duration must be a string such as '720h', not {type(text).__name__}")
    value = text.strip()
    if value == "0":
        return timedelta(0)
    if not _WHOLE.fullmatch(value):
        raise ValueError(f"invalid duration {text!r}: use a number and a unit (d, h, m, s, ms), e.g. '720h'")
    total = timedelta(0)
    for number, unit in _PART.findall(value):
        total += float(number) * _UNITS[unit]
    return total


def format_duration(value: timedelta) -> str:
    """The shortest Go-style text for ``value`` in hours, minutes and seconds (``1h30m``)."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    hours, rest = divmod(abs(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{u}" for n, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return sign + "".join(parts)
