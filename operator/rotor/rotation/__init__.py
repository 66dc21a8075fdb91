"""Pure rotation and expiry logic: policies and presets, value generators, schedules and windows,
expiry, the rotation decision chain, back-off and the crash-safe phases. No I/O here: the clock and
every fetched fact are parameters."""

from rotor.rotation.checks import (
    Decision,
    ObservedState,
    RotationInputs,
    Trigger,
    expiring_condition,
    rotation_due,
)
from rotor.rotation.errors import GeneratorError, PolicyError, RotationError
from rotor.rotation.expiry import Expiry, FoundCertificate, certificates_in, compute_expiry
from rotor.rotation.generators import GeneratedData, generate, verify_generated
from rotor.rotation.presets import PRESETS, EffectivePolicy, effective_policy
from rotor.rotation.schedule import next_rotation, scheduled_due

__all__ = [
    "PRESETS",
    "Decision",
    "EffectivePolicy",
    "Expiry",
    "FoundCertificate",
    "GeneratedData",
    "GeneratorError",
    "ObservedState",
    "PolicyError",
    "RotationError",
    "RotationInputs",
    "Trigger",
    "certificates_in",
    "compute_expiry",
    "effective_policy",
    "expiring_condition",
    "generate",
    "next_rotation",
    "rotation_due",
    "scheduled_due",
    "verify_generated",
]
