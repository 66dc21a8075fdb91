"""User-supplied regular expressions, matched with a time limit.

Python's ``re`` can take exponential time on patterns like ``(a+)+$``, and a match cannot be
interrupted: one hostile ManagedSecret would stall a worker (or the event loop) for good. The
``regex`` module matches the same syntax and accepts a timeout.
"""

from __future__ import annotations

import regex

#: seconds one match may take
MATCH_TIMEOUT = 0.25


class PatternTooSlow(Exception):
    """A match ran past MATCH_TIMEOUT: the pattern backtracks catastrophically on this input."""


class PatternInvalid(Exception):
    pass


def compile_pattern(pattern: str) -> regex.Pattern[str]:
    try:
        return regex.compile(pattern, flags=regex.V0)
    except regex.error as exc:
        raise PatternInvalid(str(exc)) from None


def matches(compiled: regex.Pattern[str], text: str, *, full: bool = False) -> bool:
    try:
        if full:
            return compiled.fullmatch(text, timeout=MATCH_TIMEOUT) is not None
        return compiled.search(text, timeout=MATCH_TIMEOUT) is not None
    except TimeoutError:
        raise PatternTooSlow("the regular expression takes too long on this input") from None
