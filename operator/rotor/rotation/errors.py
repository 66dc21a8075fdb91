"""Errors raised by the rotation logic. Each carries a documented condition reason and a message a
person can act on. Messages may quote policy fields (a cron expression, a duration) but never a
secret value."""

from __future__ import annotations

#: Ready/Stalled reason for a policy that can never work as written.
INVALID_SPEC = "InvalidSpec"
#: Rotating=False reason for a rotation that did not complete.
FAILED = "Failed"


class RotationError(Exception):
    """Base class: ``reason`` is a documented condition reason, ``message`` is safe to show."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class PolicyError(RotationError):
    """The (Cluster)RotationPolicy spec is invalid. ``field`` names the spec path at fault."""

    def __init__(self, reason: str, message: str, *, field: str | None = None) -> None:
        super().__init__(reason, message)
        self.field = field


class GeneratorError(RotationError):
    """A value could not be generated, or the generated material failed its self-check."""

    def __init__(self, message: str, *, reason: str = FAILED) -> None:
        super().__init__(reason, message)
