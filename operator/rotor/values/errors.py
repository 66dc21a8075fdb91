"""Errors of the value pipeline (extract, decode, validate, template, size).

Each error carries ``reason``, one of the documented ``Ready`` condition reasons, and ``message``,
which is safe to show anywhere: it names keys, properties, rules and bounds, never a value.
"""

from __future__ import annotations

#: The ``Ready`` reason for a Secret whose data is over the Kubernetes size limit. DESIGN §7 asks
#: for "a clear reason"; the documented reason that fits is ValidationFailed.
SECRET_TOO_LARGE_REASON = "ValidationFailed"


class ValueFailure(Exception):
    """A value could not be turned into Secret data. ``str()`` is the safe message."""

    reason = "ValidationFailed"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reason={self.reason!r}, message={self.message!r})"


class ValidationFailed(ValueFailure):
    """A value is not what its ``validate`` rule or its ``decode`` mode says it must be."""

    reason = "ValidationFailed"


class TemplateError(ValueFailure):
    """A template failed to parse or render, or went over a bound."""

    reason = "TemplateError"


class TemplateMissing(ValueFailure):
    """``template.from`` names a ConfigMap, or a key of one, that is not there (or not text)."""

    reason = "TemplateMissing"


class PropertyNotFound(ValueFailure):
    """A remote secret exists but has no such property."""

    reason = "KeyNotFound"


class InvalidSpec(ValueFailure):
    """The spec asks for something impossible: an illegal Secret key name, an unknown rule."""

    reason = "InvalidSpec"


class InvalidKey(ValueFailure):
    """A key a ``dataFrom[].rewrite`` produced is not a valid Secret key, or two remote names were
    rewritten to the same key. The message names the names, never a value."""

    reason = "InvalidKey"


class TooLarge(ValueFailure):
    """The Secret's data is over the size Kubernetes accepts."""

    reason = SECRET_TOO_LARGE_REASON
