"""``dataFrom.find``'s name filter, shared by every provider: user regexps matched with a time
limit (rotor.patterns), their failures reported as the store's InvalidConfig."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rotor.patterns import PatternInvalid, PatternTooSlow, compile_pattern, matches
from rotor.providers.base import InvalidConfig


def compile_name_regexp(name_regexp: str | None) -> NameMatcher | None:
    if not name_regexp:
        return None
    try:
        return NameMatcher(compile_pattern(name_regexp), name_regexp)
    except PatternInvalid:
        raise InvalidConfig(f"find: name.regexp {name_regexp!r} is not a valid regular expression") from None


def has_tags(carried: Mapping[str, str] | None, wanted: Mapping[str, str] | None) -> bool:
    """Whether a secret's tags (labels) hold every wanted tag with exactly its value."""
    if not wanted:
        return True
    have = carried or {}
    return all(k in have and have[k] == v for k, v in wanted.items())


class NameMatcher:
    """``search`` with a time limit (see rotor.patterns)."""

    def __init__(self, compiled: Any, source: str) -> None:
        self.compiled = compiled
        self.source = source

    def search(self, name: str) -> bool:
        try:
            return matches(self.compiled, name)
        except PatternTooSlow:
            raise InvalidConfig(
                f"find: name.regexp {self.source!r} takes too long to match (catastrophic backtracking)"
            ) from None
