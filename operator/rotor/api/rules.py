"""Cross-field rules, written once and enforced twice.

Each rule renders itself as a CEL expression for the CRD (``x-kubernetes-validations``, checked by
``kubectl apply`` itself) and checks a parsed model in Python (so objects stored before a rule
existed are still reported as ``InvalidSpec``). Both sides share the one human ``message``.

"Set" means what ``has()`` means in CEL: the field is present. Optional lists that rules look at carry
``minItems: 1``, so present-but-empty cannot happen in the API; in Python an absent list may default to
``[]``, which therefore counts as not set.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

__all__ = [
    "AtLeastOneOf",
    "AtMostOneOf",
    "Custom",
    "ExactlyOneOf",
    "NotEqual",
    "OnlyWhen",
    "RequiredWhen",
    "Rule",
]

# Kubernetes escapes property names that are CEL reserved words as __name__.
_CEL_RESERVED = frozenset(
    [
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    ]
)


def cel_field(model: type[BaseModel], name: str) -> str:
    """The property name as CEL sees it: the camelCase alias, escaped if it is a reserved word."""
    info = model.model_fields[name]
    alias = info.alias or name
    return f"__{alias}__" if alias in _CEL_RESERVED else alias


def _is_set(instance: BaseModel, name: str) -> bool:
    value = getattr(instance, name)
    return not (value is None or (isinstance(value, list) and not value))


def _literal(value: str) -> str:
    if "'" in value or "\\" in value:
        raise ValueError(f"rule value {value!r} needs escaping; keep rule values simple")
    return f"'{value}'"


def _equals(model: type[BaseModel], name: str, value: str) -> str:
    """CEL for "field == value", matching Python's view where an absent field holds its default."""
    info = model.model_fields[name]
    prop = f"self.{cel_field(model, name)}"
    if info.is_required():
        return f"({prop} == {_literal(value)})"
    # Defaults are applied before validation, so the guard only matters for objects stored earlier.
    default = info.default if info.default is not PydanticUndefined else None
    if default == value:
        return f"(!has({prop}) || {prop} == {_literal(value)})"
    return f"(has({prop}) && {prop} == {_literal(value)})"


def _count(model: type[BaseModel], names: tuple[str, ...]) -> str:
    return " + ".join(f"(has(self.{cel_field(model, n)}) ? 1 : 0)" for n in names)


class Rule(ABC):
    message: str

    @abstractmethod
    def cel(self, model: type[BaseModel]) -> str:
        """The rule as a CEL expression over ``self`` (an object of ``model``'s schema)."""

    @abstractmethod
    def holds(self, instance: BaseModel) -> bool:
        """True when ``instance`` satisfies the rule."""

    def x_kubernetes_validation(self, model: type[BaseModel]) -> dict[str, str]:
        return {"rule": self.cel(model), "message": self.message}


@dataclass(frozen=True)
class ExactlyOneOf(Rule):
    names: tuple[str, ...]
    message: str

    def cel(self, model: type[BaseModel]) -> str:
        if len(self.names) == 2:
            a, b = (cel_field(model, n) for n in self.names)
            return f"has(self.{a}) != has(self.{b})"
        return f"{_count(model, self.names)} == 1"

    def holds(self, instance: BaseModel) -> bool:
        return sum(_is_set(instance, n) for n in self.names) == 1


@dataclass(frozen=True)
class AtMostOneOf(Rule):
    names: tuple[str, ...]
    message: str

    def cel(self, model: type[BaseModel]) -> str:
        if len(self.names) == 2:
            a, b = (cel_field(model, n) for n in self.names)
            return f"!(has(self.{a}) && has(self.{b}))"
        return f"{_count(model, self.names)} <= 1"

    def holds(self, instance: BaseModel) -> bool:
        return sum(_is_set(instance, n) for n in self.names) <= 1


@dataclass(frozen=True)
class AtLeastOneOf(Rule):
    names: tuple[str, ...]
    message: str

    def cel(self, model: type[BaseModel]) -> str:
        return " || ".join(f"has(self.{cel_field(model, n)})" for n in self.names)

    def holds(self, instance: BaseModel) -> bool:
        return any(_is_set(instance, n) for n in self.names)


@dataclass(frozen=True)
class RequiredWhen(Rule):
    """``name`` must be set when field ``when`` equals ``equals``, unless one of ``unless`` is set."""

    name: str
    when: str
    equals: str
    message: str
    unless: tuple[str, ...] = ()

    def cel(self, model: type[BaseModel]) -> str:
        alternatives = [f"has(self.{cel_field(model, n)})" for n in (self.name, *self.unless)]
        return f"!{_equals(model, self.when, self.equals)} || " + " || ".join(alternatives)

    def holds(self, instance: BaseModel) -> bool:
        if getattr(instance, self.when) != self.equals:
            return True
        return any(_is_set(instance, n) for n in (self.name, *self.unless))


@dataclass(frozen=True)
class OnlyWhen(Rule):
    """``name`` may be set only when field ``when`` equals ``equals``."""

    name: str
    when: str
    equals: str
    message: str

    def cel(self, model: type[BaseModel]) -> str:
        return f"!has(self.{cel_field(model, self.name)}) || {_equals(model, self.when, self.equals)}"

    def holds(self, instance: BaseModel) -> bool:
        return not _is_set(instance, self.name) or getattr(instance, self.when) == self.equals


@dataclass(frozen=True)
class NotEqual(Rule):
    name: str
    value: str
    message: str

    def cel(self, model: type[BaseModel]) -> str:
        prop = f"self.{cel_field(model, self.name)}"
        if model.model_fields[self.name].is_required():
            return f"{prop} != {_literal(self.value)}"
        return f"!has({prop}) || {prop} != {_literal(self.value)}"

    def holds(self, instance: BaseModel) -> bool:
        return bool(getattr(instance, self.name) != self.value)


@dataclass(frozen=True)
class Custom(Rule):
    """A rule the shapes above cannot say. Keep ``expression`` and ``check`` saying the same thing;
    the unit tests exercise both sides on the same cases."""

    expression: str
    check: Callable[[Any], bool]
    message: str

    def cel(self, model: type[BaseModel]) -> str:
        return self.expression

    def holds(self, instance: BaseModel) -> bool:
        return self.check(instance)
