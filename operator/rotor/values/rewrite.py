"""``dataFrom[].rewrite`` (pure): ordered regexp rewrites of the key names one dataFrom entry
produces (DESIGN §11 "Key rewrite").

Targets use the ``$1`` / ``${1}`` / ``${name}`` syntax of ESO (Go's ``regexp.Expand``); ``$$`` is a
literal ``$``. Every match is replaced (Go's ``ReplaceAllString``). Matching is time-bounded
(rotor.patterns), so a hostile pattern cannot stall a worker. A result that is not a valid Secret
key, or two remote names rewritten to one key, is ``InvalidKey`` naming the names, never values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import regex

from rotor.patterns import MATCH_TIMEOUT, PatternInvalid, compile_pattern
from rotor.values.errors import InvalidKey, InvalidSpec
from rotor.values.properties import SECRET_KEY_MAX_LENGTH, quote_name, secret_key_is_valid

V = TypeVar("V")

#: ``$$``, ``${name}``, ``$name`` or ``$1`` in a target
_REFERENCE = re.compile(r"\$(\$|\{(\w+)\}|(\w+))")


@dataclass(frozen=True)
class RewriteRule:
    source: str
    target: str


def rules_of(rewrite: Iterable[Any]) -> tuple[RewriteRule, ...]:
    """The spec's ``rewrite`` list (models with ``.regexp.source/.target``) as plain rules."""
    return tuple(RewriteRule(r.regexp.source, r.regexp.target) for r in rewrite)


def _expander(target: str, where: str) -> Any:
    def expand(match: Any) -> str:
        def one(ref: re.Match[str]) -> str:
            if ref.group(1) == "$":
                return "$"
            name = ref.group(2) or ref.group(3)
            group: int | str = int(name) if name.isdigit() else name
            try:
                return str(match.group(group) or "")
            except (IndexError, regex.error):
                # Go expands an unknown group to the empty string; say it instead of guessing
                raise InvalidSpec(
                    f"{where}: target refers to group {name!r}, which source does not define"
                ) from None

        return _REFERENCE.sub(one, target)

    return expand


def _compiled(rules: Sequence[RewriteRule], where: str) -> list[tuple[RewriteRule, Any, str]]:
    out = []
    for index, rule in enumerate(rules):
        label = f"{where}.rewrite[{index}]"
        try:
            out.append((rule, compile_pattern(rule.source), label))
        except PatternInvalid:
            raise InvalidSpec(f"{label}: source {rule.source!r} is not a valid regular expression") from None
    return out


def rewrite_name(name: str, rules: Sequence[RewriteRule], *, where: str) -> str:
    """``name`` passed through every rule in order."""
    return _rewrite(name, _compiled(rules, where))


def _rewrite(name: str, compiled_rules: list[tuple[RewriteRule, Any, str]]) -> str:
    for rule, compiled, label in compiled_rules:
        try:
            name = compiled.sub(_expander(rule.target, label), name, timeout=MATCH_TIMEOUT)
        except TimeoutError:
            raise InvalidSpec(
                f"{label}: source {rule.source!r} takes too long to match (catastrophic backtracking)"
            ) from None
    return name


def rewrite_keys(items: Mapping[str, V], rules: Sequence[RewriteRule], *, where: str) -> dict[str, V]:
    """``items`` (remote name -> value) with every name rewritten and checked as a Secret key."""
    out: dict[str, V] = {}
    origin: dict[str, str] = {}
    invalid: list[str] = []
    compiled_rules = _compiled(rules, where)
    for name in sorted(items):
        key = _rewrite(name, compiled_rules)
        if not secret_key_is_valid(key):
            invalid.append(f"{quote_name(name)} -> {quote_name(key)}")
            continue
        if key in origin:
            raise InvalidKey(
                f"{where}.rewrite: {quote_name(origin[key])} and {quote_name(name)} are both rewritten "
                f"to the key {quote_name(key)}"
            )
        origin[key] = name
        out[key] = items[name]
    if invalid:
        raise InvalidKey(
            f"{where}.rewrite: not valid Secret keys (1 to {SECRET_KEY_MAX_LENGTH} characters of letters, "
            f"digits, '-', '_' and '.', not starting with '..'): {', '.join(invalid[:10])}"
            + (f" and {len(invalid) - 10} more" if len(invalid) > 10 else "")
        )
    return out
