"""Durations as users write them: Go style (``720h``, ``90m``, ``1h30m``, ``30s``) plus days (``30d``).

The API keeps durations as strings, so the CRD schema, ``kubectl get -o yaml`` and the Python models
all show what the user wrote. Code that needs a number calls :func:`parse_duration`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, Field

__all__ = [
    "DURATION_MAX_LENGTH",
    "DURATION_PATTERN",
    "Duration",
    "GracePeriod",
    "PositiveDuration",
    "RefreshInterval",
    "RotationInterval",
    "format_duration",
    "parse_duration",
]

#: Accepted by both Python's ``re`` and Go's RE2 (the apiserver checks ``pattern`` with RE2).
DURATION_PATTERN = r"^(0|([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+)$"
DURATION_MAX_LENGTH = 32

_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_UNIT_MICROSECONDS = {
    "ms": Decimal(1_000),
    "s": Decimal(1_000_000),
    "m": Decimal(60_000_000),
    "h": Decimal(3_600_000_000),
    "d": Decimal(86_400_000_000),
}
_FULL = re.compile(DURATION_PATTERN)
_LONGEST = Decimal(100 * 366) * _UNIT_MICROSECONDS["d"]


def parse_duration(text: str) -> timedelta:
    """``"1h30m"`` -> ``timedelta(hours=1, minutes=30)``. Raises ``ValueError`` with a usable message."""
    if not isinstance(text, str) or not _FULL.fullmatch(text):
        raise ValueError(
            f"{text!r} is not a duration: use a number and a unit (ms, s, m, h, d), "
            'for example "30s", "90m", "1h30m", "720h" or "30d"'
        )
    if text == "0":
        return timedelta(0)
    micros = sum(
        (Decimal(number) * _UNIT_MICROSECONDS[unit] for number, unit in _PART.findall(text)),
        Decimal(0),
    )
    if micros > _LONGEST:
        raise ValueError(f"{text!r} is longer than anything Rotor schedules (at most 100 years)")
    return timedelta(microseconds=int(micros.to_integral_value()))


def format_duration(value: timedelta) -> str:
    """The shortest Go-style spelling: ``timedelta(days=30)`` -> ``"720h"``, 90 min -> ``"1h30m"``,
    zero -> ``"0s"``. Fractions of a second are written as decimal seconds (``"1.5s"``)."""
    total = value // timedelta(microseconds=1)
    if total < 0:
        raise ValueError(f"durations are never negative, got {value!r}")
    if total == 0:
        return "0s"
    hours, rest = divmod(total, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    seconds, micros = divmod(rest, 1_000_000)
    out = ""
    if hours:
        out += f"{hours}h"
    if minutes:
        out += f"{minutes}m"
    if micros:
        out += f"{seconds}.{micros:06d}".rstrip("0") + "s"
    elif seconds:
        out += f"{seconds}s"
    return out


def _check_duration(text: str) -> str:
    parse_duration(text)
    return text


def _check_positive(text: str) -> str:
    if parse_duration(text) <= timedelta(0):
        raise ValueError(f"{text!r} must be greater than zero, for example 1h")
    return text


# The pattern goes to the CRD only; in Python, parse_duration gives a friendlier message for the same check.

#: A duration string such as ``"720h"`` or ``"30d"``; zero (``"0"``, ``"0s"``) is allowed.
Duration = Annotated[
    str,
    Field(max_length=DURATION_MAX_LENGTH, json_schema_extra={"pattern": DURATION_PATTERN}),
    AfterValidator(_check_duration),
]

#: A duration that must be greater than zero. The CEL rule matches what ``_check_positive`` checks: a
#: duration that passed the pattern is zero exactly when it has no digit from 1 to 9.
PositiveDuration = Annotated[
    str,
    Field(
        max_length=DURATION_MAX_LENGTH,
        json_schema_extra={
            "pattern": DURATION_PATTERN,
            "x-kubernetes-validations": [
                {"rule": "self.matches('[1-9]')", "message": "must be greater than zero, for example 1h"}
            ],
        },
    ),
    AfterValidator(_check_positive),
]


def _minimum_rule(minimum: str, zero_allowed: bool, what: str) -> tuple[str, str]:
    message = f"{what} must be at least {minimum}" + (" (or 0 to turn it off)" if zero_allowed else "")
    # CEL's duration() reads Go durations; a value with days (which it cannot read) is left to Python
    rule = f"self.matches('d') || duration(self) >= duration('{minimum}')"
    if zero_allowed:
        rule = f"!self.matches('[1-9]') || {rule}"
    return rule, message


def _at_least_field(minimum: str, *, zero_allowed: bool = False, what: str) -> Any:
    rule, message = _minimum_rule(minimum, zero_allowed, what)
    return Field(
        max_length=DURATION_MAX_LENGTH,
        json_schema_extra={
            "pattern": DURATION_PATTERN,
            "x-kubernetes-validations": [{"rule": rule, "message": message}],
        },
    )


def _at_least_check(minimum: str, *, zero_allowed: bool = False, what: str) -> AfterValidator:
    floor = parse_duration(minimum)
    _, message = _minimum_rule(minimum, zero_allowed, what)

    def check(text: str) -> str:
        value = parse_duration(text)
        if value < floor and not (zero_allowed and value == timedelta(0)):
            raise ValueError(f"{text!r}: {message}")
        return text

    return AfterValidator(check)


#: The shortest ``refresh.interval``. Reads of one key are shared for 5 s (the store's share
#: window), so a change reaches the Secret within max(interval, 5 s).
MIN_REFRESH_INTERVAL = "1s"
#: The shortest ``schedule.every`` of a RotationPolicy, and of a rotation window.
MIN_ROTATION_INTERVAL = "1m"
#: The shortest non-zero ``gracePeriod``.
MIN_GRACE_PERIOD = "1s"

#: ``refresh.interval``: at least 1 s.
RefreshInterval = Annotated[
    str,
    _at_least_field(MIN_REFRESH_INTERVAL, what="refresh.interval"),
    _at_least_check(MIN_REFRESH_INTERVAL, what="refresh.interval"),
]
#: ``schedule.every`` and a window's ``duration``: at least 1 m.
RotationInterval = Annotated[
    str,
    _at_least_field(MIN_ROTATION_INTERVAL, what="a rotation interval"),
    _at_least_check(MIN_ROTATION_INTERVAL, what="a rotation interval"),
]
#: ``gracePeriod``: 0 (no previous value kept) or at least 1 s.
GracePeriod = Annotated[
    str,
    _at_least_field(MIN_GRACE_PERIOD, zero_allowed=True, what="gracePeriod"),
    _at_least_check(MIN_GRACE_PERIOD, zero_allowed=True, what="gracePeriod"),
]
